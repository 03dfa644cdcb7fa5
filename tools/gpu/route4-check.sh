#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: issue 3, routing's persistent two-token path
# (topk_routing_contiguous_x2p_*: warps loop over token pairs, the next pair staged into shared memory by cp.async).
# 1. TopKRoutingTests with CUDA (incl. PersistentMatchesOnePassBitForBit: persistent with 1/2/3 pairs a warp against
#    the one-pass path bit for bit and the CPU twin); timeout 150 s, the kernels compile slowly on a fresh machine.
# 2. The routing sweep alone (graph replays; in-session A/B rows for E=128/256 at T=1024/8192: "one-pass" = the
#    previous kernel, "persistent p1/p2/p4" = the new one with at least 1/2/4 pairs a warp; the plain rows run the
#    default, persistent from T=8192 with p2).
# 3. Only while under ~100 s: the routing sweep again with MOE_ROUTING_PERSISTENT=0 for the whole process.
# Logs in $OUT/route4.tgz; on stdout: test totals and failures, the routing rows of each sweep.
set -uo pipefail
out=/tmp/moe-route4; mkdir -p "$out"
trap 'tar czf "$OUT/route4.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
timeout 150 $T -class MoeRuntime.Tests.Kernels.TopKRoutingTests > "$out/tests.log" 2>&1; echo "tests: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
sweep() { # label, seconds, env...
  local label=$1 limit=$2; shift 2
  env "$@" timeout "$limit" $B sweep routing --device cuda:0 --json "$out/sweep-$label.json" > "$out/sweep-$label.log" 2>&1
  echo "sweep $label: exit $? (${SECONDS}s)"
  grep -E "^\| routing" "$out/sweep-$label.log" | awk -F'|' '{printf "%-40s %-24s %9s us  %s\n", $2, $3, $4, $8}' | sed 's/  */ /g'
}
sweep default 60
left=$((100 - SECONDS))
if [ "$left" -ge 20 ]; then sweep persistent-off "$((left < 40 ? left : 40))" MOE_ROUTING_PERSISTENT=0
else echo "sweep persistent-off: skipped (${SECONDS}s used; the one-pass rows are in the default sweep)"; fi
