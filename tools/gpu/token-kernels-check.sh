#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: the routing and permute tests with CUDA, then the token-ops
# sweep (routing as CUDA-graph replays; permute eager) twice: as built (the contiguous routing layout) and with
# MOE_ROUTING_LAYOUT=strided (the previous routing kernel, for an A/B in one session). Logs in $OUT/token-kernels.tgz;
# a summary on stdout: test totals and failures, routing T=1/128/1024/8192 for the three configs (both layouts), and
# the permute rows at T=8192 (and the index phase alone) with their share of the copy floor. At most 4 minutes.
set -uo pipefail
out=/tmp/moe-token-kernels; mkdir -p "$out"
trap 'tar czf "$OUT/token-kernels.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
timeout 90 $T -class MoeRuntime.Tests.Kernels.TopKRoutingTests -class MoeRuntime.Tests.Kernels.PermuteTests \
  -class MoeRuntime.Tests.Kernels.HostRowsTests > "$out/tests.log" 2>&1; echo "tests: exit $?"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
sweep() { # label, env...
  local label=$1; shift
  env "$@" timeout 75 $B sweep token_ops --device cuda:0 --json "$out/sweep-$label.json" > "$out/sweep-$label.log" 2>&1
  echo "sweep $label: exit $?"
  grep -E "^\| (routing|permute)" "$out/sweep-$label.log" | awk -F'|' '{printf "%-26s %-30s %9s us  %s\n", $2, $3, $4, $8}' | sed 's/  */ /g'
}
sweep contiguous
sweep strided MOE_ROUTING_LAYOUT=strided
