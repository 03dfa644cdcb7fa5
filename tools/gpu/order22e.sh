#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-second session, fifth call). The auto order won Mixtral-8x7B
# T = 1024's isolated calls (3-8%) but not its layer (order22b, order22c). Here: the layer's own router counts
# (MOE_BENCH_LAYER_COUNTS) and its phases (--phases) under dynamic and auto in alternating processes, the isolated calls
# on those counts (MOE_SWEEP_COUNTS), and the layer itself with the two orders alternating four times in one process.
# Logs in $OUT/order22e.tgz.
set -uo pipefail
out=/tmp/moe-order22e; mkdir -p "$out"
trap 'tar czf "$OUT/order22e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
phases() { MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 MOE_BENCH_LAYER_COUNTS="$out/counts-$1" timeout 60 $M bench layer --preset mixtral-8x7b \
             --tokens 1024,8192 --phases > "$out/phases-$1-$2.log" 2>&1
           echo "== phases, $1 ($2): exit $? (${SECONDS}s)"; grep -vE "^\s*$" "$out/phases-$1-$2.log" | tail -22; }
phases dynamic 1; phases auto 1; phases dynamic 2; phases auto 2
for t in 1024 8192; do
  f="$out/counts-dynamic/mixtral-8x7b-T$t-counts.txt"; echo "counts T=$t: $(cat "$f" 2>/dev/null)"
  [ -f "$f" ] && MOE_SWEEP_SCHEDULES=dynamic,auto,bounded:1 MOE_SWEEP_COUNTS="$f" MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=$t \
    timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/gemm-counts-$t.log" 2>&1
  echo "== isolated on the layer's counts, T=$t: exit $? (${SECONDS}s)"; grep -E "^\| [a-z].*\[" "$out/gemm-counts-$t.log" | cut -c1-125
done
MOE_SWEEP_SCHEDULES=dynamic,auto,dynamic,auto MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=1024 timeout 90 $B sweep moe_layer --device cuda:0 > "$out/layer.log" 2>&1
echo "== layer, orders alternating: exit $? (${SECONDS}s)"; grep -E "^\| [a-z].*\[" "$out/layer.log" | cut -c1-125
echo "== done in ${SECONDS}s"
