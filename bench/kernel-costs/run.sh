#!/usr/bin/env bash
# bench/kernel-costs/run.sh [ROUNDS]: what the kernel operations a libpatch
# commit causes cost, side by side: natively (this machine's kernel) and in the
# rv64gc Linux guest (farm/boards: Linux 6.1 under qemu-system-riscv64, TCG) at
# -smp 4 (more harts than this machine has cores: every cross-hart operation
# waits for descheduled vCPU threads) and at -smp N = this machine's cores.
# Then one patch-stress cell (mprotect writer, flush_icache sync, 30 batches) in
# the guest at both sizes: seconds per batch and the writer's mprotect calls.
# Needs the host build's boards (cmake --build build/host --target boards) and
# the riscv64-gc build (cmake --build --preset riscv64-gc). Prints numbers;
# asserts nothing.
set -euo pipefail
cd "$(dirname "$0")/../.."
rounds=${1:-50}
H=build/host
B=$H/boards
RV=build/riscv64-gc
for f in "$H/bench/kernel-costs" "$H/farm/boards/farm-initramfs" "$B/rv64gc-linux.Image" "$B/init-riscv64" \
         "$RV/bench/kernel-costs" "$RV/farm/workloads/stress/patch-stress"; do
  if [ ! -e "$f" ]; then
    echo "kernel-costs/run.sh: missing $f: cmake --build build/host --target boards kernel-costs && cmake --build --preset riscv64-gc" >&2
    exit 2
  fi
done
cores=$(nproc)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# One boot of the rv64gc-linux board (its description: build/host/boards/rv64gc-linux.json)
# running PROG ARGS; prints what the job printed.
guest() {
  local smp=$1 prog=$2; shift 2
  "$H/farm/boards/farm-initramfs" -o "$tmp/job.cpio" --init "$B/init-riscv64" \
    --file "/job/bin/$(basename "$prog")=$prog" --timeout 900 -- "/job/bin/$(basename "$prog")" "$@"
  timeout 1000 qemu-system-riscv64 -M virt -cpu rv64 -smp "$smp" -m 1G -bios default -accel tcg,thread=multi \
    -nographic -no-reboot -nic none -kernel "$B/rv64gc-linux.Image" -append "console=ttyS0 panic=1" \
    -initrd "$tmp/job.cpio" > "$tmp/console" 2>&1 || true
  sed -n '/===FARM-BOARD-BEGIN===/,/===FARM-BOARD-END/p' "$tmp/console" | sed '1d;$d'
}

echo "== native ($(uname -r), $cores cores)"
"$H/bench/kernel-costs" "$rounds" 0 3
echo
echo "== rv64gc-linux guest, -smp 4 (4 harts on $cores host cores)"
guest 4 "$RV/bench/kernel-costs" "$rounds" 0 3
echo
echo "== rv64gc-linux guest, -smp $cores (one hart per host core)"
guest "$cores" "$RV/bench/kernel-costs" "$rounds" 0 $((cores - 1))
echo
stress="--threads 4 --functions 64 --batches 30 --seed 7 --writer mprotect --sync flush_icache --kind jump"
echo "== patch-stress $stress in the guest"
for smp in 4 "$cores"; do
  line=$(guest "$smp" "$RV/farm/workloads/stress/patch-stress" $stress | grep '"workload":"patch-stress"' || true)
  python3 - "$smp" "$line" <<'PY'
import json, sys
smp, line = sys.argv[1], sys.argv[2]
try:
    r = json.loads(line)
except ValueError:
    print(f"  -smp {smp}: no result line"); sys.exit(0)
b = max(r.get("batches", 0), 1)
print(f"  -smp {smp}: {r['verdict']}, {r['seconds']:.3f} s for {b} batches = {1e3 * r['seconds'] / b:.1f} ms/batch, "
      f"{r['syncs']} syncs, {r.get('text_mprotects', '?')} text mprotects ({r['commits']} commits)")
PY
done
