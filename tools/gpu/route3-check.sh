#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: issue 3 (routing: branch-free sigmoid reciprocal on the
# contiguous path; permute: same-expert masks by ballots instead of match.any, one warp scan, the gather's two index
# loads issued together).
# TopKRoutingTests (incl. FastSigmoidMatchesDivisionBitForBit: the new sigmoid against MOE_ROUTING_SIGMOID=division,
# bit for bit), PermuteTests (incl. BallotAndMatchInstructionMasksAgree) and CombineTests with CUDA; then the token-ops
# sweep (graph replays) once, which has A/B rows in the same session: "routing deepseek grouped division" (the previous
# sigmoid) beside "routing deepseek grouped", "permute ... match.any" (the previous scatter masks) and "permute ...
# 3-kernel" beside the permute rows; then, only while the script stays under 4 minutes, the sweep again with the old
# paths for the whole process (MOE_ROUTING_SIGMOID=division MOE_PERMUTE_MATCH=instruction).
# Logs in $OUT/route3.tgz; on stdout: test totals and failures, the routing and permute rows of each sweep.
set -uo pipefail
out=/tmp/moe-route3; mkdir -p "$out"
trap 'tar czf "$OUT/route3.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
timeout 200 $T -class MoeRuntime.Tests.Kernels.TopKRoutingTests -class MoeRuntime.Tests.Kernels.PermuteTests \
  -class MoeRuntime.Tests.Kernels.CombineTests > "$out/tests.log" 2>&1; echo "tests: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
sweep() { # label, seconds, env...
  local label=$1 limit=$2; shift 2
  env "$@" timeout "$limit" $B sweep token_ops --device cuda:0 --json "$out/sweep-$label.json" > "$out/sweep-$label.log" 2>&1
  echo "sweep $label: exit $? (${SECONDS}s)"
  grep -E "^\| (routing|permute)" "$out/sweep-$label.log" | awk -F'|' '{printf "%-34s %-26s %9s us  %s\n", $2, $3, $4, $8}' | sed 's/  */ /g'
}
left=$((235 - SECONDS))
if [ "$left" -ge 30 ]; then sweep new "$((left < 100 ? left : 100))"
else echo "sweep new: skipped (${SECONDS}s used)"; fi
left=$((235 - SECONDS))
if [ "$left" -ge 45 ]; then sweep old "$((left < 60 ? left : 60))" MOE_ROUTING_SIGMOID=division MOE_PERMUTE_MATCH=instruction
else echo "sweep old: skipped (${SECONDS}s used; the script stays under 4 minutes)"; fi
