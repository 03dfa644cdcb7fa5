#!/usr/bin/env bash
# GPU machine, one H200 (or GPU 0 of two), after tools/gpu/pack.sh: the tenth session's second call (issues 5 and 9).
#   1. `sweep moe_layer` at T = 1, 16, alternating: base (no prefetch, GEMV at any K), pf2 / pf4 (the down GEMV's first-wave
#      blocks prefetch 2 / 4 segments of each W row before the wait), mink (MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K=1024: Qwen3's
#      T=16 down, K = 768, on wgmma), pf2+mink; twice, base last.
#   2. `sweep grouped_gemm` Qwen3-30B-A3B T=16 with mink.
#   3. Tests: the GEMV prefetch classes (kernel, layer), the GEMV, W rows, tile map and short-K classes, the layer's tile map class.
# Stdout: tables (us), test totals and failures. Logs in $OUT/prefetch10.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-prefetch10; mkdir -p "$out"
trap 'tar czf "$OUT/prefetch10.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
R=MoeRuntime.Tests.Runtime
SECONDS=0
bash .gpu/run.sh true
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -2

source tools/gpu/ab-table.sh
declare -A envs=([base]="" [pf2]="MOE_GEMV_PREFETCH=2" [pf4]="MOE_GEMV_PREFETCH=4" [mink]="MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K=1024"
  [pf2mink]="MOE_GEMV_PREFETCH=2 MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K=1024")
export MOE_SWEEP_TOKENS=1,16
order=(base pf2 pf4 mink pf2mink base.2 pf2.2 pf4.2 mink.2 pf2mink.2 base.3)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} timeout 150 $B sweep moe_layer --device cuda:0 --json "$out/layer-$v.json" > "$out/layer-$v.log" 2>&1
  echo "== layer $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" layer "${order[@]}"

MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=16 MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K=1024 timeout 90 $B sweep grouped_gemm --device cuda:0 > "$out/gemm-mink.log" 2>&1
echo "== gemm qwen3 T=16 mink: exit $? (${SECONDS}s)"
ab_table "$out" gemm mink | grep -vE "read floor"

left=$((585 - SECONDS)); (( left > 240 )) && left=240
timeout $left $T -class $K.GroupedGemmGemvPrefetchTests -class $R.MoeLayerGemvPrefetchTests -class $K.GroupedGemmGemvTests \
  -class $K.GroupedGemmGemvWRowsTests -class $K.GroupedGemmGemvTileMapTests -class $K.GroupedGemmGemvShortKTests \
  -class $R.MoeLayerGemvTileMapTests > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log" | tail -1
echo "== done in ${SECONDS}s"
