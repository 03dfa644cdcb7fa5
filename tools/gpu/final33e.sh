#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-third session, last call), the final code: the waves rule, the
# stream priorities reverted. The grouped GEMM sweep's DeepSeek-V3 T = 16 rows (their notes name the kernel the dispatch
# picks); the Runtime and Cli namespaces; the waves and short-K rule classes. Logs in $OUT/final33e.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-final33e; mkdir -p "$out"
trap 'tar czf "$OUT/final33e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=16 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/gemm.log" 2>&1
echo "== grouped GEMM T=16: exit $? (${SECONDS}s)"; grep -E "^\| deepseek" "$out/gemm.log" | grep -v cold | sed -E 's/ +\|/ |/g' | cut -c1-200
timeout 150 $T -namespace MoeRuntime.Tests.Runtime -namespace MoeRuntime.Tests.Cli > "$out/tests.log" 2>&1
echo "== Runtime + Cli tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log" | tail -1
timeout 40 $T -class MoeRuntime.Tests.Kernels.GroupedGemmGemvWavesTests -class MoeRuntime.Tests.Kernels.GroupedGemmGemvShortKTests -class MoeRuntime.Tests.Accelerators.StreamEventTests > "$out/rule-tests.log" 2>&1
echo "== rule and stream tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]|\[SKIP\]" -A 4 "$out/rule-tests.log" | head -20; grep -E "Total:" "$out/rule-tests.log" | tail -1
echo "== done in ${SECONDS}s"
