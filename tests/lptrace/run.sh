#!/usr/bin/env bash
# lptrace end to end (label lptrace): usage: run.sh CASE LPTRACE WORKLOAD SCRATCH
#   CASE  counts | exits | fork | exec | exec_image | dlopen | signal | debian | bad | attach | attach_start |
#         ctl | attach_refused | record | interval | docs
# Runs lptrace on the workload (known call counts, tests/lptrace/workload.c)
# and on Debian's own programs, and checks the reports exactly (JSON, read
# with python3). Exit 0 pass, 1 fail.
set -u -o pipefail
case_name=$1 lptrace=$2 workload=$3 scratch=$4
# check FILE EXPR..., expect STATUS REGEX ARGS...
source "$(dirname "${BASH_SOURCE[0]}")"/lib.sh || exit 1
rm -rf "$scratch" && mkdir -p "$scratch" || exit 1
cd "$scratch" || exit 1
fail() { echo "lptrace.$case_name: FAIL: $*" >&2; exit 1; }

# trace_ok FILE EVENTS DROPPED: FILE is a Chrome trace-event file (the format
# Perfetto and chrome://tracing load) by the format's rules, with EVENTS
# complete events and DROPPED dropped ("-": any); EVENTS 800: the record
# case's exact content and nesting.
trace_ok() {
  python3 - "$@" <<'PY2' || fail "$1 is not a valid trace (above)"
import json, sys, collections
t = json.load(open(sys.argv[1])); want = int(sys.argv[2]); dropped = sys.argv[3]
assert isinstance(t, dict) and isinstance(t["traceEvents"], list), "no traceEvents array"
assert t.get("displayTimeUnit") in ("ms", "ns"), "bad displayTimeUnit"
xs = []
for e in t["traceEvents"]:
    assert isinstance(e.get("name"), str) and isinstance(e.get("pid"), int), e
    ph = e.get("ph")
    assert ph in ("X", "i", "M"), e
    if ph == "M":
        assert e["name"] in ("process_name", "thread_name") and isinstance(e["args"]["name"], str), e
        continue
    assert isinstance(e.get("tid"), int) and isinstance(e.get("ts"), (int, float)) and e["ts"] >= 0, e
    if ph == "X":
        assert isinstance(e.get("dur"), (int, float)) and e["dur"] >= 0, e
        xs.append(e)
    else:
        assert e.get("s") in ("t", "p", "g"), e
assert len(xs) == want, (len(xs), want)
assert dropped == "-" or t["otherData"]["dropped_events"] == int(dropped), t["otherData"]
if want == 800:
    per = collections.Counter((e["tid"], e["name"].split(":")[1]) for e in xs)
    assert sorted(per.values()) == [100] * 8, per
    # Every wl_sled_add runs inside a wl_sled_twice of its thread (it is called by it).
    outer = collections.defaultdict(list)
    for e in xs:
        if e["name"].endswith(":wl_sled_twice"): outer[e["tid"]].append((e["ts"], e["ts"] + e["dur"]))
    for e in xs:
        if e["name"].endswith(":wl_sled_add"):
            assert any(a <= e["ts"] + 1e-3 and e["ts"] + e["dur"] <= b + 1e-3 for a, b in outer[e["tid"]]), e
PY2
}

