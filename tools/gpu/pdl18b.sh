#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the wgmma grouped GEMM launched plainly (`// plain-launch`, the new
# default) against overlapped (MOE_PDL_OVERLAP=grouped_gemm_wgmma.cu, the old default), `moe bench layer` for every preset
# at T = 16 .. 8192, alternating; first the dependent-launch tests and the wgmma class. Logs in $OUT/pdl18b.tgz.
set -uo pipefail
out=/tmp/moe-pdl18b; mkdir -p "$out"
trap 'tar czf "$OUT/pdl18b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
timeout 150 $T -class MoeRuntime.Tests.Accelerators.DependentLaunchTests -class MoeRuntime.Tests.Runtime.MoeLayerDependentLaunchTests > "$out/tests-pdl.log" 2>&1
echo "== pdl tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests-pdl.log" | head -30; grep -E "Total:" "$out/tests-pdl.log"
timeout 150 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests > "$out/tests-wgmma.log" 2>&1
echo "== wgmma tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests-wgmma.log" | head -30; grep -E "Total:" "$out/tests-wgmma.log"
for r in 1 2; do
  for v in plain overlap; do
    e=""; [ $v = overlap ] && e="MOE_PDL_OVERLAP=grouped_gemm_wgmma.cu"
    for p in deepseek-v3 mixtral-8x7b qwen3-30b-a3b; do
      (( SECONDS > 520 )) && break 3
      env $e timeout 60 $M bench layer --preset $p --tokens 16,128,1024,8192 > "$out/bench-$v-$p-$r.log" 2>&1
      grep -E "^(deepseek|mixtral|qwen3)" "$out/bench-$v-$p-$r.log" | awk -v v=$v -v r=$r '{print r, v, $1, $2, $3, $4}'
    done
  done
done
echo "== done in ${SECONDS}s"
