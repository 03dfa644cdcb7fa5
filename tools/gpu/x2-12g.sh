#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the closing defaults (128-byte lines from 256 KB, one-shot a unit a
# thread). The AllReduce table (every algorithm, 1 KB .. 4 MB, NCCL in the same run), then the collective test classes on
# the two GPUs (LL, lines, variants, trace, AllReduce, communicator, TP bench). Logs in $OUT/x2-12g.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-12g; mkdir -p "$out"
trap 'tar czf "$OUT/x2-12g.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
timeout 60 $M bench allreduce --devices cuda:0,cuda:1 --algo all --dtype bf16 --min 1K --max 4M --factor 2 --json "$out/allreduce.json" --svg "$out/allreduce.svg" > "$out/allreduce.log" 2>&1
echo "== allreduce: exit $? (${SECONDS}s)"; grep -E "^#|^ +[0-9]" "$out/allreduce.log" | grep -v "^# AllReduce on" | awk '{print $1, $4, $8}' | paste -sd' ' | sed 's/# /\n# /g'
timeout $((390 - SECONDS)) $T -class MoeRuntime.Tests.Collectives.LowLatencyLine128Tests -class MoeRuntime.Tests.Collectives.LowLatencyVariantTests \
  -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests -class MoeRuntime.Tests.Collectives.LowLatencyTraceTests \
  -class MoeRuntime.Tests.Collectives.AllReduceTests -class MoeRuntime.Tests.Collectives.CommunicatorTests \
  -class MoeRuntime.Tests.Cli.TpLayerBenchTests -longRunning 30 -xml "$out/tests.xml" > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
echo "== done (${SECONDS}s)"