case $case_name in
counts | exits)
  flag=()
  [[ $case_name == exits ]] && flag=(--exit)
  "$lptrace" run "${flag[@]}" --json -o r.json -f 'main:wl_*' -- "$workload" 4 1000 >out.txt ||
    fail "lptrace or the workload failed: $(cat out.txt r.json 2>/dev/null)"
  grep -qx "workload: 4 threads x 1000 calls, 0 wrong" out.txt || fail "the workload saw wrong results: $(cat out.txt)"
  check r.json 'len(procs) == 1' 'procs[0]["failed"] == []' 'procs[0]["matched"] == 4' \
    'all(fn(procs[0], n)["calls"] == 4000 for n in ("wl_sled_add", "wl_sled_twice", "wl_plain_mul", "wl_plain_square"))' \
    'all(fn(procs[0], n)["kind"] == "jump" for n in ("wl_sled_add", "wl_sled_twice", "wl_plain_mul", "wl_plain_square"))'
  # Per thread: the 4 workers, each 1000 calls of each function.
  check r.json '[len(t["functions"]) for t in procs[0]["threads"] if t["functions"]] == [4, 4, 4, 4]' \
    'all(f["calls"] == 1000 for t in procs[0]["threads"] for f in t["functions"])' \
    'len(set(t["tid"] for t in procs[0]["threads"])) == len(procs[0]["threads"])'
  "$lptrace" run "${flag[@]}" --per-thread -f 'main:wl_sled_add' -- "$workload" 2 10 >/dev/null 2>pt.txt ||
    fail "lptrace --per-thread failed"
  [[ $(grep -c '^  thread [0-9]*:$' pt.txt) -eq 2 ]] || fail "--per-thread: not 2 thread tables: $(cat pt.txt)"
  [[ $(grep -cE '^    lptrace_workload:wl_sled_add +10( |$)' pt.txt) -eq 2 ]] || fail "--per-thread rows: $(cat pt.txt)"
  if [[ $case_name == exits ]]; then
    check r.json 'all(f["exits"] == f["calls"] for f in procs[0]["functions"])' \
      'all(0 < f["p50_ns"] <= f["p99_ns"] <= f["max_ns"] for f in procs[0]["functions"])' \
      'fn(procs[0], "wl_sled_twice")["total_ns"] >= fn(procs[0], "wl_sled_add")["total_ns"]'
  fi
  ;;
fork)
  "$lptrace" run --json -o r.json -f 'main:wl_plain_mul' -- "$workload" 1 10 fork >out.txt ||
    fail "lptrace or the workload failed: $(cat out.txt r.json 2>/dev/null)"
  # The parent (10 calls through wl_plain_square), the _exit() child (5:
  # reported by the agent's _exit hook), the exit() child (7).
  check r.json 'len(procs) == 3' 'sorted(fn(p, "wl_plain_mul")["calls"] for p in procs) == [5, 7, 10]' \
    'len(set(p["pid"] for p in procs)) == 3'
  ;;
exec_image)
  # The workload execs itself: two program images in one process, each
  # reported (the first by the agent's execve hook) with its own counts.
  "$lptrace" run --json -o r.json -f 'main:wl_*' -- "$workload" 2 10 exec >out.txt ||
    fail "lptrace or the workload failed: $(cat out.txt r.json 2>/dev/null)"
  [[ $(grep -c ", 0 wrong" out.txt) -eq 2 ]] || fail "not two images that ran right: $(cat out.txt)"
  check r.json 'len(procs) == 2' 'procs[0]["pid"] == procs[1]["pid"]' 'procs[0]["image"] != procs[1]["image"]' \
    'sorted(fn(p, "wl_sled_add")["calls"] for p in procs) == [3, 20]' \
    'sorted(fn(p, "wl_plain_square")["calls"] for p in procs) == [3, 20]'
  ;;
dlopen)
  # Objects loaded after the start are probed before dlopen returns: Debian's
  # libz (the workload dlopen's it twice, a dlclose between: the probed
  # object stays loaded) and python3's _bz2 module with its libbz2. A pattern
  # on dlopen itself is counted by the agent's dlopen hook.
  "$lptrace" run --exit --json -o r.json -f 'libz.so*:crc32' -f 'libc.so*:dlopen' -- "$workload" 1 10 dlopen >out.txt ||
    fail "lptrace or the workload failed: $(cat out.txt r.json 2>/dev/null)"
  grep -q ", 0 wrong" out.txt || fail "the workload saw wrong results: $(cat out.txt)"
  check r.json 'len(procs) == 1' 'procs[0]["failed"] == [] and procs[0]["unmatched"] == []' \
    'fn(procs[0], "crc32")["calls"] == 11 and fn(procs[0], "crc32")["exits"] == 11' \
    'fn(procs[0], "crc32")["object"] == "libz.so.1"' \
    'fn(procs[0], "dlopen")["calls"] == 2 and fn(procs[0], "dlopen")["exits"] == 2' \
    'procs[0]["dlopen_rescans"] == 1' '"hook_errors" not in procs[0]'
  py=/usr/bin/python3
  [[ -x $py ]] || fail "$py (Debian's python3) missing"
  "$lptrace" run --exit --json -o py.json -f 'libbz2.so*:BZ2_bzCompress*' -f '_bz2.cpython*:PyInit__bz2' \
    -- "$py" -c 'import bz2; [bz2.compress(b"lptrace") for i in range(3)]' || fail "lptrace python3 failed"
  check py.json 'len(procs) == 1' 'fn(procs[0], "PyInit__bz2")["calls"] == 1' \
    'fn(procs[0], "BZ2_bzCompressInit")["calls"] == 3 and fn(procs[0], "BZ2_bzCompressEnd")["calls"] == 3' \
    'fn(procs[0], "BZ2_bzCompressInit")["object"].startswith("libbz2.so")'
  ;;
