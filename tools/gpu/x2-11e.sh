#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the eleventh session's AllReduce and TP numbers with the unroll-1 build
# for calls up to 256 KB (the default now).
#   1. moe bench allreduce, all algorithms, 1 KB .. 4 MB by 2 (latency, NCCL in the same run), then ring, two-shot and
#      NCCL 16 MB .. 256 MB by 4 (bandwidth); the SVG chart
#   2. the threshold: 256 KB .. 1 MB, the default (unroll 1 up to 256 KB) against MOE_LL_SMALL_MAX_BYTES=1048576, alternating
#   3. moe bench layer --parallel tp, the three presets at T = 1, 16, 128, 1024
# Logs and JSON in $OUT/x2-11e.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-11e; mkdir -p "$out"
trap 'tar czf "$OUT/x2-11e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
timeout 150 $M bench allreduce --devices cuda:0,cuda:1 --algo all --dtype bf16 --min 1K --max 4M --factor 2 --json "$out/allreduce.json" --svg "$out/allreduce.svg" > "$out/allreduce.log" 2>&1
echo "== allreduce: exit $? (${SECONDS}s)"; grep -E "^#|^ +[0-9]" "$out/allreduce.log" | grep -v "^# AllReduce on"
timeout 90 $M bench allreduce --devices cuda:0,cuda:1 --algo ring,twoshot,nccl --dtype bf16 --min 16M --max 256M --factor 4 --json "$out/allreduce-large.json" > "$out/allreduce-large.log" 2>&1
echo "== allreduce-large: exit $? (${SECONDS}s)"; grep -E "^#|^ +[0-9]" "$out/allreduce-large.log" | grep -v "^# AllReduce on"
for v in base small1m base.2 small1m.2; do
  e=X=1; [ "${v%.*}" = small1m ] && e=MOE_LL_SMALL_MAX_BYTES=1048576
  env $e timeout 40 $M bench allreduce --devices cuda:0,cuda:1 --algo twoshot,oneshot --dtype bf16 --min 256K --max 1M --factor 2 > "$out/th-$v.log" 2>&1
  echo "== th-$v ($e): exit $?"; grep -E "^#|^ +[0-9]" "$out/th-$v.log" | grep -v "^# AllReduce on" | awk '{print "   " $1, $4, $8}'
done
for spec in mixtral-8x7b:mixtral:120 qwen3-30b-a3b:qwen3:60 deepseek-v3:deepseek:90; do
  IFS=: read -r preset name limit <<< "$spec"
  timeout "$limit" $M bench layer --parallel tp --devices cuda:0,cuda:1 --preset "$preset" --tokens 1,16,128,1024 --json "$out/tp-$name.json" > "$out/tp-$name.log" 2>&1
  echo "== tp-$name: exit $? (${SECONDS}s)"; grep -vE "^moe bench" "$out/tp-$name.log"
done
echo "== done (${SECONDS}s)"
