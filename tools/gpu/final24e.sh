#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-fourth session, closing): the decode GEMV as on main (its source
# as at 50babd7) - its classes against the F64 reference and the 4-row entry's bits, and one `sweep grouped_gemm` at T = 1.
# Logs in $OUT/final24e.tgz.
set -uo pipefail
out=/tmp/moe-final24e; mkdir -p "$out"
trap 'tar czf "$OUT/final24e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
timeout 300 $T -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvSingleRowTests -class $K.GroupedGemmGemvTileMapTests -class $K.GroupedGemmGemvPrefetchTests -class $K.GroupedGemmGemvWRowsTests > "$out/tests.log" 2>&1
echo "== GEMV classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log" | head -1
MOE_SWEEP_MODELS=qwen3,mixtral,deepseek MOE_SWEEP_TOKENS=1 timeout 120 $B sweep grouped_gemm --device cuda:0 > "$out/t1.log" 2>&1
echo "== sweep T=1: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/t1.log" | grep -v "(cold)" | cut -c1-150
echo "== done in ${SECONDS}s"
