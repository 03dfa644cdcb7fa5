#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: programmatic dependent launch (PDL), on by default (MOE_PDL=0: off).
# 1. Tests with CUDA: the PDL tests (a waiting kernel sees the prior kernel's writes, a non-waiting one runs early;
#    the layer bit for bit with and without PDL, eager and graph), then the kernel and layer classes PDL touches.
# 2. A/B, same run, alternating: the layer sweep at T = 1, 16, 128 and the grouped GEMM decode rows (T = 1, 16),
#    MOE_PDL=0 then 1; then the routing sweep, off then on, if time is left.
# Logs in $OUT/pdl.tgz; on stdout: test totals and failures, the layer rows side by side, the GEMM rows.
set -uo pipefail
out=/tmp/moe-pdl; mkdir -p "$out"
trap 'tar czf "$OUT/pdl.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
left() { echo $(( ${BUDGET:-560} - SECONDS )); }
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1
timeout 60 $T -class MoeRuntime.Tests.Accelerators.DependentLaunchTests -class MoeRuntime.Tests.Runtime.MoeLayerDependentLaunchTests > "$out/pdl-tests.log" 2>&1
echo "== pdl tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/pdl-tests.log" | head -30; grep -E "Total:" "$out/pdl-tests.log"
timeout "${TESTS_S:-200}" $T -class MoeRuntime.Tests.Kernels.GroupedGemmGemvTests -class MoeRuntime.Tests.Kernels.GroupedGemmSkinnyTests \
  -class MoeRuntime.Tests.Kernels.CombineTests -class MoeRuntime.Tests.Kernels.PermuteTests -class MoeRuntime.Tests.Kernels.GatedActivationTests \
  -class MoeRuntime.Tests.Kernels.GroupedGemmTests -class MoeRuntime.Tests.Runtime.MoeLayerTests -class MoeRuntime.Tests.Runtime.MoeLayerSkinnyTests \
  -class MoeRuntime.Tests.Kernels.TopKRoutingSigmoidBitsTests > "$out/kernel-tests.log" 2>&1
echo "== kernel/layer tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/kernel-tests.log" | head -40; grep -E "Total:" "$out/kernel-tests.log"
for pdl in 0 1; do
  MOE_PDL=$pdl MOE_SWEEP_TOKENS=1,16,128 timeout 110 $B sweep moe_layer --device cuda:0 --json "$out/layer-pdl$pdl.json" > "$out/layer-pdl$pdl.log" 2>&1
  echo "== layer MOE_PDL=$pdl: exit $? (${SECONDS}s)"
done
for pdl in 0 1; do
  [ "$(left)" -gt 60 ] || break
  MOE_PDL=$pdl MOE_SWEEP_TOKENS=1,16 timeout 70 $B sweep grouped_gemm --device cuda:0 --json "$out/gemm-pdl$pdl.json" > "$out/gemm-pdl$pdl.log" 2>&1
  echo "== grouped_gemm MOE_PDL=$pdl: exit $? (${SECONDS}s)"
done
for pdl in 0 1; do
  [ "$(left)" -gt 50 ] || break
  MOE_PDL=$pdl timeout 60 $B sweep routing --device cuda:0 --json "$out/routing-pdl$pdl.json" > "$out/routing-pdl$pdl.log" 2>&1
  echo "== routing MOE_PDL=$pdl: exit $? (${SECONDS}s)"
done
echo "layer rows (PDL off | on):"
paste -d'#' <(grep -E "^\| .* layer " "$out/layer-pdl0.log" | awk -F'|' '{printf "%s %s %s %s", $2, $3, $4, $7}') \
            <(grep -E "^\| .* layer " "$out/layer-pdl1.log" | awk -F'|' '{printf "%s %s %s", $4, $7, $8}') | sed -E 's/ +/ /g; s/#/ || /'
echo "grouped_gemm rows T=1/16 (PDL off | on):"
paste -d'#' <(grep -E "^\| " "$out/gemm-pdl0.log" | grep -E "T=(1|16) " | awk -F'|' '{printf "%s %s %s %s", $2, $3, $4, $7}') \
            <(grep -E "^\| " "$out/gemm-pdl1.log" | grep -E "T=(1|16) " | awk -F'|' '{printf "%s %s", $4, $7}') | sed -E 's/ +/ /g; s/#/ || /' | cut -c1-170 | head -40
echo "routing rows (PDL off | on):"
paste -d'#' <(grep -E "^\| routing" "$out/routing-pdl0.log" | awk -F'|' '{printf "%s %s %s", $2, $3, $4}') \
            <(grep -E "^\| routing" "$out/routing-pdl1.log" | awk -F'|' '{printf "%s", $4}') | sed -E 's/ +/ /g; s/#/ || /' | head -40
