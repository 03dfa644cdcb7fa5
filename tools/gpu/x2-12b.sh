#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the LL test classes on the build with 256-thread blocks under the grid's
# cap (x2-12a's tests ran out of time: 21 variants now), each test's duration in tests.xml, hung ones reported after 30 s;
# then the closing AllReduce table (every algorithm, 1 KB .. 4 MB, NCCL in the same run). Logs in $OUT/x2-12b.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-12b; mkdir -p "$out"
trap 'tar czf "$OUT/x2-12b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
timeout 330 $T -class MoeRuntime.Tests.Collectives.LowLatencyVariantTests -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests \
  -class MoeRuntime.Tests.Collectives.LowLatencyTraceTests -longRunning 30 -xml "$out/tests.xml" > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -30; grep -E "Total:|running" "$out/tests.log" | head
timeout 60 $M bench allreduce --devices cuda:0,cuda:1 --algo all --dtype bf16 --min 1K --max 4M --factor 2 --json "$out/allreduce.json" --svg "$out/allreduce.svg" > "$out/allreduce.log" 2>&1
echo "== allreduce: exit $? (${SECONDS}s)"; grep -E "^#|^ +[0-9]" "$out/allreduce.log" | grep -v "^# AllReduce on" | awk '{print $1, $4, $8}' | paste -sd' ' | sed 's/# /\n# /g'
echo "== done (${SECONDS}s)"
