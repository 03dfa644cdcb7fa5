#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (issue 9): the decode GEMV's 1-row entry, second call. `sweep grouped_gemm`
# Qwen3-30B-A3B T = 1 alternating, two runs each: auto (default: the 1-row entry where the 4-row grid is several waves,
# so down, not gate_up), always (gate_up too, 4 blocks an SM), always capped at 3 blocks an SM (MOE_GROUPED_GEMM_GEMV1_BLOCKS=3)
# with 1 and 2 segments in flight. Then the test classes of the GEMV, the layer and the fused decode; then every preset
# at T = 1, 16, 128 with the defaults and torch._grouped_mm in the same call. Logs in $OUT/gemv17b.tgz.
set -uo pipefail
out=/tmp/moe-gemv17b; mkdir -p "$out"
trap 'tar czf "$OUT/gemv17b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
R=MoeRuntime.Tests.Runtime
SECONDS=0
source tools/gpu/ab-table.sh
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
declare -A envs=([auto]="" [always]="MOE_GROUPED_GEMM_GEMV_SINGLE=always"
                 [cap3]="MOE_GROUPED_GEMM_GEMV_SINGLE=always MOE_GROUPED_GEMM_GEMV1_BLOCKS=3"
                 [cap3u2]="MOE_GROUPED_GEMM_GEMV_SINGLE=always MOE_GROUPED_GEMM_GEMV1_BLOCKS=3 MOE_GROUPED_GEMM_GEMV1_UNROLL=2")
order=(auto always cap3 cap3u2 auto.2 always.2 cap3.2 cap3u2.2)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/qwen-$v.log" 2>&1
  echo "== qwen3 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" qwen "${order[@]}"
grep -E "^\| qwen3" "$out/qwen-auto.log" | grep -E "cold|prefetched" | cut -c1-170
timeout 240 $T -class $K.GroupedGemmGemvSingleRowTests -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvTileMapTests \
  -class $K.GroupedGemmGemvPrefetchTests -class $K.GroupedGemmGemvWRowsTests -class $K.GroupedGemmGemvShortKTests \
  -class $K.GroupedGemmGemvExpertTilesTests -class $K.GroupedGemmDenseGemvTests -class $K.MoeDecodeTests -class $K.MoeDecodeTwinTests \
  -namespace $R -xml "$out/tests.xml" > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
export MOE_SWEEP_TOKENS=1,16,128
timeout 150 $B sweep grouped_gemm --device cuda:0 > "$out/gemm-closing.log" 2>&1
echo "== gemm closing: exit $? (${SECONDS}s)"
ab_table "$out" gemm closing | grep -vE "read floor"
grep -E "prefetched|read floor" "$out/gemm-closing.log" | grep -v cold | cut -c1-170
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" timeout 120 python3 grouped_gemm.py > "$out/ref-grouped_gemm.log" 2>&1)
echo "== torch grouped_gemm: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/ref-grouped_gemm.log" | cut -c1-130
echo "== done in ${SECONDS}s"