signal)
  # SIGINT and SIGHUP (left at their default by the workload): the agent
  # reports, then the signal kills the program as it would have; lptrace
  # prints the report and exits 128+N. (A background job of a
  # non-interactive shell starts with SIGINT ignored -- the agent then leaves
  # it alone -- so python3 puts SIGINT back to its default before the exec.)
  for sig in INT HUP; do
    rm -f r.json wl.out
    python3 -c 'import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])' \
      "$lptrace" run --json -o r.json -f 'main:wl_*' -- "$workload" 2 0 >wl.out &
    bg=$!
    trap 'kill -KILL $bg 2>/dev/null' EXIT
    for _ in $(seq 500); do grep -qx ready wl.out 2>/dev/null && break; sleep 0.01; done
    grep -qx ready wl.out || fail "the workload did not start"
    wpid=$(cat /proc/"$bg"/task/"$bg"/children 2>/dev/null | awk '{print $1}')
    [[ -n $wpid ]] || fail "no workload process"
    grep -q "^SigCgt:" /proc/"$wpid"/status || fail "no /proc/$wpid/status"
    sleep 0.2
    kill -"$sig" "$wpid"
    for _ in $(seq 1000); do kill -0 "$bg" 2>/dev/null || break; sleep 0.01; done
    kill -0 "$bg" 2>/dev/null && fail "SIG$sig did not end the traced workload in 10 s"
    wait "$bg"
    rc=$?
    trap - EXIT
    want=$((128 + $(kill -l "$sig")))
    [[ $rc -eq $want ]] || fail "SIG$sig: lptrace exited $rc, not $want (the program's death by the signal)"
    check r.json 'len(procs) == 1' 'procs[0]["pid"] == '"$wpid" \
      'all(fn(procs[0], n)["calls"] > 0 for n in ("wl_sled_add", "wl_sled_twice", "wl_plain_mul", "wl_plain_square"))'
    [[ ! -e /tmp/lptrace-$(id -u)/$wpid.sock ]] || fail "SIG$sig: the agent's socket was left behind"
  done
  ;;
exec)
  "$lptrace" run --json -o r.json -f 'libc.so*:opendir' -- sh -c 'ls / >/dev/null; ls /usr >/dev/null; true' ||
    fail "lptrace sh -c ... failed: $(cat r.json)"
  check r.json 'len([p for p in procs if p["program"].endswith("/ls")]) == 2' \
    'all(fn(p, "opendir")["calls"] == 1 for p in procs if p["program"].endswith("/ls"))'
  ;;
debian)
  dirs=(/ /usr /etc)
  entries=0
  for d in "${dirs[@]}"; do entries=$((entries + $(ls -a1 "$d" | wc -l))); done
  ls "${dirs[@]}" >base.txt
  "$lptrace" run --exit --json -o r.json -f 'libc.so*:opendir' -f 'libc.so*:readdir' -f 'nothing_is_called_this' \
    -- ls "${dirs[@]}" >traced.txt || fail "lptrace ls failed: $(cat r.json)"
  cmp -s base.txt traced.txt || fail "ls printed something else under lptrace"
  check r.json 'len(procs) == 1' "fn(procs[0], 'opendir')['calls'] == 3 and fn(procs[0], 'opendir')['exits'] == 3" \
    "fn(procs[0], 'readdir')['calls'] == $((entries + 3)) and fn(procs[0], 'readdir')['exits'] == $((entries + 3))" \
    'procs[0]["unmatched"] == ["nothing_is_called_this"]'
  "$lptrace" run -f 'libc.so*:opendir' -f 'nothing_is_called_this' -- ls / >/dev/null 2>table.txt || fail "lptrace (table) failed"
  grep -Eq '^  libc\.so\.6:opendir +1$' table.txt || fail "no 'libc.so.6:opendir 1' row in the table: $(cat table.txt)"
  grep -qF "no function matches 'nothing_is_called_this'" table.txt || fail "the unmatched pattern is not reported"
  ;;
