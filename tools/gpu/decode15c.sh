#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the fifteenth session's first call (issue 5, Qwen3-30B-A3B T=1).
#   1. `sweep moe_layer`, Qwen3 T=1, 4 layers cycled, with MOE_DECODE_VARIANT: def, rank (softmax top-k by each
#      expert's rank, one pass instead of k warp rounds), arrive (barrier 2's arrival before the down prefetches, so its
#      fence does not wait for them), rank+arrive; alternating, twice.
#   2. Cycled phase traces (logits' staging stamped) for def and rank+arrive.
#   3. MoeDecodeTests and the layer's fused-decode tests under rank+arrive (the chain's bits, every family).
#   4. Every preset, T=1, 4 layers cycled, def and rank+arrive.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode15c; mkdir -p "$out"
trap 'tar czf "$OUT/decode15c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
bash .gpu/run.sh true
MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_LAYERS=4 MOE_SWEEP_TOKENS=1 timeout 90 $B sweep moe_layer --device cuda:0 > "$out/warm.log" 2>&1
echo "== warm-up (makes the weights): exit $? (${SECONDS}s)"

source tools/gpu/ab-table.sh
declare -A envs=([def]="" [rank]="rank" [arrive]="arrive" [ra]="rank+arrive")
order=(def rank arrive ra def.2 rank.2 arrive.2 ra.2)
for v in "${order[@]}"; do
  key=${v%.*}
  MOE_DECODE_VARIANT="${envs[$key]}" MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/q4-$v.log" 2>&1
  echo "== qwen3 x4 $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
ab_table "$out" q4 "${order[@]}"

for v in def ra; do
  MOE_DECODE_TRACE=1 MOE_DECODE_VARIANT="$(echo ${envs[$v]}+stage | sed "s/^+//")" MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== trace $v: exit $? (${SECONDS}s)"; grep -A 14 "decode trace" "$out/trace-$v.log" | head -16
done

for v in ra; do
  left=$((520 - SECONDS)); [ $left -lt 30 ] && break
  MOE_DECODE_VARIANT="${envs[$v]}" timeout $left $T -class MoeRuntime.Tests.Kernels.MoeDecodeTests -class MoeRuntime.Tests.Runtime.MoeLayerFusedDecodeTests \
    -xml "$out/tests-$v.xml" > "$out/tests-$v.log" 2>&1
  echo "== tests $v: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests-$v.log" | head -40; grep -E "Total:" "$out/tests-$v.log" | tail -1
done
for v in def ra; do
  left=$((560 - SECONDS)); [ $left -lt 40 ] && break
  MOE_DECODE_VARIANT="${envs[$v]}" MOE_SWEEP_LAYERS=4 MOE_SWEEP_TOKENS=1 timeout $left $B sweep moe_layer --device cuda:0 > "$out/all-$v.log" 2>&1
  echo "== all presets $v: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/all-$v.log" | grep -v "^| name"
done
echo "== done in ${SECONDS}s"
