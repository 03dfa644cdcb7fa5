#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the thirteenth session's second call (issues 5 and 9).
#   1. Tests: the fused decode classes (fixed tests), the layer's determinism and prefetch classes.
#   2. `sweep moe_layer` Qwen3-30B-A3B at T = 1, 2 with the fused kernel's phase trace (MOE_DECODE_TRACE=1), then
#      alternating: off, fused, grid capped at 1 / 2 / 3 blocks an SM; the other presets' traces at T = 1.
# Stdout: test totals and failures, traces, tables (us). Logs in $OUT/decode13b.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode13b; mkdir -p "$out"
trap 'tar czf "$OUT/decode13b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
R=MoeRuntime.Tests.Runtime
SECONDS=0
bash .gpu/run.sh true

timeout 150 $T -class $K.MoeDecodeTests -class $R.MoeLayerFusedDecodeTests -class $R.MoeLayerDeterminismTests \
  -class $R.MoeLayerGemvPrefetchTests > "$out/tests-decode.log" 2>&1
echo "== tests (decode, determinism, prefetch): exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 10 "$out/tests-decode.log" | head -50; grep -E "Total:" "$out/tests-decode.log" | tail -1

MOE_DECODE_FUSED=8 MOE_DECODE_TRACE=1 MOE_SWEEP_TOKENS=1,2 timeout 90 $B sweep moe_layer --device cuda:0 > "$out/trace.log" 2>&1
echo "== traces: exit $? (${SECONDS}s)"; grep -A 11 "decode trace" "$out/trace.log" | grep -v "^--$"

source tools/gpu/ab-table.sh
declare -A envs=([off]="MOE_DECODE_FUSED=off" [fused]="MOE_DECODE_FUSED=8" [b1]="MOE_DECODE_FUSED=8 MOE_DECODE_BLOCKS_PER_SM=1"
  [b2]="MOE_DECODE_FUSED=8 MOE_DECODE_BLOCKS_PER_SM=2" [b3]="MOE_DECODE_FUSED=8 MOE_DECODE_BLOCKS_PER_SM=3")
export MOE_SWEEP_TOKENS=1,2 MOE_SWEEP_MODELS=qwen3
order=(off fused b1 b2 b3 off.2 fused.2 b1.2 b2.2 b3.2)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} timeout 40 $B sweep moe_layer --device cuda:0 > "$out/layer-$v.log" 2>&1
  echo "== layer $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
ab_table "$out" layer "${order[@]}"
for b in 1 2; do MOE_DECODE_FUSED=8 MOE_DECODE_BLOCKS_PER_SM=$b MOE_DECODE_TRACE=1 MOE_SWEEP_TOKENS=1 timeout 40 $B sweep moe_layer --device cuda:0 > "$out/trace-b$b.log" 2>&1
  echo "== trace b$b: exit $?"; grep -A 11 "decode trace" "$out/trace-b$b.log" | grep -v "^--$"; done
echo "== done in ${SECONDS}s"