bad)
  expect 2 "more than one ':'" run -f 'a:b:c' -- true
  expect 2 "empty object" run -f ':open' -- true
  expect 2 "no function" run -f 'libc.so*:' -- true
  expect 2 "function is required" run -- true
  expect 2 "command is required|command" run -f open
  expect 127 "cannot run /nonexistent/program: No such file" run -f open -- /nonexistent/program
  expect 2 "" bogus-subcommand
  LPTRACE_AGENT=/nonexistent/agent.so expect 2 "LPTRACE_AGENT=/nonexistent/agent.so" run -f open -- true
  ;;
interval)
  # --interval: live lines on a terminal (script(1) gives lptrace a pty),
  # none when stderr is a file.
  command -v script >/dev/null || fail "script (bsdutils) missing"
  script -qec "$lptrace run --interval 0.1 -f 'main:wl_*' -- $workload 2 3000000" typescript >/dev/null 2>&1 ||
    fail "lptrace --interval under script failed: $(cat typescript)"
  grep -aEq "lptrace: wl_[a-z_]+ [0-9]+/s" typescript || fail "no live line on the terminal: $(cat -v typescript | head -5)"
  grep -aq "0 wrong" typescript || fail "the workload saw wrong results"
  "$lptrace" run --interval 0.1 -f 'main:wl_*' -- "$workload" 2 3000000 >out.txt 2>err.txt || fail "lptrace --interval failed"
  grep -Eq "[0-9]+/s" err.txt && fail "live lines on a non-terminal: $(head -3 err.txt)"
  "$lptrace" run --interval 0 -f x -- true 2>e0.txt && fail "--interval 0 accepted"
  ;;
record)
  # --record: a Chrome trace-event file (the format Perfetto and
  # chrome://tracing load), checked against the format's rules, its content
  # exact, nesting right; and the ring's bound.
  "$lptrace" run --exit --record t.json -f 'main:wl_*' -- "$workload" 2 100 >out.txt 2>rep.txt ||
    fail "lptrace --record failed: $(cat rep.txt)"
  grep -q "800 events written to t.json" rep.txt || fail "not 800 events: $(cat rep.txt)"
  trace_ok t.json 800 0
  "$lptrace" run --exit --record small.json --ring 10 -f 'main:wl_*' -- "$workload" 2 100 >out.txt 2>rep.txt ||
    fail "lptrace --record --ring 10 failed: $(cat rep.txt)"
  python3 - small.json 20 780 <<'PY2' || fail "small.json: the ring did not bound the trace"
import json, sys
t = json.load(open(sys.argv[1]))
xs = [e for e in t["traceEvents"] if e["ph"] == "X"]
assert len(xs) == int(sys.argv[2]) and t["otherData"]["dropped_events"] == int(sys.argv[3]), (len(xs), t["otherData"])
PY2
  "$lptrace" run --record x.json --ring 0 -f x -- true 2>r0.txt && fail "--ring 0 accepted"
  ;;
