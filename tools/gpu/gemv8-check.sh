#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: issue 9, the 8-row decode GEMV (gemv8 branch).
#   1. GroupedGemmGemvTests (4- and 8-row tiles, 5..8 / >8 / skewed / empty experts, the m-tile loop) and
#      GroupedGemmTests, against the CPU reference with poisoned outputs.
#   2. The grouped GEMM sweep at T=1,16 for every model with the new rule (Mixtral T=16 takes "tile gemv x8").
#   3. A/B at Mixtral T=16: MOE_GROUPED_GEMM_GEMV_MAX_ROWS=4 (the old rule: the decode64 mma.sync tile) and
#      MOE_GROUPED_GEMM_VARIANT=gemv4 (the 4-row GEMV, two W passes for experts with 5..8 rows).
# Rows printed: model/op | shape | us | % of the copy floor | ... | tile note. Logs in $OUT/gemv8.tgz. About 3 minutes.
set -uo pipefail
out=/tmp/moe-gemv8; mkdir -p "$out"
trap 'tar czf "$OUT/gemv8.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
timeout 240 $T -class MoeRuntime.Tests.Kernels.GroupedGemmGemvTests -class MoeRuntime.Tests.Kernels.GroupedGemmTests > "$out/tests.log" 2>&1
echo "== tests (GroupedGemmGemvTests, GroupedGemmTests): exit $?"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
sweep() { # label, timeout, env...
  local label=$1 limit=$2; shift 2
  env "$@" timeout "$limit" $B sweep grouped_gemm --device cuda:0 --json "$out/$label.json" > "$out/$label.log" 2>&1
  echo "== $label ($*): exit $?"
  grep -E "T=[0-9]+ " "$out/$label.log" | sed -E 's/ +/ /g' | cut -c1-150
}
sweep new-rule 120 MOE_SWEEP_TOKENS=1,16
sweep old-rule 50 MOE_SWEEP_TOKENS=16 MOE_SWEEP_MODELS=mixtral MOE_GROUPED_GEMM_GEMV_MAX_ROWS=4
sweep forced-gemv4 50 MOE_SWEEP_TOKENS=16 MOE_SWEEP_MODELS=mixtral MOE_GROUPED_GEMM_VARIANT=gemv4
