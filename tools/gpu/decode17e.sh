#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (issue 5): the fused decode kernel's items dealt by SM (MOE_DECODE_SPREAD,
# new, default on) against by block index (off). Tests first (the spread against off and a vetoed spread bit for bit,
# the kernel against its CPU twin, the layer's fused path); then `sweep moe_layer` T = 1, 4 layers cycled: Qwen3-30B-A3B
# on / off alternating, three runs each; a TP rank's Qwen3 slice (MOE_SWEEP_SLICE=2), two each; Mixtral-8x7B and
# DeepSeek-V3, one each; then a trace with the spread (which SMs hold each phase's blocks). Logs in $OUT/decode17e.tgz.
set -uo pipefail
out=/tmp/moe-decode17e; mkdir -p "$out"
trap 'tar czf "$OUT/decode17e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
R=MoeRuntime.Tests.Runtime
SECONDS=0
source tools/gpu/ab-table.sh
timeout 150 $T -class $K.MoeDecodeTwinTests -class $K.MoeDecodeTests -class $R.MoeLayerFusedDecodeTests -class $R.MoeLayerDeterminismTests \
  -class $R.TensorParallelFusedDecodeTests -xml "$out/tests.xml" > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
declare -A envs=([on]="" [off]="MOE_DECODE_SPREAD=off")
export MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4
order=(on off on.2 off.2 on.3 off.3)
for v in "${order[@]}"; do
  env ${envs[${v%.*}]} MOE_SWEEP_MODELS=qwen3 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/qwen-$v.log" 2>&1
  echo "== qwen3 $v: exit $? (${SECONDS}s)"
done
ab_table "$out" qwen "${order[@]}"
order=(on off on.2 off.2)
for v in "${order[@]}"; do
  env ${envs[${v%.*}]} MOE_SWEEP_SLICE=2 MOE_SWEEP_MODELS=qwen3 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/slice-$v.log" 2>&1
  echo "== slice $v: exit $? (${SECONDS}s)"
done
ab_table "$out" slice "${order[@]}"
for v in on off; do
  (( SECONDS > 420 )) && break
  env ${envs[$v]} MOE_SWEEP_MODELS=mixtral,deepseek timeout 120 $B sweep moe_layer --device cuda:0 > "$out/big-$v.log" 2>&1
  echo "== mixtral, deepseek $v: exit $? (${SECONDS}s)"
done
ab_table "$out" big on off
if (( SECONDS < 500 )); then
  MOE_DECODE_TRACE=1 MOE_SWEEP_MODELS=qwen3 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/trace.log" 2>&1
  echo "== trace (spread): exit $? (${SECONDS}s)"; grep -A 60 "forward 8 of" "$out/trace.log" | grep -vE "^\s*$" | head -64
fi
echo "== done in ${SECONDS}s"
