#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: where the LL AllReduce's time goes (issue 4). The link probe says a
# hop is 0.86 us one way (1.7 us round trip), yet two-shot takes 2.7 us more than one-shot.
#   1. moe bench allreduce, two-shot and one-shot, 1 KB .. 1 MB, graph-timed: traced (MOE_LL_TRACE=1: the last call's
#      stamps per rank) and not (the trace's own cost), alternating, NCCL once
#   2. the LL test classes (trace, variants with the traced build, LL) on the two GPUs
# Logs in $OUT/x2-11c.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-11c; mkdir -p "$out"
trap 'tar czf "$OUT/x2-11c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
ar() { # label, env, algorithms
  env $2 timeout 60 $M bench allreduce --devices cuda:0,cuda:1 --algo "$3" --dtype bf16 --min 1K --max 1M --factor 4 > "$out/ar-$1.log" 2>&1
  echo "== ar-$1 ($2): exit $? (${SECONDS}s)"; grep -E "^#|^ +[0-9]" "$out/ar-$1.log" | grep -v "^# AllReduce on"
}
ar plain X=1 twoshot,oneshot,nccl
ar trace MOE_LL_TRACE=1 twoshot,oneshot
ar plain.2 X=1 twoshot,oneshot
ar trace.2 MOE_LL_TRACE=1 twoshot,oneshot
timeout 200 $T -class MoeRuntime.Tests.Collectives.LowLatencyTraceTests -class MoeRuntime.Tests.Collectives.LowLatencyVariantTests \
  -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests -class MoeRuntime.Tests.Collectives.LinkLatencyProbeTests \
  -class MoeRuntime.Tests.Cli.TpLayerBenchTests > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
echo "== done (${SECONDS}s)"
