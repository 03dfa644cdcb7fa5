#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh.
# 1. Tests with CUDA: programmatic dependent launch (DependentLaunchTests, MoeLayerDependentLaunchTests; given time for
#    the first NVRTC compiles), the layer with SiLU-and-mul as its own kernel (MoeLayerSeparateSiluTests).
# 2. The layer sweep at T = 1, 16, 128, alternating settings twice: fused SiLU on/off (MOE_LAYER_FUSED_SILU) with PDL
#    on, and PDL off with fused on (MOE_PDL=0).
# Logs in $OUT/silu.tgz; on stdout: test totals and failures, then per setting the layer rows (us, of floor).
set -uo pipefail
out=/tmp/moe-silu; mkdir -p "$out"
trap 'tar czf "$OUT/silu.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
timeout 240 $T -class MoeRuntime.Tests.Accelerators.DependentLaunchTests -class MoeRuntime.Tests.Runtime.MoeLayerDependentLaunchTests \
  -class MoeRuntime.Tests.Runtime.MoeLayerSeparateSiluTests > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]|\[SKIP\]" -A 6 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
for round in 1 2; do
  for setting in "1 on" "1 off" "0 on"; do
    set -- $setting
    tag="pdl$1-fused$2-r$round"
    MOE_PDL=$1 MOE_LAYER_FUSED_SILU=$2 MOE_SWEEP_TOKENS=1,16,128 timeout 60 $B sweep moe_layer --device cuda:0 --json "$out/$tag.json" > "$out/$tag.log" 2>&1
    echo "== $tag: exit $? (${SECONDS}s)"
    grep -E "^\| .* layer " "$out/$tag.log" | awk -F'|' '{split($3,s," "); printf "  %-14s %-6s %9s us %6s | %s\n", $2, s[1], $4, $8, $9}' | sed -E 's/ layer +/ /'
  done
done