docs)
  # The documentation's lptrace blocks (docs/lptrace.md, README.md), run verbatim (tests/farm/scripts/run-doc-block.sh:
  # a temp dir where build/host is this build tree).
  src=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
  build=$(cd "$(dirname "$lptrace")/../.." && pwd)
  doc_block() { # DOC MARKER REGEX...: the block's output has a line matching each REGEX
    local doc=$1 marker=$2
    shift 2
    bash "$src/tests/farm/scripts/run-doc-block.sh" "$src/$doc" "$marker" "$build" 60 >"$marker.log" 2>&1 ||
      fail "$doc block $marker failed: $(tail -20 "$marker.log")"
    local re
    for re in "$@"; do grep -Eq "$re" "$marker.log" || fail "$doc block $marker: no line matching '$re': $(tail -20 "$marker.log")"; done
  }
  doc_block docs/lptrace.md lptrace-dlopen '^  libbz2\.so\.1\.0:BZ2_bzCompressInit +1 ' '^  libbz2\.so\.1\.0:BZ2_bzCompressEnd +1 ' \
    '3 function\(s\) matched, 3 probed'
  doc_block README.md readme-lptrace-ls '^  libc\.so\.6:opendir +1 ' '^  libc\.so\.6:readdir +[0-9]+ ' '^  libc\.so\.6:malloc +[0-9]+ '
  doc_block README.md readme-lptrace-attach '^lptrace: [0-9]+: libc\.so\*:write: 1 matched, 1 probed, 0 failed$' \
    '^  libc\.so\.6:write +[0-9]+ '
  ;;
attach_start)
  # Attached the instant it was started (`prog & lptrace attach $!`): the
  # process may still be in exec or in the loader; lptrace waits until its
  # libc is initialised (a dlopen made to run earlier crashed it). 10 times.
  for i in $(seq 10); do
    "$workload" 2 0 >wl.out &
    bg=$!
    "$lptrace" attach "$bg" --duration 0.2 -f 'main:wl_*' 2>a.err || { kill -KILL $bg; fail "attach $i failed: $(cat a.err)"; }
    grep -q "main:wl_\*: 4 matched, 4 probed, 0 failed" a.err || { kill -KILL $bg; fail "attach $i: $(cat a.err)"; }
    kill -TERM "$bg"
    wait "$bg"
    st=$?
    [[ $st -eq 0 ]] || fail "attach $i: the workload exited $st: $(cat wl.out)"
    grep -q "0 wrong" wl.out || fail "attach $i: the workload saw wrong results: $(cat wl.out)"
  done
  ;;
