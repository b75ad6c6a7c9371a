#!/usr/bin/env python3
"""The linux-guest suites (ctest label <arch>-linux, e.g. riscv64-linux): every
test of a cross-built ctest suite, run again inside a real Linux kernel under
qemu-system, in one boot, with per-test results in one JUnit XML file.

  1. `ctest --show-only=json-v1` of the build tree lists the tests. Those whose
     command is the crosscompiling emulator (qemu-riscv64) + a static binary of
     the target run in the guest, with their arguments, ENVIRONMENT, TIMEOUT
     and pass/fail/skip properties; every other test (host tools: bash
     scripts, cmake -P, the host lptrace) is reported as not run, with the
     reason (JUnit: skipped), never left out silently.
  2. The binaries (debug info stripped: symbols stay, libpatch resolves
     probes by symbol) go into an initramfs with the board init
     (farm/boards/init/board-init.c), lp-guest-runner (guest_runner.c) as the
     job and a manifest; farm-initramfs (farm/boards) writes it.
  3. The board (farm/boards/boards/<board>.json) boots once; the runner runs
     every test in turn in its own process and prints its output, its kernel
     log and its GoogleTest XML between per-test markers (guest_runner.c).
  4. The console is parsed: each test is judged as ctest would (exit status,
     PASS/FAIL/SKIP_REGULAR_EXPRESSION, WILL_FAIL, SKIP_RETURN_CODE, timeout)
     and written to the JUnit file: per test executable a <testsuite>, per
     test (GoogleTest case) a <testcase>, failures with GoogleTest's messages
     or, for other programs, the exit status and the tail of the output.
Exit status: 0 if every test that should run in the guest ran to its end and
none failed; 1 otherwise; 2 for bad usage or a missing artifact (the message
names the command that builds it).

--cap NAME=MAX lowers a numeric argument NAME of any test to MAX in the guest
(the JUnit file and the log show the argv that ran): patch-stress batches cost
~0.5-1 s (mprotect) and ~3 s (procmem) each under full-system TCG against
~15 ms under qemu-user, so the suites' 1000-batch stress runs are capped there.
"""
import argparse
import json
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

GUEST_ROOT = "/job/t"          # build-tree files go to /job/t/<path relative to the build tree>
GUEST_XML_DIR = "/tmp/lpg"     # GoogleTest XML reports (tmpfs)
RUNNER = "/job/bin/lp-guest-runner"
MANIFEST = "/job/manifest"
SYNC_CORE = 1 << 5             # MEMBARRIER_CMD_PRIVATE_EXPEDITED_SYNC_CORE in MEMBARRIER_CMD_QUERY

LINE_RE = re.compile(rb"^@(-?\d+):([okxOKX]) ?(.*)$")
BEGIN_RE = re.compile(rb"===LPG-BEGIN (\d+)===")
END_RE = re.compile(rb"===LPG-END (\d+) status=(\S+) seconds=([\d.]+) out=(\d+) xml=(\d+)===")
INFO_RE = re.compile(rb"^@info (.*)$")
BOARD_END_RE = re.compile(rb"===FARM-BOARD-(END (?:rc=\d+|signal=\d+|timeout)|ERROR .*)===")


def log(msg):
    print(msg, flush=True)


def die(msg, code=2):
    log(f"run_suites: {msg}")
    sys.exit(code)


# ---- the suite -----------------------------------------------------------------

class Test:
    def __init__(self, ctest):
        self.name = ctest["name"]
        self.command = list(ctest.get("command") or [])
        self.props = {p["name"]: p["value"] for p in ctest.get("properties", [])}
        self.labels = self.props.get("LABELS", [])
        self.reason = None       # why it does not run in the guest
        self.id = None
        self.binary = None       # host path
        self.argv = []           # guest argv
        self.env = []
        self.cwd = None
        self.xml = None
        self.timeout = 0
        self.capped = []
        # results
        self.started = False
        self.status = None       # exit:N signal:N timeout error:WHY (runner), None: no END
        self.seconds = 0.0
        self.out = bytearray()
        self.klog = bytearray()
        self.xml_text = bytearray()
        self.counts = {"o": 0, "x": 0}
        self.end_counts = None
        self.verdict = None      # passed failed skipped error
        self.message = ""
        self.cases = []          # parsed GoogleTest cases
        self.first = None        # retried (--retry-accel): the first boot's failure, see merge_retry

    def retry_copy(self, tid):
        """The same test, not yet run, as test `tid` of a second boot."""
        c = Test({"name": self.name, "command": self.command,
                  "properties": [{"name": k, "value": v} for k, v in self.props.items()]})
        for k in ("reason", "binary", "env", "cwd", "timeout", "capped"):
            setattr(c, k, getattr(self, k))
        c.id = tid
        c.argv = [x for x in self.argv if not x.startswith("--gtest_output=")]
        if self.xml:
            c.xml = f"{GUEST_XML_DIR}/{tid}.xml"
            c.argv.append(f"--gtest_output=xml:{c.xml}")
        return c

    def failure_text(self):
        """What failed, for the log and JUnit: GoogleTest's messages, else the output's tail."""
        gfail = [g for g in self.cases if g["result"] == "failed"] if isinstance(self.cases, list) else []
        if gfail:
            return "\n\n".join(g["text"] or g["message"] for g in gfail)
        return self.out.decode("utf-8", "replace")


