#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the fifteenth session's first call (issue 5, Qwen3-30B-A3B T=1).
#   1. `sweep moe_layer`, Qwen3 T=1, 4 layers cycled, with MOE_DECODE_VARIANT: def, arrive (barrier 2's arrival before
#      the down prefetches), wa (writers+arrive: also only the blocks that wrote arrive); alternating, twice.
#   2. Cycled phase traces (logits' staging stamped), each the traced build's first forward (code cold) and its eighth
#      (code warm), for def, arrive and wa.
#   3. MoeDecodeTests and the layer's fused-decode tests under wa.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode15d; mkdir -p "$out"
trap 'tar czf "$OUT/decode15d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
bash .gpu/run.sh true
MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_LAYERS=4 MOE_SWEEP_TOKENS=1 timeout 90 $B sweep moe_layer --device cuda:0 > "$out/warm.log" 2>&1
echo "== warm-up (makes the weights): exit $? (${SECONDS}s)"

source tools/gpu/ab-table.sh
declare -A envs=([def]="" [arrive]="arrive" [wa]="writers+arrive")
order=(def arrive wa def.2 arrive.2 wa.2)
for v in "${order[@]}"; do
  key=${v%.*}
  MOE_DECODE_VARIANT="${envs[$key]}" MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/q4-$v.log" 2>&1
  echo "== qwen3 x4 $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
ab_table "$out" q4 "${order[@]}"

for v in def arrive wa; do
  MOE_DECODE_TRACE=1 MOE_DECODE_VARIANT="$(echo ${envs[$v]}+stage | sed "s/^+//")" MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== trace $v: exit $? (${SECONDS}s)"; grep -A 12 "decode trace" "$out/trace-$v.log" | grep -v -- "--" | head -26
done

for v in wa; do
  left=$((520 - SECONDS)); [ $left -lt 30 ] && break
  MOE_DECODE_VARIANT="${envs[$v]}" timeout $left $T -class MoeRuntime.Tests.Kernels.MoeDecodeTests -class MoeRuntime.Tests.Runtime.MoeLayerFusedDecodeTests \
    -xml "$out/tests-$v.xml" > "$out/tests-$v.log" 2>&1
  echo "== tests $v: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests-$v.log" | head -40; grep -E "Total:" "$out/tests-$v.log" | tail -1
done
echo "== done in ${SECONDS}s"
