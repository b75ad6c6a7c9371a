#!/usr/bin/env bash
# trace-overhead: the slowdown of one workload traced by lptrace, uftrace and
# bpftrace uprobes, the same two functions (entry + exit), in one run.
# A benchmark, not a test: it prints numbers and ratios.
#
# usage: bench/trace-overhead/run.sh [BUILD_DIR] [ITERATIONS]
#   BUILD_DIR   a host build tree (default build/host): its lptrace and
#               bench/trace-overhead-workload
#   ITERATIONS  loop iterations of the workload (default 2000000); bpftrace
#               runs a tenth of them (it is that much slower)
# uftrace and bpftrace are Debian packages (`bash ci/install-deps --bench`);
# a tracer that is missing or refused says "not available (why)".
set -u -o pipefail
build=${1:-build/host}
n=${2:-2000000}
wl=$build/bench/trace-overhead-workload
lptrace=$build/tools/lptrace/lptrace
[[ -x $wl && -x $lptrace ]] || { echo "trace-overhead: build $wl and $lptrace first (cmake --build $build)" >&2; exit 2; }
wl=$(realpath "$wl")
tmp=$(mktemp -d "${TMPDIR:-/tmp}/trace-overhead-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# ns/iteration the workload printed (the median of 3 runs of CMD...)
measure() {
  local vals=() i v
  for i in 1 2 3; do
    v=$("$@" 2>"$tmp/err" | sed -n 's/^trace-overhead-workload: .* \([0-9.]*\) ns\/iteration.*/\1/p')
    [[ -n $v ]] || return 1
    vals+=("$v")
  done
  printf '%s\n' "${vals[@]}" | sort -g | sed -n 2p
}

base=$(measure "$wl" "$n") || { echo "trace-overhead: the workload failed" >&2; exit 1; }
lp=$(measure "$lptrace" run --exit -f 'main:bw_*' -o "$tmp/lp.txt" -- "$wl" "$n") || lp=""
if command -v uftrace >/dev/null; then
  uf=$(measure uftrace record -P 'bw_.*' -d "$tmp/uftrace.data" "$wl" "$n") || uf=""
  [[ -n $uf ]] || uf_why="uftrace failed: $(head -c 200 "$tmp/err")"
else
  uf="" uf_why="uftrace not installed (bash ci/install-deps --bench)"
fi
bn=$((n / 10))
if ! command -v bpftrace >/dev/null; then
  bp="" bp_why="bpftrace not installed (bash ci/install-deps --bench)"
elif [[ $(id -u) -ne 0 ]]; then
  bp="" bp_why="bpftrace needs root"
else
  bp=$(measure bpftrace -e "uprobe:$wl:bw_* { @c[probe] = count(); } uretprobe:$wl:bw_* { @r[probe] = count(); }" \
    -c "$wl $bn") || bp=""
  [[ -n $bp ]] || bp_why="bpftrace refused: $(grep -m1 ERROR "$tmp/err" | head -c 200)"
fi

row() { # name value
  if [[ -n $2 ]]; then
    awk -v n="$1" -v v="$2" -v b="$base" 'BEGIN { printf "  %-28s %10.2f ns/iteration  (overhead %.2f ns)\n", n, v, v - b }'
  else
    printf '  %-28s not available (%s)\n' "$1" "$3"
  fi
}
echo "trace-overhead: bw_outer -> bw_inner, 2 traced calls per iteration (entry + exit), median of 3 runs"
printf '  %-28s %10.2f ns/iteration\n' "untraced" "$base"
row "lptrace run --exit" "$lp" "lptrace failed: $(head -c 200 "$tmp/err")"
row "uftrace record -P" "$uf" "${uf_why:-}"
row "bpftrace uprobe+uretprobe" "$bp" "${bp_why:-}"
# The clock floor: a tracer that times every call reads a clock twice per
# call, 4 times per iteration here (lptrace: the TSC; uftrace: clock_gettime).
clk=$("$wl" clock 10000000)
tsc=$(sed -n 's/.* rdtsc \([0-9.]*\) ns\/read.*/\1/p' <<<"$clk")
cgt=$(sed -n 's/.* clock_gettime \([0-9.]*\) ns\/read.*/\1/p' <<<"$clk")
[[ -n $tsc ]] && printf '  %-28s %10.2f ns/read (lptrace)\n' "clock: rdtsc" "$tsc"
printf '  %-28s %10.2f ns/read (uftrace)\n' "clock: clock_gettime" "$cgt"
beyond() { # name traced reads-cost-per-read
  [[ -n $2 && -n $3 ]] || return 0
  awk -v n="$1" -v t="$2" -v c="$3" -v b="$base" 'BEGIN { printf "  %-28s %10.2f ns/iteration beyond its 4 clock reads\n", n, t - b - 4 * c }'
}
beyond "lptrace run --exit" "$lp" "${tsc:-$cgt}"
beyond "uftrace record -P" "$uf" "$cgt"
ratio() { # name traced
  [[ -n $2 && -n $lp ]] || return 0
  awk -v n="$1" -v t="$2" -v l="$lp" -v b="$base" 'BEGIN { printf "  overhead %s / lptrace: %.1fx\n", n, (t - b) / (l - b) }'
}
ratio uftrace "$uf"
ratio bpftrace "$bp"
awk -v l="$lp" -v u="${uf:-0}" -v p="${bp:-0}" -v b="$base" 'BEGIN {
  printf "{\"bench\":\"trace-overhead\",\"untraced_ns\":%.2f,\"lptrace_ns\":%s,\"uftrace_ns\":%s,\"bpftrace_ns\":%s}\n",
    b, l == "" ? "null" : l, u == 0 ? "null" : u, p == 0 ? "null" : p }'