def elf_info(path):
    """(machine, has PT_INTERP) of an ELF file, or None."""
    try:
        with open(path, "rb") as f:
            h = f.read(64)
            if len(h) < 64 or h[:4] != b"\x7fELF" or h[4] != 2 or h[5] != 1:
                return None
            machine = struct.unpack_from("<H", h, 18)[0]
            phoff = struct.unpack_from("<Q", h, 32)[0]
            phentsize, phnum = struct.unpack_from("<HH", h, 54)
            interp = False
            for i in range(phnum):
                f.seek(phoff + i * phentsize)
                ph = f.read(4)
                if len(ph) == 4 and struct.unpack("<I", ph)[0] == 3:
                    interp = True
            return machine, interp
    except OSError:
        return None


EM = {"riscv64": 243, "aarch64": 183, "x86_64": 62}


def classify(tests, a, build_dir):
    emulator = os.path.realpath(shutil.which(a.emulator) or a.emulator)
    want_machine = EM.get(a.arch)
    for t in tests:
        cmd = t.command
        if not cmd:
            t.reason = "no command (a ctest test without one: NOT_AVAILABLE?)"
            continue
        prog = os.path.realpath(shutil.which(cmd[0]) or cmd[0])
        if prog != emulator:
            what = os.path.basename(cmd[0])
            script = next((c for c in cmd[1:] if os.path.isfile(c)), None)
            t.reason = (f"runs on the build host ({what}"
                        + (f" {os.path.relpath(script, a.source_dir) if script.startswith(a.source_dir) else script}" if script else "")
                        + "), not a target program under the emulator")
            continue
        if len(cmd) < 2:
            t.reason = "the emulator without a program"
            continue
        binary = cmd[1]
        info = elf_info(binary)
        if info is None:
            t.reason = f"{binary} is not a 64-bit little-endian ELF file"
            continue
        if want_machine is not None and info[0] != want_machine:
            t.reason = f"{binary} is not a {a.arch} program (e_machine {info[0]})"
            continue
        if info[1]:
            t.reason = f"{os.path.relpath(binary, build_dir)} is dynamically linked: the initramfs holds no {a.arch} libc"
            continue
        env = t.props.get("ENVIRONMENT", [])
        if isinstance(env, str):
            env = [env]
        qemu_env = [e for e in env if e.startswith("QEMU_")]
        if qemu_env:
            t.reason = (f"its ENVIRONMENT configures qemu-user ({' '.join(qemu_env)}): "
                        + ("it needs a hart without C: the board's harts have C, and the board with none "
                           "(rv64g-linux) is not usable (its OpenSBI and Debian's static glibc are rv64gc code; "
                           "docs/boards.md)"
                           if any(e.startswith("QEMU_CPU=") and "c=false" in e for e in qemu_env)
                           else "that has no meaning in the guest"))
            continue
        args = cmd[2:]
        bad = [x for x in args if x.startswith("/") and os.path.exists(x)]
        if bad:
            t.reason = f"an argument names a file of the build host ({bad[0]})"
            continue
        if any("\n" in x for x in cmd + env):
            t.reason = "a newline in its argv or environment (the manifest is line based)"
            continue
        t.binary = binary
        t.env = env
        t.timeout = a.timeout or int(float(t.props.get("TIMEOUT", a.default_timeout)))
        wd = t.props.get("WORKING_DIRECTORY") or os.path.dirname(binary)
        t.cwd = guest_path(wd, build_dir) or "/tmp/lpg-cwd"
        t.argv = [guest_path(binary, build_dir)]
        for x in args:
            t.argv.append(x)
        for cap in a.cap:
            name, mx = cap
            for i in range(2, len(t.argv)):
                if t.argv[i - 1] == name and t.argv[i].isdigit() and int(t.argv[i]) > mx:
                    t.capped.append(f"{name} {t.argv[i]} -> {mx}")
                    t.argv[i] = str(mx)


def guest_path(path, build_dir):
    rel = os.path.relpath(os.path.realpath(path), os.path.realpath(build_dir))
    if rel.startswith(".."):
        return None
    return GUEST_ROOT + ("" if rel == "." else "/" + rel)


