#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: issue 5, where the single-GPU layer's time goes (layer-phases).
#   1. moe bench layer --phases: device time per phase of eager forwards (router GEMM, top-k routing, permute, experts
#      gate_up, experts down, shared experts, combine; median of 20), then the plain eager/graph row, for
#      deepseek-v3 at T=16,128, with the few-tile rule off (as main) and on
#      (MOE_GROUPED_GEMM_FEW_TILES=mma: router and shared-expert GEMMs on the split-K mma.sync tile, not 1-28 wgmma tiles).
#   2. CUDA tests: GroupedGemmFewTilesTests (the rule's calls against the F64 reference), MoeLayerFewTilesTests
#      (the layer at T=128, 200 against the reference), MoeLayerPhaseTimerTests; rule off, then on.
# Prints the phase tables and the test summaries. Logs in $OUT/layer-phases.tgz. About 3 minutes.
set -uo pipefail
out=/tmp/moe-layer-phases; mkdir -p "$out"
trap 'tar czf "$OUT/layer-phases.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
phases() { # label, preset, tokens, env...
  local label=$1 preset=$2 tokens=$3; shift 3
  env "$@" timeout 60 $M bench layer --preset "$preset" --tokens "$tokens" --device cuda:0 --phases --samples 20 \
    --json "$out/$label.json" > "$out/$label.log" 2>&1
  echo "== phases $label ($*): exit $?"
  grep -vE "^moe bench layer: generating" "$out/$label.log" | tail -8
}
for rule in wgmma mma; do
  phases "deepseek-$rule" deepseek-v3 16,128 MOE_GROUPED_GEMM_FEW_TILES=$rule
done
tests() { # label, env...
  local label=$1; shift
  env "$@" timeout 120 $T -class MoeRuntime.Tests.Kernels.GroupedGemmFewTilesTests -class MoeRuntime.Tests.Runtime.MoeLayerFewTilesTests \
    -class MoeRuntime.Tests.Runtime.MoeLayerPhaseTimerTests -class MoeRuntime.Tests.Cli.LayerBenchCommandTests > "$out/tests-$label.log" 2>&1
  echo "== tests $label ($*): exit $?"
  grep -E "\[FAIL\]" -A 8 "$out/tests-$label.log" | head -30; grep -E "Total:" "$out/tests-$label.log"
}
tests rule-off MOE_GROUPED_GEMM_FEW_TILES=wgmma
tests rule-on MOE_GROUPED_GEMM_FEW_TILES=mma
