#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (issue 9): the decode GEMV's 1-row entry with its final rule (taken at a
# bound of one row an expert; a one-wave grid spread over every SM). The test classes of the GEMV and the fused decode,
# then the Runtime namespace (its own run: filters of two kinds are ANDed); `sweep grouped_gemm` Qwen3-30B-A3B T = 1,
# on / off alternating, two runs each; every preset at T = 1, 16, 128 with torch._grouped_mm in the same call.
# Logs in $OUT/gemv17c.tgz.
set -uo pipefail
out=/tmp/moe-gemv17c; mkdir -p "$out"
trap 'tar czf "$OUT/gemv17c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
source tools/gpu/ab-table.sh
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
declare -A envs=([on]="" [off]="MOE_GROUPED_GEMM_GEMV_SINGLE=off")
order=(on off on.2 off.2)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/qwen-$v.log" 2>&1
  echo "== qwen3 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" qwen "${order[@]}"
grep -E "^\| qwen3" "$out/qwen-on.log" | grep -E "cold" | cut -c1-170
timeout 200 $T -class $K.GroupedGemmGemvSingleRowTests -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvTileMapTests \
  -class $K.GroupedGemmGemvPrefetchTests -class $K.GroupedGemmGemvWRowsTests -class $K.GroupedGemmGemvShortKTests \
  -class $K.GroupedGemmGemvExpertTilesTests -class $K.GroupedGemmDenseGemvTests -class $K.MoeDecodeTests -class $K.MoeDecodeTwinTests \
  -class $K.GroupedGemmTests -xml "$out/tests-kernels.xml" > "$out/tests-kernels.log" 2>&1
echo "== kernel tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests-kernels.log" | head -40; grep -E "Total:" "$out/tests-kernels.log"
timeout 240 $T -namespace MoeRuntime.Tests.Runtime -xml "$out/tests-runtime.xml" > "$out/tests-runtime.log" 2>&1
echo "== runtime tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests-runtime.log" | head -40; grep -E "Total:" "$out/tests-runtime.log"
export MOE_SWEEP_TOKENS=1,16,128
timeout 150 $B sweep grouped_gemm --device cuda:0 > "$out/gemm-closing.log" 2>&1
echo "== gemm closing: exit $? (${SECONDS}s)"
ab_table "$out" gemm closing
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" timeout 120 python3 grouped_gemm.py > "$out/ref-grouped_gemm.log" 2>&1)
echo "== torch grouped_gemm: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/ref-grouped_gemm.log" | cut -c1-130
echo "== done in ${SECONDS}s"
