#!/bin/sh
# Stand-in for patch-stress in farm tests: accepts the patch-stress flags plus
#   --mode pass|fail|hang|crash|nojson   --sleep SECONDS   --pidfile FILE
# and prints progress and one JSON result line like the real workload.
mode=pass; sleep_s=0; threads=1; seed=0; pidfile=
while [ $# -gt 0 ]; do
  case "$1" in
    --mode) mode=$2; shift ;;
    --sleep) sleep_s=$2; shift ;;
    --threads) threads=$2; shift ;;
    --seed) seed=$2; shift ;;
    --pidfile) pidfile=$2; shift ;;
    --functions|--batches|--writer|--sync|--kind|--duration) shift ;;
  esac
  shift
done
[ -n "$pidfile" ] && echo $$ > "$pidfile"
echo "fake-workload: mode=$mode seed=$seed job=${FARM_JOB_ID:-none}"
echo '{"progress":0.5,"calls":100,"hits":50,"batches":1}'
echo "some diagnostics" >&2
case $mode in
  hang) while :; do sleep 1; done ;;
  crash) kill -SEGV $$ ;;
esac
if [ "$sleep_s" != 0 ]; then sleep "$sleep_s"; fi
if [ "$mode" = nojson ]; then echo "done without a result"; exit 0; fi
v=pass; rc=0
if [ "$mode" = fail ]; then v=fail; rc=1; fi
echo "{\"workload\":\"patch-stress\",\"arch\":\"$(uname -m)\",\"threads\":$threads,\"seed\":$seed,\"calls\":1000,\"hits\":500,\"batches\":10,\"syncs\":30,\"unexpected_signals\":0,\"wrong_results\":0,\"verdict\":\"$v\"}"
exit $rc
