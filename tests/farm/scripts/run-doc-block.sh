#!/usr/bin/env bash
# Runs a shell block of the documentation VERBATIM, so that the docs and their
# test cannot drift (tests/farm/test_ctl_cli.cpp: FarmCtlDocs.*).
#
# usage: run-doc-block.sh DOC MARKER BUILD_DIR [TIMEOUT_S]
#   DOC        README.md, docs/farm.md, ...
#   MARKER     the block is the ```sh fence right after the line
#              "<!-- test: MARKER -->" (blank lines in between are allowed)
#   BUILD_DIR  the build tree; the temp dir the block runs in has
#              build/host -> BUILD_DIR (the block's paths), and the farm
#              binaries are on PATH too
#   TIMEOUT_S  bound on the whole block (default 80)
#
# The block runs with `bash -e -o pipefail` in a fresh temporary directory.
# Whatever it leaves running is killed when it ends: it runs under
# `timeout`, which puts it in its own process group (killed here afterwards)
# and stops that group by itself at TIMEOUT_S even if this script is killed.
# Exit status: the block's (124: timed out; 2: bad usage or no such block).
set -u -o pipefail
if [[ $# -lt 3 ]]; then
  sed -n '2,20p' "${BASH_SOURCE[0]}" >&2
  exit 2
fi
doc=$1 marker=$2 build=$3 limit=${4:-80}

block=$(awk -v m="<!-- test: $marker -->" '
  state == 0 && index($0, m) == 1 { state = 1; next }
  state == 1 && /^```(sh|bash)[ \t]*$/ { state = 2; next }
  state == 1 && NF > 0 { exit 3 }                 # something else follows the marker
  state == 2 && /^```/ { state = 3; exit }
  state == 2 { print }
  END { if (state != 3) exit 3 }
' "$doc")
if [[ $? -ne 0 || -z $block ]]; then
  echo "run-doc-block: no \`\`\`sh block right after '<!-- test: $marker -->' in $doc" >&2
  exit 2
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/farm-doc-XXXXXX")
mkdir -p "$tmp/build"
ln -s "$(cd "$build" && pwd)" "$tmp/build/host"
printf '%s\n' "$block" >"$tmp/block.sh"
echo "--- run-doc-block: $doc ($marker) in $tmp:"
cat "$tmp/block.sh"
echo "---"

export PATH="$build/services/farmd:$build/farm/agent:$build/farm/ctl:$build/farm/workloads/stress:$PATH"
cd "$tmp" || exit 2
timeout -k 5 "$limit" bash -e -o pipefail block.sh &
pid=$!
wait "$pid"
rc=$?
kill -KILL -- "-$pid" 2>/dev/null  # what the block left running (timeout's process group)
cd / || true
if [[ $rc -ne 0 ]]; then
  echo "--- run-doc-block: the block exited $rc$([[ $rc -eq 124 ]] && echo " (timed out after ${limit}s)")"
  while IFS= read -r -d '' f; do
    echo "--- $f (tail):"
    tail -n 40 "$f"
  done < <(find "$tmp" -name '*.log' -print0)
fi
if [[ -z ${FARM_TEST_KEEP:-} ]]; then rm -rf "$tmp"; else echo "kept $tmp"; fi
exit "$rc"
