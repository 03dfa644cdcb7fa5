#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the fifteenth session's merge-select A/B (issues 5 and 3).
#   1. `sweep moe_layer` T=1, 4 layers cycled: Qwen3 with MOE_DECODE_VARIANT def / merge (the fused kernel's routing picks
#      k <= 8 by a butterfly of sorted 8-lists, ROUTING_MERGE_SELECT), alternating, three times; DeepSeek-V3 once each.
#   2. A cycled trace of Qwen3 under merge.
#   3. Tests: MoeDecodeTests and the fused layer tests under merge; TopKRoutingTests and TopKRoutingSigmoidBitsTests
#      under MOE_ROUTING_SELECT=merge (the CPU twin's choices and bits).
#   4. `sweep routing` (graph replay) default / MOE_ROUTING_SELECT=merge, alternating, twice; PyTorch's routing rows.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode15g; mkdir -p "$out"
trap 'tar czf "$OUT/decode15g.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
bash .gpu/run.sh true
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [merge]="merge")
order=(def merge def.2 merge.2 def.3 merge.3)
for v in "${order[@]}"; do
  key=${v%.*}
  MOE_DECODE_VARIANT="${envs[$key]}" MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/q4-$v.log" 2>&1
  echo "== qwen3 x4 $v: exit $? (${SECONDS}s)"
done
ab_table "$out" q4 "${order[@]}"
for v in def merge; do
  MOE_DECODE_VARIANT="${envs[$v]}" MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 90 $B sweep moe_layer --device cuda:0 > "$out/d4-$v.log" 2>&1
  echo "== deepseek x4 $v: exit $? (${SECONDS}s)"
done
ab_table "$out" d4 def merge
MOE_DECODE_TRACE=1 MOE_DECODE_VARIANT=merge MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/trace-merge.log" 2>&1
echo "== trace merge: exit $? (${SECONDS}s)"; grep -A 12 "decode trace" "$out/trace-merge.log" | grep -v -- "--" | sed -n 14,26p

MOE_DECODE_VARIANT=merge timeout 120 $T -class MoeRuntime.Tests.Kernels.MoeDecodeTests -class MoeRuntime.Tests.Runtime.MoeLayerFusedDecodeTests \
  -xml "$out/tests-decode.xml" > "$out/tests-decode.log" 2>&1
echo "== decode tests (merge): exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests-decode.log" | head -30; grep -E "Total:" "$out/tests-decode.log" | tail -1
MOE_ROUTING_SELECT=merge timeout 150 $T -class MoeRuntime.Tests.Kernels.TopKRoutingTests -class MoeRuntime.Tests.Kernels.TopKRoutingSigmoidBitsTests \
  -xml "$out/tests-routing.xml" > "$out/tests-routing.log" 2>&1
echo "== routing tests (merge): exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests-routing.log" | head -30; grep -E "Total:" "$out/tests-routing.log" | tail -1

for v in def merge def.2 merge.2; do
  left=$((470 - SECONDS)); [ $left -lt 30 ] && break
  sel=""; [ "${v%.*}" = merge ] && sel=merge
  MOE_ROUTING_SELECT=$sel MOE_SWEEP_TOKENS=1,128,1024,8192 timeout $((left < 60 ? left : 60)) $B sweep routing --device cuda:0 > "$out/routing-$v.log" 2>&1
  echo "== sweep routing $v: exit $? (${SECONDS}s)"
done
ab_table "$out" routing def merge def.2 merge.2
left=$((540 - SECONDS))
if [ $left -gt 30 ]; then
  (TOKEN_OPS_ROUTING_ONLY=1 PYTHONUNBUFFERED=1 timeout $left python3 bench/reference/token_ops.py > "$out/ref-routing.log" 2>&1)
  echo "== torch routing: exit $? (${SECONDS}s)"; grep -i -E "routing|graph" "$out/ref-routing.log" | head -30
fi
echo "== done in ${SECONDS}s"