def ctest_json(a):
    r = subprocess.run([a.ctest, "--show-only=json-v1", "--test-dir", a.build_dir],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        die(f"ctest --show-only=json-v1 failed ({r.returncode}):\n{r.stderr.decode(errors='replace')}")
    return json.loads(r.stdout)


# ---- the console ----------------------------------------------------------------

def parse_console(lines, tests_by_id, info):
    cur = None
    pending = {}  # (id, stream) -> bytearray of a line in pieces
    runner_begin = runner_end = False
    board_end = None
    for raw in lines:
        line = raw.rstrip(b"\r")
        m = LINE_RE.match(line)
        if m:
            tid, kind, text = int(m.group(1)), m.group(2).decode(), m.group(3)
            t = tests_by_id.get(tid)
            stream = kind.lower()
            key = (tid, stream)
            if kind.isupper():
                pending.setdefault(key, bytearray()).extend(text)
                if t and stream in t.counts:
                    t.counts[stream] += len(text)
                continue
            full = bytes(pending.pop(key, b"")) + text
            if t is None:
                if tid == -1 and stream == "k":
                    info.setdefault("klog_between_tests", []).append(full.decode("utf-8", "replace"))
                continue
            if stream in t.counts:
                t.counts[stream] += len(text) + 1
            {"o": t.out, "k": t.klog, "x": t.xml_text}[stream].extend(full + b"\n")
            continue
        m = INFO_RE.match(line)
        if m:
            k, _, v = m.group(1).decode("utf-8", "replace").partition("=")
            if " " in k and not v:
                k, _, v = k.partition(" ")
            info[k] = v
            continue
        m = BEGIN_RE.search(line)
        if m:
            cur = tests_by_id.get(int(m.group(1)))
            if cur:
                cur.started = True
            continue
        m = END_RE.search(line)
        if m:
            t = tests_by_id.get(int(m.group(1)))
            if t:
                t.status = m.group(2).decode()
                t.seconds = float(m.group(3))
                t.end_counts = {"o": int(m.group(4)), "x": int(m.group(5))}
            cur = None
            continue
        if b"===LPG-RUNNER-BEGIN" in line:
            runner_begin = True
        elif b"===LPG-RUNNER-END===" in line:
            runner_end = True
        m = BOARD_END_RE.search(line)
        if m:
            board_end = m.group(1).decode("utf-8", "replace")
        elif cur is not None and line.strip():
            # Not the runner's: the kernel writing to the console directly
            # (a warning, an oops) while this test ran.
            cur.klog.extend(b"[console] " + line + b"\n")
    return runner_begin, runner_end, board_end


def any_match(patterns, text):
    if isinstance(patterns, str):
        patterns = [patterns]
    for p in patterns or []:
        try:
            if re.search(p, text, re.S):
                return p
        except re.error:
            if p in text:
                return p
    return None


def judge(t, board_note):
    """ctest's verdict on what ran in the guest (cmCTestRunTest::EndTest)."""
    out = t.out.decode("utf-8", "replace")
    p = t.props
    if not t.started:
        t.verdict, t.message = "error", f"not started: {board_note}"
        return
    if t.status is None:
        t.verdict, t.message = "error", f"did not run to the end: {board_note}"
        return
    if t.status.startswith("error:"):
        t.verdict, t.message = "error", f"the runner could not start it ({t.status})"
        return
    if t.status == "timeout":
        t.verdict, t.message = "failed", f"timeout: killed after {t.timeout} s"
        return
    if t.status.startswith("signal:"):
        t.verdict, t.message = "failed", f"killed by signal {t.status[7:]}"
        return
    rc = int(t.status[5:])
    skip = any_match(p.get("SKIP_REGULAR_EXPRESSION"), out)
    if skip is not None:
        t.verdict, t.message = "skipped", f"output matches SKIP_REGULAR_EXPRESSION {skip!r}"
        return
    if "SKIP_RETURN_CODE" in p and rc == int(p["SKIP_RETURN_CODE"]):
        t.verdict, t.message = "skipped", f"exit status {rc} is its SKIP_RETURN_CODE"
        return
    why = ""
    if p.get("PASS_REGULAR_EXPRESSION"):
        ok = any_match(p["PASS_REGULAR_EXPRESSION"], out) is not None
        if not ok:
            why = f"no output matches PASS_REGULAR_EXPRESSION {p['PASS_REGULAR_EXPRESSION']!r} (exit status {rc})"
    else:
        ok = rc == 0
        if not ok:
            why = f"exit status {rc}"
    fail = any_match(p.get("FAIL_REGULAR_EXPRESSION"), out)
    if fail is not None:
        ok, why = False, f"output matches FAIL_REGULAR_EXPRESSION {fail!r}"
    if p.get("WILL_FAIL") in (True, "true", "TRUE", "ON", "1"):
        ok = not ok
        why = "" if ok else f"WILL_FAIL, but it passed (exit status {rc})"
    t.verdict, t.message = ("passed", "") if ok else ("failed", why)


def check_sync_core_skip(t, info):
    """Guest only: a --sync membarrier run that failed with LP_ENOTSUP is a skip
    when, and only when, the guest's membarrier QUERY lacks
    PRIVATE_EXPEDITED_SYNC_CORE (riscv64 Linux 6.1: 0x19f), where libpatch must
    refuse LP_SYNC_MEMBARRIER. The suite's own properties stay as they are on
    every target (under qemu-user or natively an LP_ENOTSUP there is a failure);
    this rule lives here, with the kernel it is about."""
    argv = t.argv
    membarrier = any(x == "--sync=membarrier" or (x == "membarrier" and i > 0 and argv[i - 1] == "--sync")
                     for i, x in enumerate(argv))
    if not membarrier or t.verdict != "failed" or b"LP_ENOTSUP" not in t.out:
        return
    q = info.get("membarrier_query", "")
    try:
        query = int(q, 16)
    except ValueError:
        t.message += f"; LP_ENOTSUP, and the guest's membarrier QUERY is unknown ({q!r})"
        return
    if query >= 0 and query & SYNC_CORE:
        t.message += (f"; LP_ENOTSUP for --sync membarrier, but the guest kernel has "
                      f"PRIVATE_EXPEDITED_SYNC_CORE (membarrier QUERY {q})")
    else:
        t.verdict, t.message = "skipped", (f"LP_ENOTSUP for --sync membarrier: the guest kernel has no "
                                           f"PRIVATE_EXPEDITED_SYNC_CORE (membarrier QUERY {q})")


def parse_gtest_xml(t):
    """The cases of a GoogleTest XML report: (classname, name, time, result, message, text)."""
    if not t.xml_text:
        return None
    try:
        root = ET.fromstring(bytes(t.xml_text))
    except ET.ParseError as e:
        return f"unparseable ({e})"
    cases = []
    for tc in root.iter("testcase"):
        if tc.get("status") == "notrun" and tc.get("result") not in ("skipped", "suppressed"):
            continue
        msgs, texts = [], []
        for f in list(tc.findall("failure")) + list(tc.findall("error")):
            msgs.append(f.get("message", ""))
            texts.append(f.text or "")
        result = "failed" if msgs else ("skipped" if tc.get("result") == "skipped" else "passed")
        sk = tc.find("skipped")
        skip_msg = sk.get("message", "") if sk is not None else ""
        cases.append({"classname": tc.get("classname", ""), "name": tc.get("name", ""),
                      "time": tc.get("time", "0"), "result": result,
                      "message": "\n".join(msgs) or skip_msg, "text": "\n".join(texts)})
    return cases


# ---- the retry boot ----------------------------------------------------------------

def merge_retry(first, again, accel, retry_accel):
    """--retry-accel: `again` holds, in order, a retry_copy of each test of
    `first` that failed (or errored) in the main boot, as it ran in a second
    boot with -accel `retry_accel`. A test that passes (or skips) there is
    flaky: it takes the retry's results and keeps the first failure in .first
    (the log prints it, JUnit holds it as <flakyFailure>/<flakyError>, as
    Surefire's rerun does); the exit status counts it as passed. One that fails
    again keeps its first failure, with the second appended to its message.
    Returns the flaky tests."""
    flaky = []
    for t, c in zip([t for t in first if t.verdict in ("failed", "error")], again):
        if c.verdict in ("passed", "skipped"):
            t.first = {"verdict": t.verdict, "message": t.message, "text": t.failure_text(),
                       "status": t.status, "accel": accel, "seconds": t.seconds}
            for k in ("started", "status", "seconds", "out", "klog", "xml_text", "counts", "end_counts",
                      "verdict", "message", "cases"):
                setattr(t, k, getattr(c, k))
            t.message = (f"flaky: {t.first['verdict']} under -accel {accel} ({t.first['message']}), "
                         f"{c.verdict} under -accel {retry_accel}")
            flaky.append(t)
        else:
            t.message += f"; {c.verdict} again under -accel {retry_accel} ({c.message})"
    return flaky


# ---- JUnit -------------------------------------------------------------------------

def tail(b, limit=32768):
    s = b.decode("utf-8", "replace") if isinstance(b, (bytes, bytearray)) else b
    if len(s) > limit:
        s = f"[... {len(s) - limit} characters before ...]\n" + s[-limit:]
    # XML 1.0 cannot hold most control characters
    return re.sub(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "?", s)


def junit(tests, not_run, path, suite_name, props):
    root = ET.Element("testsuites", name=suite_name)
    by_exe = {}
    for t in tests:
        by_exe.setdefault(t.binary, []).append(t)
    totals = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
    for binary in sorted(by_exe, key=lambda b: by_exe[b][0].id):
        ts = by_exe[binary]
        exe = os.path.basename(binary)
        s = ET.SubElement(root, "testsuite", name=exe)
        pe = ET.SubElement(s, "properties")
        ET.SubElement(pe, "property", name="guest_path", value=ts[0].argv[0])
        for k, v in props.items():
            ET.SubElement(pe, "property", name=k, value=str(v))
        c = {"tests": 0, "failures": 0, "errors": 0, "skipped": 0}
        time_sum = 0.0
        for t in ts:
            cls, name = exe, t.name
            gcases = t.cases if isinstance(t.cases, list) else []
            # A GoogleTest case: its suite and name from the filter ctest runs it
            # with (the same whether or not it got to write its XML report).
            gf = next((x[len("--gtest_filter="):] for x in t.argv if x.startswith("--gtest_filter=")), None)
            if gf and "." in gf and not any(ch in gf for ch in "*?:-"):
                suite, _, case = gf.partition(".")
                cls, name = f"{exe}.{suite}", case
            elif len(gcases) == 1:
                cls, name = f"{exe}.{gcases[0]['classname']}", gcases[0]["name"]
            tc = ET.SubElement(s, "testcase", classname=cls, name=name, time=f"{t.seconds:.3f}")
            tp = ET.SubElement(tc, "properties")
            ET.SubElement(tp, "property", name="ctest_name", value=t.name)
            ET.SubElement(tp, "property", name="argv", value=shlex.join(t.argv))
            if t.capped:
                ET.SubElement(tp, "property", name="capped_in_guest", value="; ".join(t.capped))
            if t.status:
                ET.SubElement(tp, "property", name="status", value=t.status)
            c["tests"] += 1
            time_sum += t.seconds
            if t.verdict in ("failed", "error"):
                kind = "failure" if t.verdict == "failed" else "error"
                c["failures" if kind == "failure" else "errors"] += 1
                msg = t.message
                text = ""
                gfail = [g for g in gcases if g["result"] == "failed"]
                if gfail:
                    msg = "; ".join(g["message"].splitlines()[0] if g["message"] else "" for g in gfail) or msg
                    text = "\n\n".join(g["text"] for g in gfail)
                if not text:
                    text = t.message + "\n\n--- output (tail) ---\n" + tail(t.out, 8192)
                if t.verdict == "failed" and msg != t.message:
                    text = f"ctest verdict: {t.message}\n\n" + text
                e = ET.SubElement(tc, kind, message=tail(msg, 2000))
                e.text = tail(text)
            elif t.verdict == "skipped":
                c["skipped"] += 1
                gskip = [g for g in gcases if g["result"] == "skipped"]
                ET.SubElement(tc, "skipped", message=tail(
                    (gskip[0]["message"] if gskip and gskip[0]["message"] else t.message), 2000))
            if t.first:
                fe = ET.SubElement(tc, "flakyFailure" if t.first["verdict"] == "failed" else "flakyError",
                                   message=tail(f"{t.first['message']} (-accel {t.first['accel']})", 2000))
                fe.text = tail(t.first["text"])
            so = ET.SubElement(tc, "system-out")
            so.text = tail(t.out)
            if t.klog:
                se = ET.SubElement(tc, "system-err")
                se.text = "kernel log while it ran:\n" + tail(t.klog)
        for k in c:
            s.set(k, str(c[k]))
            totals[k] += c[k]
        s.set("time", f"{time_sum:.3f}")
    if not_run:
        s = ET.SubElement(root, "testsuite", name="not-run-in-guest")
        for t in not_run:
            tc = ET.SubElement(s, "testcase", classname="not-run-in-guest", name=t.name, time="0")
            ET.SubElement(tc, "skipped", message=t.reason)
        s.set("tests", str(len(not_run)))
        s.set("skipped", str(len(not_run)))
        s.set("failures", "0")
        s.set("errors", "0")
        totals["tests"] += len(not_run)
        totals["skipped"] += len(not_run)
    for k in totals:
        root.set(k, str(totals[k]))
    ET.indent(root)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


# ---- main --------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build-dir", required=True, help="the cross build tree whose ctest suite runs")
    ap.add_argument("--source-dir", required=True)
    ap.add_argument("--ctest", default="ctest")
    ap.add_argument("--emulator", required=True, help="CMAKE_CROSSCOMPILING_EMULATOR")
    ap.add_argument("--arch", required=True)
    ap.add_argument("--host-build-dir", required=True, help="the host build with farm/boards")
    ap.add_argument("--board", required=True, help="a board description in <host build>/boards")
    ap.add_argument("--runner", required=True, help="lp-guest-runner (this build)")
    ap.add_argument("--strip", help="the target's strip (debug info off the binaries)")
    ap.add_argument("--junit", required=True)
    ap.add_argument("--console-log", help="where to keep the whole console")
    ap.add_argument("--suite-name", default="linux-guest")
    ap.add_argument("--exclude-label", action="append", default=[],
                    help="tests with this label are not part of the suite (the guest suites themselves)")
    ap.add_argument("--only", help="run only the tests whose name matches this regex")
    ap.add_argument("--exclude", action="append", default=[], metavar="REGEX=REASON",
                    help="tests whose name matches REGEX are not run here; REASON says where they run and why "
                         "(listed as not run, never left out silently)")
    ap.add_argument("--accel", help="override the board's -accel (e.g. tcg,thread=single)")
    ap.add_argument("--retry-accel", metavar="ACCEL",
                    help="run the tests that fail in the main boot again in a second boot with this -accel; "
                         "one that passes there is reported FLAKY (JUnit <flakyFailure>) and counts as passed")
    ap.add_argument("--cap", action="append", default=[], metavar="NAME=MAX",
                    help="lower the numeric argument after NAME to MAX in the guest")
    ap.add_argument("--default-timeout", type=int, default=300, help="per test, when it has no TIMEOUT")
    ap.add_argument("--timeout", type=int, help="every test's timeout, whatever its TIMEOUT (debugging)")
    ap.add_argument("--qemu-timeout", type=int, default=2400, help="the whole boot, wall seconds")
    ap.add_argument("--memory", help="override the board's memory (-m)")
    ap.add_argument("--list", action="store_true", help="classify and print, do not boot")
    ap.add_argument("--keep", help="keep the staging directory (initramfs, manifest) here")
    a = ap.parse_args()
    caps = []
    for c in a.cap:
        name, _, mx = c.partition("=")
        if not name or not mx.isdigit():
            die(f"--cap wants NAME=MAX, got {c!r}")
        caps.append((name, int(mx)))
    a.cap = caps
    excludes = []
    for x in a.exclude:
        rx, _, why = x.partition("=")
        if not rx or not why:
            die(f"--exclude wants REGEX=REASON, got {x!r}")
        try:
            excludes.append((re.compile(rx), why))
        except re.error as e:
            die(f"--exclude: bad regex {rx!r}: {e}")
    a.source_dir = os.path.realpath(a.source_dir)
    build_dir = os.path.realpath(a.build_dir)
    t_start = time.monotonic()

    # The host build's artifacts: the board, its kernel and init, farm-initramfs.
    boards_dir = os.path.join(a.host_build_dir, "boards")
    desc_path = os.path.join(boards_dir, a.board + ".json")
    farm_initramfs = os.path.join(a.host_build_dir, "farm", "boards", "farm-initramfs")
    build_cmd = (f"cmake --preset host && cmake --build {a.host_build_dir} --target "
                 f"farm-initramfs board-init-{a.arch} <kernel target>")
    if not os.path.exists(desc_path):
        die(f"no board description {desc_path}: the host build (LP_HOST_BUILD_DIR={a.host_build_dir}) "
            f"is missing or has no farm/boards; build it with:\n  {build_cmd}")
    with open(desc_path) as f:
        board = json.load(f)
    build_cmd = build_cmd.replace("<kernel target>", board["kernel_target"])
    missing = [p for p in (os.path.join(boards_dir, board["kernel"]), os.path.join(boards_dir, board["init"]),
                           farm_initramfs) if not os.path.exists(p)]
    if missing:
        die(f"not built: {', '.join(missing)}; build them with:\n  {build_cmd}")
    if not board.get("usable", True):
        die(f"board {a.board} is marked unusable in {desc_path}")

    suite = ctest_json(a)
    tests, excluded = [], []
    for ct in suite["tests"]:
        t = Test(ct)
        if any(l in a.exclude_label for l in t.labels):
            excluded.append(t.name)
            continue
        tests.append(t)
    classify(tests, a, build_dir)
    if a.only:
        for t in tests:
            if t.reason is None and not re.search(a.only, t.name):
                t.reason = f"not selected (--only {a.only})"
    for rx, why in excludes:
        for t in tests:
            if t.reason is None and rx.search(t.name):
                t.reason = why
    run = [t for t in tests if t.reason is None]
    not_run = [t for t in tests if t.reason is not None]
    for i, t in enumerate(run):
        t.id = i
        if any(x.startswith("--gtest_filter=") for x in t.argv):
            t.xml = f"{GUEST_XML_DIR}/{i}.xml"
            t.argv.append(f"--gtest_output=xml:{t.xml}")
    log(f"run_suites: {len(suite['tests'])} ctest tests in {build_dir}: {len(run)} run in the guest "
        f"({len({t.binary for t in run})} executables), {len(not_run)} not run"
        + (f", {len(excluded)} of the guest suites themselves left out ({', '.join(excluded)})" if excluded else ""))
    for t in not_run:
        log(f"run_suites: not run in the guest: {t.name}: {t.reason}")
    for t in run:
        if t.capped:
            log(f"run_suites: capped in the guest: {t.name}: {', '.join(t.capped)}")
    if a.list:
        for t in run:
            log(f"  [{t.id}] {t.name}: {shlex.join(t.argv)} (timeout {t.timeout} s, cwd {t.cwd})")
        return 0
    if not run:
        die("no test to run in the guest", 1)

    ctx = {"a": a, "board": board, "boards_dir": boards_dir, "farm_initramfs": farm_initramfs,
           "build_dir": build_dir}
    accel = a.accel or board.get("accel") or "(qemu's default)"
    info = {}
    b1 = boot_and_judge(ctx, run, a.accel or board.get("accel"), a.console_log, a.keep, info)
    flaky = []
    if a.retry_accel and a.retry_accel != accel:
        failed = [t for t in run if t.verdict in ("failed", "error")]
        if failed:
            log("")
            log(f"run_suites: {len(failed)} failed under -accel {accel}; running them again in a second boot "
                f"with -accel {a.retry_accel} (--retry-accel: tests/linux-guest/README.md, \"Flaky\")")
            again = [t.retry_copy(i) for i, t in enumerate(failed)]
            b2 = boot_and_judge(ctx, again, a.retry_accel,
                                a.console_log + ".retry" if a.console_log else None,
                                a.keep + "/retry" if a.keep else None, {})
            b1["corrupted"] += b2["corrupted"]
            b1["wall"] += b2["wall"]
            flaky = merge_retry(run, again, accel, a.retry_accel)
    wall = b1["wall"]
    props = {"board": a.board, "kernel": info.get("kernel", "?"), "online_cpus": info.get("online_cpus", "?"),
             "membarrier_query": info.get("membarrier_query", "?"), "qemu": shlex.join(b1["cmd"]),
             "wall_seconds": f"{wall:.1f}"}
    if a.retry_accel:
        props["retry_accel"] = a.retry_accel
    junit(run, not_run, a.junit, a.suite_name, props)

    counts = {}
    for t in run:
        counts[t.verdict] = counts.get(t.verdict, 0) + 1
    log("")
    log(f"run_suites: guest {info.get('kernel', '?')}, {info.get('online_cpus', '?')} cpus, "
        f"membarrier QUERY {info.get('membarrier_query', '?')}")
    log("run_suites: per executable (passed/failed/skipped/error, guest seconds):")
    by_exe = {}
    for t in run:
        by_exe.setdefault(os.path.relpath(t.binary, build_dir), []).append(t)
    for exe, ts in by_exe.items():
        c = {v: sum(1 for t in ts if t.verdict == v) for v in ("passed", "failed", "skipped", "error")}
        log(f"  {exe:45s} {c['passed']:4d} {c['failed']:4d} {c['skipped']:4d} {c['error']:4d} "
            f"{sum(t.seconds for t in ts):8.1f}")
    for t in run:
        if t.verdict == "skipped":
            log(f"run_suites: skipped: {t.name}: {t.message}")
    for t in flaky:
        log(f"run_suites: FLAKY: {t.name}: {t.message}")
        for ln in t.first["text"].splitlines()[:12]:
            log(f"    {ln}")
    bad = [t for t in run if t.verdict in ("failed", "error")]
    for t in bad:
        log(f"run_suites: {t.verdict.upper()}: {t.name}: {t.message}")
        for ln in t.failure_text().splitlines()[:12] if t.cases else t.failure_text().splitlines()[-12:]:
            log(f"    {ln}")
        for ln in t.klog.decode("utf-8", "replace").splitlines()[-6:]:
            log(f"    kernel: {ln}")
    for n in b1["corrupted"]:
        log(f"run_suites: warning: {n}: the console's byte count differs from the runner's (a line lost or mangled)")
    log(f"run_suites: {len(run)} tests in the guest: " + ", ".join(f"{v} {n}" for v, n in sorted(counts.items()))
        + (f" ({len(flaky)} of them flaky: failed under -accel {accel}, passed under -accel {a.retry_accel})"
           if flaky else "")
        + f"; {len(not_run)} not run in the guest (see above)")
    log(f"run_suites: boot to runner {b1['t_begin'] or 0:.1f} s, qemu wall {wall:.1f} s, "
        f"total {time.monotonic() - t_start:.1f} s; JUnit: {a.junit}")
    return 1 if bad else 0


def boot_and_judge(ctx, run, accel, console_log, keep, info):
    """One boot of the board running `run` (ids 0..n-1): stages the
    initramfs, boots, parses the console into each test and judges it.
    Returns {"cmd", "wall", "t_begin", "corrupted"}; fills `info` (@info lines)."""
    a, board, boards_dir, build_dir = ctx["a"], ctx["board"], ctx["boards_dir"], ctx["build_dir"]
    farm_initramfs = ctx["farm_initramfs"]
    stage = keep or tempfile.mkdtemp(prefix="linux-guest.")
    os.makedirs(stage, exist_ok=True)
    try:
        # Binaries, stripped of debug info (several MB each otherwise).
        files = {}
        for t in run:
            if t.binary in files:
                continue
            dst = os.path.join(stage, "bin", str(len(files)))
            os.makedirs(os.path.dirname(dst), exist_ok=True)
            if a.strip:
                r = subprocess.run([a.strip, "--strip-debug", "-o", dst, t.binary])
                if r.returncode != 0:
                    die(f"{a.strip} --strip-debug {t.binary} failed")
            else:
                shutil.copy2(t.binary, dst)
            files[t.binary] = dst
        runner = os.path.join(stage, "lp-guest-runner")
        if a.strip:
            subprocess.run([a.strip, "-o", runner, a.runner], check=True)
        else:
            shutil.copy2(a.runner, runner)
        manifest = os.path.join(stage, "manifest")
        with open(manifest, "w") as f:
            for t in run:
                f.write(f"test {t.id}\ntimeout {t.timeout}\ncwd {t.cwd}\n")
                if t.xml:
                    f.write(f"xml {t.xml}\n")
                for x in t.argv:
                    f.write(f"arg {x}\n")
                env = ["PATH=/job/bin:/bin", "HOME=/tmp", "TMPDIR=/tmp"] + t.env
                for e in env:
                    f.write(f"env {e}\n")
                f.write("end\n")
        cpio = os.path.join(stage, "suites.cpio")
        # /job/timeout: init kills the runner a little before qemu is killed.
        mk = [farm_initramfs, "-o", cpio, "--init", os.path.join(boards_dir, board["init"]),
              "--file", f"{RUNNER}={runner}", "--file", f"{MANIFEST}={manifest}",
              "--dir", GUEST_XML_DIR, "--timeout", str(max(a.qemu_timeout - 30, 30))]
        for host, dst in files.items():
            mk += ["--file", f"{guest_path(host, build_dir)}={dst}"]
        mk += ["--", RUNNER, MANIFEST]
        r = subprocess.run(mk)
        if r.returncode != 0:
            die(f"farm-initramfs exited {r.returncode}", 1)
        size = os.path.getsize(cpio)
        log(f"run_suites: initramfs {size / 1e6:.1f} MB ({len(files)} executables, stripped of debug info)")

        # The qemu command exactly as the board description says
        # (farm/boards/tests/boot_test.py builds it the same way).
        cmd = [board["qemu"], "-M", board["machine"], "-cpu", board["cpu"], "-smp", str(board["smp"]),
               "-m", a.memory or board["memory"]]
        if board.get("bios"):
            cmd += ["-bios", board["bios"]]
        if accel:
            cmd += ["-accel", accel]
        cmd += board.get("qemu_args", [])
        cmd += ["-kernel", os.path.join(boards_dir, board["kernel"]), "-initrd", cpio, "-append", board["append"]]
        full = ["timeout", "-k", "10", str(a.qemu_timeout)] + cmd
        log("+ " + shlex.join(full))
        t0 = time.monotonic()
        p = subprocess.Popen(full, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        lines = []
        con = open(console_log, "wb") if console_log else None
        by_id = {t.id: t for t in run}
        t_begin = None
        for raw in p.stdout:
            raw = raw.rstrip(b"\n")
            lines.append(raw)
            if con:
                con.write(raw + b"\n")
                con.flush()
            line = raw.rstrip(b"\r")
            if t_begin is None and b"===LPG-RUNNER-BEGIN" in line:
                t_begin = time.monotonic() - t0
            m = END_RE.search(line)
            if m:
                t = by_id.get(int(m.group(1)))
                log(f"[{time.monotonic() - t0:7.1f} s] {int(m.group(1)) + 1}/{len(run)} {t.name if t else '?'}: "
                    f"{m.group(2).decode()} ({float(m.group(3)):.1f} s)")
            elif not LINE_RE.match(line) and not BEGIN_RE.search(line):
                log("| " + line.decode("utf-8", "replace"))
        rc = p.wait()
        wall = time.monotonic() - t0
        if con:
            con.close()
    finally:
        if not keep:
            shutil.rmtree(stage, ignore_errors=True)

    runner_begin, runner_end, board_end = parse_console(lines, by_id, info)
    killed = next((ln for ln in lines if re.search(rb"qemu-system-\S+: terminating on signal", ln)), None)
    if rc in (124, 137):
        board_note = f"qemu was killed after {a.qemu_timeout} s (--qemu-timeout)"
    elif killed is not None:
        board_note = f"qemu was stopped from outside: {killed.decode('utf-8', 'replace').strip()}"
    elif board_end and board_end.startswith("END timeout"):
        board_note = "the board init killed the runner at /job/timeout"
    elif not runner_begin:
        board_note = f"the runner never started (qemu exit {rc}, board: {board_end or 'no END marker'})"
    elif not runner_end:
        board_note = f"the runner stopped early (qemu exit {rc}, board: {board_end or 'no END marker'})"
    else:
        board_note = f"qemu exit {rc}"
    corrupted = []
    for t in run:
        judge(t, board_note)
        if t.xml:
            cases = parse_gtest_xml(t)
            if isinstance(cases, list):
                t.cases = cases
            elif cases and t.verdict == "passed":
                t.verdict, t.message = "error", f"its GoogleTest XML report is {cases}"
        check_sync_core_skip(t, info)
        if t.end_counts and (t.end_counts["o"] != t.counts["o"] or t.end_counts["x"] != t.counts["x"]):
            corrupted.append(t.name)
    return {"cmd": cmd, "wall": wall, "t_begin": t_begin, "corrupted": corrupted}


if __name__ == "__main__":
    sys.exit(main())
