#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the fifteenth session's first call (issue 5, Qwen3-30B-A3B T=1).
#   1. `sweep moe_layer`, Qwen3 T=1, 4 layers cycled, with MOE_DECODE_VARIANT: def (8b349cd), w0 (the routing runs once on
#      zeros while the block waits at barrier 1, a noinline function: the real pass finds its code and parameters
#      cached); alternating, three times.
#   2. Cycled phase traces (code cold and warm) for def, w0, and twice (diagnostic: the routing run twice after barrier
#      1 on the real logits, "after barrier 1" stamped between the passes).
#   3. MoeDecodeTests and the layer's fused-decode tests under w0.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode15f; mkdir -p "$out"
trap 'tar czf "$OUT/decode15f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
bash .gpu/run.sh true
MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_LAYERS=4 MOE_SWEEP_TOKENS=1 timeout 90 $B sweep moe_layer --device cuda:0 > "$out/warm.log" 2>&1
echo "== warm-up (makes the weights): exit $? (${SECONDS}s)"

source tools/gpu/ab-table.sh
declare -A envs=([def]="" [w0]="w0" [twice]="twice")
order=(def w0 def.2 w0.2 def.3 w0.3)
for v in "${order[@]}"; do
  key=${v%.*}
  MOE_DECODE_VARIANT="${envs[$key]}" MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/q4-$v.log" 2>&1
  echo "== qwen3 x4 $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
ab_table "$out" q4 "${order[@]}"

for v in def w0 twice; do
  MOE_DECODE_TRACE=1 MOE_DECODE_VARIANT="${envs[$v]}" MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== trace $v: exit $? (${SECONDS}s)"; grep -A 12 "decode trace" "$out/trace-$v.log" | grep -v -- "--" | head -26
done

for v in w0; do
  left=$((520 - SECONDS)); [ $left -lt 30 ] && break
  MOE_DECODE_VARIANT="${envs[$v]}" timeout $left $T -class MoeRuntime.Tests.Kernels.MoeDecodeTests -class MoeRuntime.Tests.Runtime.MoeLayerFusedDecodeTests \
    -xml "$out/tests-$v.xml" > "$out/tests-$v.log" 2>&1
  echo "== tests $v: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests-$v.log" | head -40; grep -E "Total:" "$out/tests-$v.log" | tail -1
done
echo "== done in ${SECONDS}s"
