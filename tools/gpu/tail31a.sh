#!/usr/bin/env bash
# GPU machine, one H200, fresh, after tools/gpu/pack.sh (thirty-first session, first call). The skinny GEMM's renamed build
# guards (SK_ONE_GROUP / SK_GROUP_<t>) and the one-dtype builds on NVRTC 13, with the wgmma classes; then the traced wgmma
# build on DeepSeek-V3's expert GEMMs at T = 128 and 1024 (every work item's stamps, as CSVs), to see how much of a call
# is its last wave: how long the SMs wait, at the end, for the last items. Logs and CSVs in $OUT/tail31a.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-tail31a; mkdir -p "$out/csv"
trap 'tar czf "$OUT/tail31a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
timeout 200 $T -class $K.GroupedGemmSkinnyTests -class $K.GroupedGemmSkinnyFoldTests -class $K.OneDtypeBuildTests \
  -class $K.GroupedGemmWgmmaTests -class $K.GroupedGemmWgmmaTraceTests > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log" | tail -1
MOE_GROUPED_GEMM_WGMMA_TRACE=1 MOE_SWEEP_TRACE_DIR="$out/csv" MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=128,1024 \
  MOE_SWEEP_CALLS=gate_up+silu,down timeout 150 $B sweep grouped_gemm --device cuda:0 > "$out/traced.log" 2>&1
echo "== traced sweep: exit $? (${SECONDS}s)"; grep -E "^wgmma trace|^\| deepseek" "$out/traced.log" | cut -c1-220
echo "== done in ${SECONDS}s"
