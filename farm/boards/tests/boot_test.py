#!/usr/bin/env python3
"""Boot test of a farm virtual board: makes an initramfs with farm-initramfs,
boots the board's real kernel under qemu-system as its description
(boards/*.json) says, and checks the board-init protocol on the console.

usage: boot_test.py --boards-dir DIR --board NAME --farm-initramfs EXE
         [--file GUEST=HOST]... [--timeout-file S] [--env K=V]... [--no-job]
         [--smp N] [--cpu CPU] [--qemu-timeout S]
         [--expect-end END] [--expect-error REGEX] [--expect REGEX]...
         [--max-seconds S] -- ARGV...
  --expect-end    the END marker's field: rc=0, rc=3, signal=9, timeout
  --expect-error  a regex the ERROR marker's reason must match (no END then)
  --expect        a regex some console line must match (repeatable)
  --max-seconds   fail if qemu took longer (wall)
The qemu command line is built from the description exactly as the farm's
virtual-board executor builds it (docs/boards.md, "Board descriptions"):
  QEMU -M MACHINE -cpu CPU -smp SMP -m MEMORY [-bios BIOS] -accel ACCEL
       QEMU_ARGS... -kernel DIR/KERNEL -initrd CPIO -append APPEND
A missing artifact fails the test with the command that builds it.
"""
import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

BEGIN = "===FARM-BOARD-BEGIN==="
END_RE = re.compile(r"===FARM-BOARD-END (rc=\d+|signal=\d+|timeout)===")
ERROR_RE = re.compile(r"===FARM-BOARD-ERROR (.*)===")


def fail(msg):
    print(f"boot_test: FAIL: {msg}", flush=True)
    sys.exit(1)


def qemu_command(board, boards_dir, cpio, smp=None, cpu=None):
    cmd = [board["qemu"], "-M", board["machine"], "-cpu", cpu or board["cpu"],
           "-smp", str(smp or board["smp"]), "-m", board["memory"]]
    if board.get("bios"):
        cmd += ["-bios", board["bios"]]
    if board.get("accel"):
        cmd += ["-accel", board["accel"]]
    cmd += board.get("qemu_args", [])
    cmd += ["-kernel", os.path.join(boards_dir, board["kernel"]), "-initrd", cpio,
            "-append", board["append"]]
    return cmd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--boards-dir", required=True)
    ap.add_argument("--build-dir", required=True, help="for the build hint")
    ap.add_argument("--board", required=True)
    ap.add_argument("--farm-initramfs", required=True)
    ap.add_argument("--file", action="append", default=[])
    ap.add_argument("--env", action="append", default=[])
    ap.add_argument("--timeout-file")
    ap.add_argument("--no-job", action="store_true")
    ap.add_argument("--smp", type=int)
    ap.add_argument("--cpu")
    ap.add_argument("--qemu-timeout", type=float, default=120)
    ap.add_argument("--expect-end")
    ap.add_argument("--expect-error")
    ap.add_argument("--expect", action="append", default=[])
    ap.add_argument("--max-seconds", type=float)
    ap.add_argument("argv", nargs="*")
    a = ap.parse_args()

    desc = os.path.join(a.boards_dir, a.board + ".json")
    if not os.path.exists(desc):
        fail(f"no board description {desc} (re-run cmake on {a.build_dir})")
    with open(desc) as f:
        board = json.load(f)
    for key, target in (("kernel", board["kernel_target"]), ("init", board["init_target"])):
        path = os.path.join(a.boards_dir, board[key])
        if not os.path.exists(path):
            fail(f"{key} {path} was not built; build it with:\n"
                 f"  cmake --build {a.build_dir} --target {target}\n"
                 f"(or every board: cmake --build {a.build_dir} --target boards)")
    for spec in a.file:
        host = spec.split("=", 1)[1]
        if not os.path.exists(host):
            fail(f"job file {host} was not built (cmake --build {a.build_dir})")

    with tempfile.TemporaryDirectory(prefix="boot_test.") as tmp:
        cpio = os.path.join(tmp, "job.cpio")
        mk = [a.farm_initramfs, "-o", cpio, "--init", os.path.join(a.boards_dir, board["init"])]
        for spec in a.file:
            mk += ["--file", spec]
        for e in a.env:
            mk += ["--env", e]
        if a.timeout_file:
            mk += ["--timeout", a.timeout_file]
        if a.no_job:
            mk += ["--no-job"]
        else:
            mk += ["--"] + a.argv
        print("+ " + shlex.join(mk), flush=True)
        r = subprocess.run(mk)
        if r.returncode != 0:
            fail(f"farm-initramfs exited {r.returncode}")

        cmd = qemu_command(board, a.boards_dir, cpio, a.smp, a.cpu)
        # qemu under `timeout`: the test's runtime is bounded whatever the guest does.
        full = ["timeout", "-k", "5", str(a.qemu_timeout)] + cmd
        print("+ " + shlex.join(full), flush=True)
        t0 = time.monotonic()
        p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        lines = []
        t_begin = t_end = None
        for raw in p.stdout:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            lines.append(line)
            print("| " + line, flush=True)
            if t_begin is None and BEGIN in line:
                t_begin = time.monotonic() - t0
            if t_end is None and (END_RE.search(line) or ERROR_RE.search(line)):
                t_end = time.monotonic() - t0
        rc = p.wait()
        wall = time.monotonic() - t0

    def t(x):
        return "-" if x is None else f"{x:.2f} s"
    print(f"boot_test: {a.board}: qemu exit {rc}; init's BEGIN after {t(t_begin)}, "
          f"END/ERROR after {t(t_end)}, qemu gone after {wall:.2f} s", flush=True)
    if rc == 124 or rc == 137:
        fail(f"qemu did not end within {a.qemu_timeout} s (killed by timeout)")
    if rc != 0:
        fail(f"qemu exited {rc}")
    text = "\n".join(lines)
    ends = END_RE.findall(text)
    errors = ERROR_RE.findall(text)
    if a.expect_error:
        if not errors:
            fail("no ===FARM-BOARD-ERROR ...=== marker")
        if not re.search(a.expect_error, errors[0]):
            fail(f"ERROR reason {errors[0]!r} does not match {a.expect_error!r}")
        if ends:
            fail(f"an END marker after an ERROR: {ends}")
    else:
        if errors:
            fail(f"board init failed: {errors[0]}")
        if text.count(BEGIN) != 1:
            fail(f"{text.count(BEGIN)} BEGIN markers, want 1")
        if len(ends) != 1:
            fail(f"{len(ends)} END markers, want 1")
        if a.expect_end and ends[0] != a.expect_end:
            fail(f"END {ends[0]}, want {a.expect_end}")
        begin_at = text.index(BEGIN)
        end_at = END_RE.search(text).start()
        job_out = text[begin_at:end_at]
        for rx in a.expect:
            if not re.search(rx, job_out, re.M):
                fail(f"no line of the job's output (between BEGIN and END) matches {rx!r}")
    if a.max_seconds and wall > a.max_seconds:
        fail(f"took {wall:.2f} s, more than {a.max_seconds} s")
    print(f"boot_test: PASS {a.board}", flush=True)


if __name__ == "__main__":
    main()
