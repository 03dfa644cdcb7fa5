#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: x2-11i found one-shot's 128-block cap unused (the resident-block count
# started from two-shot's cap of 64). After the fix: one-shot, two-shot and NCCL at 256 KB .. 1 MB, then the LL test classes.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-11j; mkdir -p "$out"
trap 'tar czf "$OUT/x2-11j.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
timeout 30 $M bench allreduce --devices cuda:0,cuda:1 --algo oneshot,twoshot,nccl --dtype bf16 --min 256K --max 1M --factor 2 > "$out/allreduce.log" 2>&1
echo "== allreduce: exit $? (${SECONDS}s)"; grep -E "^#|^ +[0-9]" "$out/allreduce.log" | grep -v "^# AllReduce on" | awk '{print $1, $4, $8}' | paste -sd' ' | sed 's/# /\n# /g'
timeout 110 $T -class MoeRuntime.Tests.Collectives.LowLatencyVariantTests -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log"
