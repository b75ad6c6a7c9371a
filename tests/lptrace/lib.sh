# Helpers of the lptrace drivers (tests/lptrace/run.sh, natively, and
# tests/lptrace/qemu-user/run.sh, under qemu-user), sourced by both once they
# have defined `fail MESSAGE` (prints, exits 1) and set $lptrace.

# check FILE PYTHON-EXPR...: every expression must hold for `procs`, the
# list of process reports (the "processes" of lptrace --json); `fn(p, name)`
# is process p's entry for function NAME (None if it has none).
check() {
  local file=$1
  shift
  python3 - "$file" "$@" <<'PY' || fail "report check failed (see above); the report: $(cat "$file")"
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

# expect STATUS MESSAGE-REGEX ARGS...: `lptrace ARGS...` exits STATUS and
# its stderr has a line matching MESSAGE-REGEX (grep -E).
expect() {
  local want=$1 re=$2
  shift 2
  "$lptrace" "$@" >o.txt 2>e.txt
  local rc=$?
  [[ $rc -eq $want ]] || fail "lptrace $* exited $rc, not $want: $(cat e.txt)"
  grep -Eq "$re" e.txt || fail "lptrace $*: no message matching '$re': $(cat e.txt)"
}