attach | attach_refused | ctl)
  # A multi-threaded workload lptrace did not start, calling (and checking)
  # its functions until SIGTERM.
  if [[ $case_name == ctl ]]; then
    "$lptrace" run -o run-report.txt -f 'main:wl_sled_add' -- "$workload" 4 0 >wl.out &
  else
    "$workload" 4 0 >wl.out &
  fi
  bg=$!
  trap 'kill -TERM $bg 2>/dev/null; wait $bg 2>/dev/null' EXIT
  for _ in $(seq 500); do grep -qx ready wl.out 2>/dev/null && break; sleep 0.01; done
  grep -qx ready wl.out || fail "the workload did not start"
  if [[ $case_name == ctl ]]; then
    wpid=$(cat /proc/"$bg"/task/"$bg"/children 2>/dev/null | awk '{print $1}') # lptrace's child: the workload
  else
    wpid=$bg
  fi
  [[ -n $wpid ]] || fail "no workload process"
  case $case_name in
  attach)
    "$lptrace" attach "$wpid" --exit --duration 1 --json -o r.json --record at.json --ring 50 -f 'main:wl_*' 2>attach.err ||
      fail "lptrace attach failed: $(cat attach.err)"
    grep -q "main:wl_\*: 4 matched, 4 probed, 0 failed" attach.err || fail "attach did not probe 4 functions: $(cat attach.err)"
    # --record: the last 50 calls of each of the 4 threads, taken at the detach.
    grep -q "200 events written to at.json" attach.err || fail "attach --record: not 200 events: $(cat attach.err)"
    trace_ok at.json 200 -
    # Counted while attached; every call that returned before the detach had its exit.
    check r.json 'len(procs) == 1' 'procs[0]["pid"] == '"$wpid" \
      'all(f["calls"] > 0 and 0 <= f["calls"] - f["exits"] <= 8 for f in procs[0]["functions"])' \
      'len(procs[0]["functions"]) == 4'
    # Detached: no agent answers, and the process runs on, right.
    "$lptrace" ctl "$wpid" stats 2>ctl.err && fail "the agent still answers after the detach"
    grep -q "no lptrace agent in process $wpid" ctl.err || fail "ctl after detach: $(cat ctl.err)"
    "$lptrace" attach 999999999 -f x --duration 1 2>bad.err && fail "attach to a missing pid succeeded"
    grep -q "no process 999999999" bad.err || fail "bad pid: $(cat bad.err)"
    ;;
  attach_refused)
    # An unprivileged user may not ptrace the (root's, or another user's) workload.
    command -v setpriv >/dev/null || fail "setpriv (util-linux) missing"
    [[ $(id -u) -eq 0 ]] || { echo "lptrace.$case_name: SKIP: needs root to run lptrace as another user"; exit 77; }
    setpriv --reuid=65534 --regid=65534 --clear-groups "$lptrace" attach "$wpid" -f 'main:wl_*' --duration 1 2>ref.err &&
      fail "an unprivileged lptrace attached to root's process"
    grep -Eq "cannot attach to $wpid: not permitted to ptrace process $wpid|no lptrace agent|cannot create" ref.err ||
      fail "no clear refusal: $(cat ref.err)"
    grep -q "not permitted to ptrace process $wpid" ref.err || fail "the refusal does not say ptrace was not permitted: $(cat ref.err)"
    ;;
  ctl)
    "$lptrace" ctl "$wpid" enable 'main:wl_plain_*' --exit >en.json || fail "ctl enable failed"
    check_reply() { python3 -c "import json,sys; r=json.load(open('$1')); sys.exit(0 if ($2) else 1)" || fail "$1: $(cat "$1") does not satisfy: $2"; }
    check_reply en.json 'r["ok"] and r["probed"] == 2 and r["failed"] == 0'
    sleep 0.3
    "$lptrace" ctl "$wpid" stats --json 2>s1.json || fail "ctl stats failed"
    check s1.json 'len(procs) == 1' 'all(fn(procs[0], n)["calls"] > 0 for n in ("wl_sled_add", "wl_plain_mul", "wl_plain_square"))'
    "$lptrace" ctl "$wpid" disable 'main:wl_*' >dis.json || fail "ctl disable failed"
    check_reply dis.json 'r["ok"] and r["disabled"] == 3'
    "$lptrace" ctl "$wpid" stats --json 2>s2.json
    sleep 0.3
    "$lptrace" ctl "$wpid" stats --json 2>s3.json
    python3 -c "
import json
a = {f['name']: f['calls'] for f in json.load(open('s2.json'))['processes'][0]['functions']}
b = {f['name']: f['calls'] for f in json.load(open('s3.json'))['processes'][0]['functions']}
assert a == b, (a, b)" || fail "calls still counted after disable"
    "$lptrace" ctl "$wpid" bogus 2>b.err && fail "a bogus request succeeded"
    "$lptrace" ctl "$wpid" enable 'a:b:c' 2>b2.err && fail "a bad pattern was accepted"
    grep -q "more than one ':'" b2.err || fail "bad pattern: $(cat b2.err)"
    kill -TERM "$wpid"
    wait "$bg"
    rc=$?
    [[ $rc -eq 0 ]] || fail "the workload under lptrace run exited $rc (wrong results?): $(cat wl.out run-report.txt)"
    grep -q "0 wrong" wl.out || fail "the workload saw wrong results: $(cat wl.out)"
    grep -q "lptrace_workload:wl_plain_mul" run-report.txt || fail "the final report lacks the function enabled by ctl: $(cat run-report.txt)"
    ;;
  esac
  kill -TERM "$bg" 2>/dev/null
  wait "$bg" 2>/dev/null
  if [[ $case_name != ctl ]]; then
    st=$?
    [[ $st -eq 0 ]] || fail "the workload exited $st after lptrace (wrong results?): $(cat wl.out)"
    grep -q "0 wrong" wl.out || fail "the workload saw wrong results: $(cat wl.out)"
  fi
  trap - EXIT
  ;;
*)
  echo "run.sh: unknown case '$case_name'" >&2
  exit 2
  ;;
esac
echo "lptrace.$case_name: PASS"
