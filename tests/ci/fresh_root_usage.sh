#!/usr/bin/env bash
# Bad usage of ci/fresh-root is refused before anything is created or
# installed: exit status 2 and a message naming the mistake.
#   fresh_root_usage.sh SRC EXPECTED-MESSAGE ARGS...
set -u
src=$1 expect=$2
shift 2
out=$(bash "$src/ci/fresh-root" "$@" 2>&1)
rc=$?
printf '%s\n' "$out"
if [ "$rc" != 2 ]; then echo "FAIL: exit status $rc, expected 2"; exit 1; fi
if ! grep -qF -- "$expect" <<<"$out"; then echo "FAIL: no '$expect' in the output"; exit 1; fi
echo PASS
