#!/usr/bin/env bash
# GPU machine, one GPU (cuda:0), after tools/gpu/pack.sh: the persist fix (the routing sigmoid's exp is routing_exp,
# bit for bit the CPU twin's RoutingExp, instead of CUDA's expf; seed 59463 of PersistentMatchesOnePassBitForBit had
# two nearly tied experts swapped against the twin).
# 1.-3. TopKRoutingTests and TopKRoutingSigmoidBitsTests with CUDA, three processes (fresh random seeds each, printed
#    in any failure), 35 s each: failures (first lines) and totals.
# 4. With what is left of 110 s: the routing sweep (graph replays), its DeepSeek rows, to see what the exp costs
#    (compare with route6-check's table; cut by timeout, exit 124, when short of time).
# Logs in $OUT/persist.tgz. Under 2 minutes plus the start-ups.
set -uo pipefail
out=/tmp/moe-persist; mkdir -p "$out"
trap 'tar czf "$OUT/persist.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1
for run in 1 2 3; do
  timeout 35 $T -class MoeRuntime.Tests.Kernels.TopKRoutingTests -class MoeRuntime.Tests.Kernels.TopKRoutingSigmoidBitsTests \
    > "$out/tests-$run.log" 2>&1
  echo "run $run: exit $? (${SECONDS}s)"
  grep -E "\[FAIL\]" -A 6 "$out/tests-$run.log" | head -24; grep -E "Total:" "$out/tests-$run.log"
done
left=$((110 - SECONDS))
if [ "$left" -ge 20 ]; then
  timeout "$left" $B sweep routing --device cuda:0 --json "$out/sweep.json" > "$out/sweep.log" 2>&1
  echo "sweep: exit $? (${SECONDS}s)"
  grep -E "^\| routing deepseek" "$out/sweep.log" | awk -F'|' '{printf "%-40s %-24s %9s us\n", $2, $3, $4}' | sed 's/  */ /g'
else echo "sweep: skipped (${SECONDS}s used)"; fi
