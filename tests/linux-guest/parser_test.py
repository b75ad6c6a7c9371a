#!/usr/bin/env python3
"""The host side of the linux-guest suites without a guest: run_suites.py's
console parser, ctest verdicts and JUnit writer on a made-up console (markers,
long lines in pieces, kernel lines, a lost line, a crash, a timeout, a guest
that stops early, the SYNC_CORE skip check, a retry boot's flaky and twice-failed tests). Exit 0 if every check holds."""
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run_suites as rs  # noqa: E402

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print(f"FAIL: {what}")


def mk(name, binary, props=None, argv=None, xml=False):
    t = rs.Test({"name": name, "command": ["qemu-riscv64", binary] + (argv or []),
                 "properties": [{"name": k, "value": v} for k, v in (props or {}).items()]})
    t.binary = binary
    t.argv = ["/job/t/" + os.path.basename(binary)] + (argv or [])
    t.timeout = 300
    if xml:
        t.xml = "/tmp/lpg/x.xml"
    return t


GTEST_XML_FAIL = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<testsuites tests="1" failures="1" name="AllTests">',
    '  <testsuite name="Api" tests="1" failures="1">',
    '    <testcase name="Fails" status="run" result="completed" time="0.01" classname="Api">',
    '      <failure message="a.cpp:3&#x0A;Expected equality" type=""><![CDATA[a.cpp:3',
    'Expected equality of these values:]]></failure>',
    '    </testcase>',
    '  </testsuite>',
    '</testsuites>',
]
GTEST_XML_SKIP = [
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<testsuites tests="1" name="AllTests"><testsuite name="Api" tests="1" skipped="1">',
    '<testcase name="Skips" status="run" result="skipped" time="0" classname="Api">'
    '<skipped message="a.cpp:9&#x0A;no SYNC_CORE"/></testcase></testsuite></testsuites>',
]


def console(tests_lines):
    out = [b"OpenSBI v1.1", b"[    0.000000] Linux version 6.1.192", b"===FARM-BOARD-BEGIN===",
           b"===LPG-RUNNER-BEGIN tests=9===", b"@info kernel=Linux 6.1.192 riscv64",
           b"@info membarrier_query=0x19f", b"@info meminfo MemTotal:        1000000 kB"]
    out += tests_lines
    return [x + b"\r" for x in out]  # the console's \r\n


def block(tid, out=(), xml=(), status="exit:0", klog=(), long_piece=None, lose=0):
    lines = [f"===LPG-BEGIN {tid}===".encode()]
    ob = xb = 0
    if long_piece:
        lines.append(f"@{tid}:O ".encode() + long_piece)
        lines.append(f"@{tid}:o ".encode() + b"TAIL")
        ob += len(long_piece) + 4 + 1
    for ln in out:
        lines.append(f"@{tid}:o {ln}".encode())
        ob += len(ln.encode()) + 1
    for ln in klog:
        lines.append(f"@{tid}:k {ln}".encode())
    for ln in xml:
        lines.append(f"@{tid}:x {ln}".encode())
        xb += len(ln.encode()) + 1
    if lose:
        del lines[1:1 + lose]  # the console lost lines: the counts tell
    lines.append(f"===LPG-END {tid} status={status} seconds=1.500 out={ob} xml={xb}===".encode())
    return lines


