#!/usr/bin/env bash
# GPU machine, one H200, fresh (empty kernel cache), after tools/gpu/pack.sh. Written in the twenty-ninth session for the
# next one; not yet run. After the session's last call, grouped_gemm_gemv.cu and grouped_gemm_wgmma.cu also build one dtype
# pair a compile. Here: Qwen3-30B-A3B's bf16 layer cold (its compile lines: layers29f.sh took 10 builds, 36.9 s of NVRTC),
# then the GEMV, wgmma, cluster and trace classes, the build test under NVRTC 13, then the Runtime namespace.
# Logs in $OUT/next30a.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-next30a; mkdir -p "$out"
trap 'tar czf "$OUT/next30a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
ls ~/.cache/moe-runtime/kernels 2>/dev/null | wc -l | sed 's/^/== cached kernels before: /'
timeout 150 $M bench layer --preset qwen3-30b-a3b --tokens 1,16,128,1024,8192 --layers 4 > "$out/layer-cold.log" 2> "$out/layer-cold.err"
echo "== qwen3 layer bf16 cold: exit $? (${SECONDS}s)"
grep -E "^moe: compil" "$out/layer-cold.err"; grep -hE "^(preset|qwen3)" "$out/layer-cold.log"
timeout $((540 - SECONDS)) $T -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvTileMapTests -class $K.GroupedGemmGemvPrefetchTests \
  -class $K.GroupedGemmGemvSingleRowTests -class $K.GroupedGemmGemvWRowsTests -class $K.GroupedGemmGemvShortKTests -class $K.GroupedGemmDenseGemvTests \
  -class $K.GroupedGemmGemvExpertTilesTests \
  -class $K.GroupedGemmWgmmaTests -class $K.GroupedGemmWgmmaClusterTests -class $K.GroupedGemmWgmmaTraceTests -class $K.OneDtypeBuildTests \
  > "$out/gemm-tests.log" 2>&1
echo "== GEMV and wgmma classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/gemm-tests.log" | head -60; grep -E "Total:" "$out/gemm-tests.log" | tail -1
left=$((585 - SECONDS))
[ $left -gt 30 ] && { timeout $left $T -namespace MoeRuntime.Tests.Runtime > "$out/runtime-tests.log" 2>&1
  echo "== Runtime namespace: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/runtime-tests.log" | head -40; grep -E "Total:" "$out/runtime-tests.log" | tail -1; }
echo "== done in ${SECONDS}s"
