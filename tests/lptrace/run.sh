#!/usr/bin/env bash
# lptrace end to end (label lptrace): usage: run.sh CASE LPTRACE WORKLOAD SCRATCH
#   CASE  counts | exits | fork | exec | debian | bad
# Runs lptrace on the workload (known call counts, tests/lptrace/workload.c)
# and on Debian's own programs, and checks the reports exactly (JSON, read
# with python3). Exit 0 pass, 1 fail.
set -u -o pipefail
case_name=$1 lptrace=$2 workload=$3 scratch=$4
rm -rf "$scratch" && mkdir -p "$scratch" || exit 1
cd "$scratch" || exit 1
fail() { echo "lptrace.$case_name: FAIL: $*" >&2; exit 1; }
# check FILE PYTHON-EXPR...: every expression must hold for `procs`, the
# list of process reports (the "processes" of lptrace --json).
check() {
  local file=$1
  shift
  python3 - "$file" "$@" <<'PY' || fail "report check failed (see above); the report: $(cat "$1")"
import json, sys
procs = json.load(open(sys.argv[1]))["processes"]
def fn(p, name):
    m = [f for f in p["functions"] if f["name"] == name]
    return m[0] if m else None
ok = True
for expr in sys.argv[2:]:
    if not eval(expr):
        print("false:", expr, file=sys.stderr)
        ok = False
sys.exit(0 if ok else 1)
PY
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
  if [[ $case_name == exits ]]; then
    check r.json 'all(f["exits"] == f["calls"] for f in procs[0]["functions"])' \
      'all(0 < f["p50_ns"] <= f["p99_ns"] <= f["max_ns"] for f in procs[0]["functions"])' \
      'fn(procs[0], "wl_sled_twice")["total_ns"] >= fn(procs[0], "wl_sled_add")["total_ns"]'
  fi
  ;;
fork)
  "$lptrace" run --json -o r.json -f 'main:wl_plain_mul' -- "$workload" 1 10 fork >out.txt ||
    fail "lptrace or the workload failed: $(cat out.txt r.json 2>/dev/null)"
  # The parent (10 calls through wl_plain_square), the exit() child (7); the
  # _exit() child writes no report.
  check r.json 'len(procs) == 2' 'sorted(fn(p, "wl_plain_mul")["calls"] for p in procs) == [7, 10]' \
    'len(set(p["pid"] for p in procs)) == 2'
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
  expect() { # expect STATUS MESSAGE-REGEX ARGS...
    local want=$1 re=$2
    shift 2
    "$lptrace" "$@" >o.txt 2>e.txt
    local rc=$?
    [[ $rc -eq $want ]] || fail "lptrace $* exited $rc, not $want: $(cat e.txt)"
    grep -Eq "$re" e.txt || fail "lptrace $*: no message matching '$re': $(cat e.txt)"
  }
  expect 2 "more than one ':'" run -f 'a:b:c' -- true
  expect 2 "empty object" run -f ':open' -- true
  expect 2 "no function" run -f 'libc.so*:' -- true
  expect 2 "function is required" run -- true
  expect 2 "command is required|command" run -f open
  expect 127 "cannot run /nonexistent/program: No such file" run -f open -- /nonexistent/program
  expect 2 "" bogus-subcommand
  LPTRACE_AGENT=/nonexistent/agent.so expect 2 "LPTRACE_AGENT=/nonexistent/agent.so" run -f open -- true
  ;;
*)
  echo "run.sh: unknown case '$case_name'" >&2
  exit 2
  ;;
esac
echo "lptrace.$case_name: PASS"
