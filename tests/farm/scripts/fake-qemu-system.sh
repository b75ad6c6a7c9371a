#!/bin/sh
# Fake qemu-system for farm tests: prints a console banner, then behaves
# according to the -kernel image's first line: "pass", "fail" or "hang".
img=
smp=
while [ $# -gt 0 ]; do
  case "$1" in
    -kernel) img=$2; shift ;;
    -smp) smp=$2; shift ;;
    --version) echo "QEMU emulator version 0.0 (fake)"; exit 0 ;;
  esac
  shift
done
echo "OpenSBI (fake) harts=$smp"
what=$(head -n1 "$img")
case $what in
  hang) while :; do sleep 1; done ;;
  fail) echo "{\"workload\":\"baremetal\",\"harts\":$smp,\"calls\":10,\"hits\":5,\"batches\":2,\"verdict\":\"fail\"}"; exit 1 ;;
  *) echo "{\"workload\":\"baremetal\",\"harts\":$smp,\"calls\":400,\"hits\":200,\"batches\":20,\"verdict\":\"pass\"}"; exit 0 ;;
esac
