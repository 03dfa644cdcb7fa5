#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: issue 3 (two tokens per warp in the contiguous routing path).
# TopKRoutingTests with CUDA (incl. TwoTokensPerWarpMatchesOneBitForBit: x2 against x1, bit for bit), then the
# token-ops sweep as built (two tokens per warp from T=1024), then, only while the whole script stays under 100 s, the
# sweep again with MOE_ROUTING_TOKENS_PER_WARP=1 (the one-token kernel) for an A/B in one session.
# Logs in $OUT/route2.tgz; on stdout: test totals and failures, and the routing rows of each sweep.
set -uo pipefail
out=/tmp/moe-route2; mkdir -p "$out"
trap 'tar czf "$OUT/route2.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
timeout 60 $T -class MoeRuntime.Tests.Kernels.TopKRoutingTests > "$out/tests.log" 2>&1; echo "tests: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
sweep() { # label, seconds, env...
  local label=$1 limit=$2; shift 2
  env "$@" timeout "$limit" $B sweep token_ops --device cuda:0 --json "$out/sweep-$label.json" > "$out/sweep-$label.log" 2>&1
  echo "sweep $label: exit $? (${SECONDS}s)"
  grep -E "^\| routing" "$out/sweep-$label.log" | awk -F'|' '{printf "%-26s %-30s %9s us  %s\n", $2, $3, $4, $8}' | sed 's/  */ /g'
}
sweep x2 40
left=$((98 - SECONDS))
if [ "$left" -ge 20 ]; then sweep x1 "$((left < 40 ? left : 40))" MOE_ROUTING_TOKENS_PER_WARP=1
else echo "sweep x1: skipped (${SECONDS}s used; the script stays under 100 s)"; fi