def main():
    pass_re = {"PASS_REGULAR_EXPRESSION": ['"verdict":"pass"']}
    skip_gtest = {"SKIP_REGULAR_EXPRESSION": ["\\[  SKIPPED \\]"]}
    tests = [
        mk("Api.Passes", "/b/tests/live_tests", skip_gtest, ["--gtest_filter=Api.Passes"], xml=True),
        mk("Api.Fails", "/b/tests/live_tests", skip_gtest, ["--gtest_filter=Api.Fails"], xml=True),
        mk("Api.Skips", "/b/tests/live_tests", skip_gtest, ["--gtest_filter=Api.Skips"], xml=True),
        mk("stress.long", "/b/patch-stress", pass_re, ["--sync", "flush_icache"]),
        mk("stress.mb", "/b/patch-stress", pass_re, ["--sync", "membarrier"]),
        mk("stress.crash", "/b/patch-stress", pass_re),
        mk("stress.bad_usage", "/b/patch-stress", {"WILL_FAIL": True}),
        mk("stress.hang", "/b/patch-stress", pass_re),
        mk("never.started", "/b/tests/core_tests"),
    ]
    for i, t in enumerate(tests):
        t.id = i
    passed_xml = ['<?xml version="1.0"?>', '<testsuites><testsuite name="Api">',
                  '<testcase name="Passes" status="run" result="completed" time="0" classname="Api"/>',
                  '</testsuite></testsuites>']
    long_json = b'{"workload":"patch-stress",' + b'"x":1,' * 500
    lines = console(
        block(0, ["[ RUN      ] Api.Passes", "[       OK ] Api.Passes"], passed_xml)
        + [b"[   12.000000] random: a kernel line on the console"]  # outside any test: ignored
        + block(1, ["[ RUN      ] Api.Fails", "[  FAILED  ] Api.Fails"], GTEST_XML_FAIL, status="exit:1",
                klog=["lp[42]: unhandled signal 4 code 0x1"])
        + block(2, ["[  SKIPPED ] Api.Skips"], GTEST_XML_SKIP)
        + block(3, [], long_piece=long_json + b'"verdict":"pass"')
        + block(4, ['{"error":"LP_ENOTSUP: not supported","verdict":"fail"}'], status="exit:1")
        + block(5, ["partial"], status="signal:11", lose=1)
        + block(6, ["patch-stress: bad --threads"], status="exit:2")
        + [b"===LPG-BEGIN 7===", b"@7:o started", b"[  300.0] rcu: INFO: rcu_sched self-detected stall"]
        # the guest stops here: 7 has no END, 8 never began
    )
    by_id = {t.id: t for t in tests}
    info = {}
    begin, end, board_end = rs.parse_console(lines, by_id, info)
    check(begin and not end and board_end is None, f"runner begin/end/board: {begin} {end} {board_end}")
    check(info.get("membarrier_query") == "0x19f", f"info membarrier_query: {info}")
    check(info.get("kernel") == "Linux 6.1.192 riscv64", f"info kernel: {info.get('kernel')}")
    check(info.get("meminfo", "").startswith("MemTotal:"), f"info meminfo: {info.get('meminfo')}")
    for t in tests:
        rs.judge(t, "the runner stopped early")
        if t.xml:
            c = rs.parse_gtest_xml(t)
            if isinstance(c, list):
                t.cases = c
        rs.check_sync_core_skip(t, info)
    v = {t.name: t.verdict for t in tests}
    want = {"Api.Passes": "passed", "Api.Fails": "failed", "Api.Skips": "skipped", "stress.long": "passed",
            "stress.mb": "skipped", "stress.crash": "failed", "stress.bad_usage": "passed",
            "stress.hang": "error", "never.started": "error"}
    for k, w in want.items():
        check(v[k] == w, f"{k}: verdict {v[k]}, want {w} ({by_id[[t.name for t in tests].index(k)].message})")
    t3 = tests[3]
    check(t3.out.startswith(long_json) and t3.out.endswith(b'"verdict":"pass"TAIL\n'),
          f"long line reassembled: {bytes(t3.out[-40:])!r}")
    check(t3.counts["o"] == t3.end_counts["o"], f"byte counts of the long line: {t3.counts} {t3.end_counts}")
    check(tests[5].counts["o"] != tests[5].end_counts["o"], "a lost line shows in the byte counts")
    check(b"unhandled signal 4" in tests[1].klog, "kernel log lines go to their test")
    check(b"rcu_sched self-detected stall" in tests[7].klog, "a console line inside a test is kept with it")
    check("no PRIVATE_EXPEDITED_SYNC_CORE" in tests[4].message, f"SYNC_CORE note: {tests[4].message}")
    check(tests[1].cases and tests[1].cases[0]["message"].startswith("a.cpp:3"), f"gtest failure: {tests[1].cases}")
    check(tests[2].cases and tests[2].cases[0]["result"] == "skipped", f"gtest skip: {tests[2].cases}")

    # The same skip on a kernel WITH SYNC_CORE is a failure.
    t = mk("stress.mb2", "/b/patch-stress", pass_re, ["--sync", "membarrier"])
    t.started, t.status, t.out = True, "exit:1", bytearray(b'"error":"LP_ENOTSUP: x"')
    rs.judge(t, "")
    rs.check_sync_core_skip(t, {"membarrier_query": "0x1ff"})
    check(t.verdict == "failed" and "has PRIVATE_EXPEDITED_SYNC_CORE" in t.message, f"SYNC_CORE present: {t.message}")
    # LP_ENOTSUP from a run that does not ask for membarrier stays a failure.
    t = mk("stress.fi", "/b/patch-stress", pass_re, ["--sync", "flush_icache"])
    t.started, t.status, t.out = True, "exit:1", bytearray(b'"error":"LP_ENOTSUP: x"')
    rs.judge(t, "")
    rs.check_sync_core_skip(t, {"membarrier_query": "0x19f"})
    check(t.verdict == "failed", f"LP_ENOTSUP without membarrier: {t.verdict} {t.message}")

    # Timeout and WILL_FAIL that passes.
    t = mk("x.timeout", "/b/x")
    t.started, t.status = True, "timeout"
    rs.judge(t, "")
    check(t.verdict == "failed" and "timeout" in t.message, f"timeout: {t.verdict} {t.message}")
    t = mk("x.willfail", "/b/x", {"WILL_FAIL": "TRUE"})
    t.started, t.status = True, "exit:0"
    rs.judge(t, "")
    check(t.verdict == "failed", f"WILL_FAIL + exit 0: {t.verdict}")

    # JUnit: per executable a testsuite, per test a testcase, not-run tests listed.
    nr = rs.Test({"name": "lptrace.counts", "command": ["bash", "run.sh"]})
    nr.reason = "runs on the build host (bash run.sh)"
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "j.xml")
        rs.junit(tests, [nr], path, "riscv64-linux: test", {"board": "rv64gc-linux"})
        root = ET.parse(path).getroot()
        suites = {s.get("name"): s for s in root.findall("testsuite")}
        check(set(suites) == {"live_tests", "patch-stress", "core_tests", "not-run-in-guest"}, f"suites: {set(suites)}")
        lt = suites["live_tests"]
        check(lt.get("tests") == "3" and lt.get("failures") == "1" and lt.get("skipped") == "1",
              f"live_tests counts: {lt.attrib}")
        names = [(c.get("classname"), c.get("name")) for c in lt.findall("testcase")]
        check(("live_tests.Api", "Fails") in names, f"gtest case names: {names}")
        f = lt.find("testcase[@name='Fails']/failure")
        check(f is not None and "Expected equality" in (f.text or ""), "gtest failure text in JUnit")
        ps = suites["patch-stress"]
        check(ps.get("errors") == "1" and ps.get("failures") == "1", f"patch-stress counts: {ps.attrib}")
        check(suites["core_tests"].get("errors") == "1", "a test never started is an error")
        n = suites["not-run-in-guest"].find("testcase/skipped")
        check(n is not None and "build host" in n.get("message"), "not-run reason in JUnit")
        check(root.get("tests") == "10", f"total tests: {root.get('tests')}")
    # --retry-accel: the failed tests of the main boot (Api.Fails, stress.crash; stress.hang and
    # never.started errored) run again in a second boot; those passing there are flaky, with their first
    # failure kept (log, JUnit <flakyFailure>/<flakyError>), the others keep failing with both reasons.
    first_fail = [t for t in tests if t.verdict in ("failed", "error")]
    check([t.name for t in first_fail] == ["Api.Fails", "stress.crash", "stress.hang", "never.started"],
          f"failed in the main boot: {[t.name for t in first_fail]}")
    again = [t.retry_copy(i) for i, t in enumerate(first_fail)]
    check(again[0].id == 0 and again[0].argv[-1] == "--gtest_output=xml:/tmp/lpg/0.xml"
          and sum(x.startswith("--gtest_output=") for x in again[0].argv) == 1 and again[0].verdict is None
          and not again[0].out, f"retry copy: {again[0].id} {again[0].argv} {again[0].verdict}")
    retry_passed_xml = [x.replace('name="Passes"', 'name="Fails"') for x in passed_xml]
    lines2 = console(block(0, ["[ RUN      ] Api.Fails", "[       OK ] Api.Fails"], retry_passed_xml)
                     + block(1, ["still broken"], status="signal:11")
                     + block(2, ['{"verdict":"pass"}'])
                     + block(3, [], status="exit:0")
                     + [b"===LPG-RUNNER-END===", b"===FARM-BOARD-END rc=0==="])
    rs.parse_console(lines2, {t.id: t for t in again}, {})
    for t in again:
        rs.judge(t, "qemu exit 0")
        if t.xml:
            c = rs.parse_gtest_xml(t)
            if isinstance(c, list):
                t.cases = c
    flaky = rs.merge_retry(tests, again, "tcg,thread=multi", "tcg,thread=single")
    check([t.name for t in flaky] == ["Api.Fails", "stress.hang", "never.started"], f"flaky: {[t.name for t in flaky]}")
    fails = tests[1]
    check(fails.verdict == "passed" and fails.first["verdict"] == "failed"
          and "Expected equality" in fails.first["text"] and "flaky: failed under -accel tcg,thread=multi" in fails.message
          and b"[       OK ]" in fails.out, f"flaky Api.Fails: {fails.verdict} {fails.message} {fails.first}")
    crash = tests[5]
    check(crash.verdict == "failed" and "failed again under -accel tcg,thread=single (killed by signal 11)" in crash.message,
          f"failing twice: {crash.verdict} {crash.message}")
    check(tests[7].verdict == "passed" and tests[7].first["verdict"] == "error", f"flaky error: {tests[7].first}")
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "j.xml")
        rs.junit(tests, [], path, "riscv64-linux: test", {})
        root = ET.parse(path).getroot()
        f = root.find(".//testcase[@name='Fails']/flakyFailure")
        check(f is not None and "tcg,thread=multi" in f.get("message") and "Expected equality" in (f.text or "")
              and root.find(".//testcase[@name='Fails']/failure") is None, "JUnit: flakyFailure, no failure")
        check(root.find(".//testcase/flakyError") is not None, "JUnit: flakyError for a test that errored first")
        check(root.get("failures") == "1" and root.get("errors") == "0", f"JUnit totals after the retry: {root.attrib}")
    # Bad --exclude values are refused with the reason (exit 2), before anything is read.
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run_suites.py")
    base = [sys.executable, script, "--build-dir", "/nonexistent", "--source-dir", "/nonexistent", "--ctest", "ctest",
            "--emulator", "qemu-riscv64", "--arch", "riscv64", "--host-build-dir", "/nonexistent", "--board", "b",
            "--runner", "/nonexistent", "--junit", "/nonexistent/j.xml"]
    for bad, why in (("no-reason", "--exclude wants REGEX=REASON"), ("(unclosed=why", "--exclude: bad regex")):
        r = subprocess.run(base + [f"--exclude={bad}"], capture_output=True, text=True)
        check(r.returncode == 2 and why in r.stdout, f"--exclude {bad!r}: exit {r.returncode}, {r.stdout.strip()!r}")
    if failures:
        print(f"parser_test: {len(failures)} check(s) failed")
        return 1
    print("parser_test: PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
