#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the router rows asked of L2 before the fused kernel's wait (issue 5).
#   1. `sweep moe_layer` T=1, 4 layers cycled: Qwen3 with MOE_DECODE_ROUTER_PREFETCH unset / 1, alternating, three times;
#      Mixtral-8x7B and DeepSeek-V3 once each.
#   2. A cycled trace of Qwen3 with it.
#   3. Tests with it: MoeDecodeTests, the fused layer tests, the determinism tests, DependentLaunchTests.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode15h; mkdir -p "$out"
trap 'tar czf "$OUT/decode15h.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
bash .gpu/run.sh true
source tools/gpu/ab-table.sh
order=(def rp def.2 rp.2 def.3 rp.3)
for v in "${order[@]}"; do
  rp=""; [ "${v%.*}" = rp ] && rp=1
  MOE_DECODE_ROUTER_PREFETCH=$rp MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/q4-$v.log" 2>&1
  echo "== qwen3 x4 $v: exit $? (${SECONDS}s)"
done
ab_table "$out" q4 "${order[@]}"
for v in def rp; do
  rp=""; [ $v = rp ] && rp=1
  MOE_DECODE_ROUTER_PREFETCH=$rp MOE_SWEEP_MODELS=mixtral,deepseek MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 120 $B sweep moe_layer --device cuda:0 > "$out/md4-$v.log" 2>&1
  echo "== mixtral, deepseek x4 $v: exit $? (${SECONDS}s)"
done
ab_table "$out" md4 def rp
MOE_DECODE_TRACE=1 MOE_DECODE_ROUTER_PREFETCH=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/trace-rp.log" 2>&1
echo "== trace rp: exit $? (${SECONDS}s)"; grep -A 12 "decode trace" "$out/trace-rp.log" | grep -v -- "--" | sed -n 14,26p
left=$((330 - SECONDS))
MOE_DECODE_ROUTER_PREFETCH=1 timeout $left $T -class MoeRuntime.Tests.Kernels.MoeDecodeTests -class MoeRuntime.Tests.Runtime.MoeLayerFusedDecodeTests \
  -class MoeRuntime.Tests.Runtime.MoeLayerDeterminismTests -class MoeRuntime.Tests.Accelerators.DependentLaunchTests \
  -xml "$out/tests-rp.xml" > "$out/tests-rp.log" 2>&1
echo "== tests (rp): exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests-rp.log" | head -30; grep -E "Total:" "$out/tests-rp.log" | tail -1
echo "== done in ${SECONDS}s"
