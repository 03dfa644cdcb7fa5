#!/usr/bin/env bash
# GPU machine, 2 GPUs: the low-latency (LL) AllReduce transport. Runs the collective test classes on CUDA (LL tests,
# AllReduce, communicator, layout, NVRTC compile of every kernel), then the AllReduce bench 1K-16M bf16 under CUDA
# graphs (the "picked" column says TwoShot(ll) / OneShot(ll) where LL ran). Logs in $OUT/ll-allreduce.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-ll-allreduce; mkdir -p "$out"
trap 'tar czf "$OUT/ll-allreduce.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader 2>/dev/null | head -2

# The LL tests first and alone: a hang here (a lost line) shows up as the timeout's exit 124, not as a slow suite.
timeout 80 $T -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests > "$out/ll-tests.log" 2>&1; echo "LL tests: exit $?"
grep -E "\[FAIL\]" -A 8 "$out/ll-tests.log" | head -40; grep -E "Total:" "$out/ll-tests.log"

timeout 90 $T -class MoeRuntime.Tests.Collectives.AllReduceTests -class MoeRuntime.Tests.Collectives.CommunicatorTests \
  -class MoeRuntime.Tests.Collectives.ScatterGatherTests -class MoeRuntime.Tests.Collectives.CollectiveKernelLayoutTests \
  > "$out/collective-tests.log" 2>&1; echo "collective tests: exit $?"
grep -E "\[FAIL\]" -A 8 "$out/collective-tests.log" | head -30; grep -E "Total:" "$out/collective-tests.log"

timeout 90 $M bench allreduce --devices cuda:0,cuda:1 --algo all --dtype bf16 --min 1K --max 16M --timing graph \
  --csv "$out/allreduce.csv" > "$out/bench.log" 2>&1; echo "bench allreduce: exit $?"
grep -vE "^\s*$" "$out/bench.log" | grep -vE "info:|dbug:" | head -80
