#!/usr/bin/env bash
# GPU machine, one H200 (cuda:0), after tools/gpu/pack.sh: issue 3, softmax routing over few experts a token per thread
# (topk_routing_thread_*: softmax, experts <= 16, e.g. Mixtral's E=8 k=2; on by default, MOE_ROUTING_THREAD_PER_TOKEN=0
# keeps the strided warp-per-token kernel).
# 1. `bash .gpu/run.sh true` (unpacks the runtime, so the first timed step does not pay for it).
# 2. TopKRoutingThreadPerTokenTests with CUDA: the new kernel against the strided one forced off, bit for bit (ids,
#    weight bits, counts; E 2/3/4/8/16, every k, f32/bf16/f16, T 1..8192, ties, NaN/Inf, all-equal rows, workspace on
#    and off), and against the CPU twin and the reference; up to 60 s.
# 3. TopKRoutingTests and TopKRoutingSigmoidBitsTests with CUDA (the E=8 cases now take the new kernel); up to 120 s.
# 4. `sweep routing`, alternating: the new path on (default), forced off (MOE_ROUTING_THREAD_PER_TOKEN=0), on, off,
#    each in what is left of 175 s from the start (a run is skipped when under 25 s are left). The "on" runs also
#    carry an in-session "routing softmax warp" row (the strided kernel) beside each E=8 row.
# Logs in $OUT/route8.tgz; on stdout: GPU, test totals and failures, then per sweep run the E=8 softmax rows, and a
# table "T | on1 | off1 | on2 | off2 | warp (in on1) | warp (in on2)" (us, graph replays) and the graph node floor rows.
set -uo pipefail
out=/tmp/moe-route8; mkdir -p "$out"
trap 'tar czf "$OUT/route8.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
timeout 60 bash .gpu/run.sh true; echo "run.sh true: exit $? (${SECONDS}s)"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
timeout 60 $T -class MoeRuntime.Tests.Kernels.TopKRoutingThreadPerTokenTests > "$out/thread-tests.log" 2>&1
echo "thread-per-token tests: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 8 "$out/thread-tests.log" | head -30; grep -E "Total:" "$out/thread-tests.log"
timeout 120 $T -class MoeRuntime.Tests.Kernels.TopKRoutingTests -class MoeRuntime.Tests.Kernels.TopKRoutingSigmoidBitsTests > "$out/tests.log" 2>&1
echo "routing test classes: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log"
runs=()
for label in on1 off1 on2 off2; do
  left=$((175 - SECONDS))
  if [ "$left" -lt 25 ]; then echo "sweep $label: skipped (${SECONDS}s used)"; continue; fi
  case $label in off*) flag=0 ;; *) flag=1 ;; esac
  env MOE_ROUTING_THREAD_PER_TOKEN=$flag timeout "$((left < 60 ? left : 60))" $B sweep routing --device cuda:0 \
    --json "$out/sweep-$label.json" > "$out/sweep-$label.log" 2>&1
  echo "sweep $label (MOE_ROUTING_THREAD_PER_TOKEN=$flag): exit $? (${SECONDS}s)"
  grep -E "^\| (routing softmax( warp)? +\| T=[0-9]+ E=8 |graph node floor)" "$out/sweep-$label.log" |
    awk -F'|' '{printf "  %-30s %-24s %9s us\n", $2, $3, $4}' | sed 's/  */ /g'
  runs+=("$label")
done
echo "softmax E=8 k=2 f32, graph replay us: T | on1 | off1 | on2 | off2 | warp row in on1 | warp row in on2"
for t in 1 128 1024 8192; do
  line="T=$t"
  for label in on1 off1 on2 off2; do
    v=$(grep -E "^\| routing softmax +\| T=$t E=8 " "$out/sweep-$label.log" 2>/dev/null | awk -F'|' '{gsub(/ /,"",$4); print $4}')
    line="$line | ${v:--}"
  done
  for label in on1 on2; do
    v=$(grep -E "^\| routing softmax warp +\| T=$t E=8 " "$out/sweep-$label.log" 2>/dev/null | awk -F'|' '{gsub(/ /,"",$4); print $4}')
    line="$line | ${v:--}"
  done
  echo "$line"
done
echo "done (${SECONDS}s)"
