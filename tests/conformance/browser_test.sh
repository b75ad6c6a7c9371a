#!/usr/bin/env bash
# The HTML conformance report in headless Chromium: a tiny real run (x86_64,
# real patch-stress, canned benchmark output), then chromium --dump-dom and
# checks that the page rendered: the matrix rows and pass cells, the SVG
# plots, and that the inline script ran (body data-rendered="true", summary).
# usage: browser_test.sh FARMCTL PATCH_STRESS FAKE_DIR OUT_DIR
# Exit 77 (skipped) when no chromium is installed (Debian: chromium).
set -uo pipefail
farmctl=$1 stress=$2 fake=$3 out=$4
browser=""
for b in chromium chromium-browser google-chrome; do
  if command -v "$b" >/dev/null 2>&1; then browser=$(command -v "$b"); break; fi
done
if [ -z "$browser" ]; then
  echo "SKIPPED: no chromium in PATH (apt-get install chromium); the HTML report was not checked in a browser"
  exit 77
fi
rm -rf "$out"
mkdir -p "$out"
"$farmctl" conformance --local --targets x86_64 --batches 30 --signal-batches 3 --threads 2 --functions 8 \
  --patch-stress-host "$stress" --bench-dir-host "$fake" --report-dir "$out/report" >"$out/run.log" 2>&1
rc=$?
if [ $rc != 0 ]; then echo "farmctl conformance failed ($rc):"; cat "$out/run.log"; exit 1; fi

profile=$(mktemp -d)
trap 'rm -rf "$profile"' EXIT
timeout 45 "$browser" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage --disable-background-networking \
  --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
  --virtual-time-budget=5000 --dump-dom "file://$(realpath "$out/report/index.html")" >"$out/dom.html" 2>"$out/chromium.log"
rc=$?
if [ $rc != 0 ] || [ ! -s "$out/dom.html" ]; then
  echo "chromium failed ($rc):"; tail -20 "$out/chromium.log"; exit 1
fi

fail=0
check() { # description, count, minimum
  if [ "$2" -ge "$3" ]; then echo "ok: $1 ($2)"; else echo "FAILED: $1: $2 < $3"; fail=1; fi
}
dom="$out/dom.html"
check "script ran (body data-rendered=true)" "$(grep -c 'data-rendered="true"' "$dom")" 1
check "matrix table" "$(grep -c '<table id="matrix"' "$dom")" 1
check "matrix target rows" "$(grep -o '<tr class="target-row" data-target="x86_64"' "$dom" | wc -l)" 1
check "pass cells in the matrix" "$(grep -o '<a class="cell pass" data-status="pass"' "$dom" | wc -l)" 11
check "no failed cells" "$((1 - $(grep -o 'class="cell fail"\|class="group fail"' "$dom" | wc -l)))" 1
check "summary written by the script" "$(grep -c 'id="js-summary" class="muted">11 cells: 11 pass<' "$dom")" 1
check "probe-hit plot with bars" "$(grep -o '<rect class="bar bar-' "$dom" | wc -l)" 2
check "commit-latency plot with a series" "$(grep -o '<polyline class="series"' "$dom" | wc -l)" 1
check "history plot" "$(grep -c '<svg id="plot-history"' "$dom")" 1
check "verdict PASS" "$(grep -c 'class="verdict ok">PASS<' "$dom")" 1
if [ $fail != 0 ]; then echo "DOM kept in $dom"; exit 1; fi
echo "HTML report rendered in $("$browser" --version 2>/dev/null | head -1)"
