#!/usr/bin/env bash
# GPU machine, 2 GPUs: the low-latency (LL) AllReduce transport. Runs the collective test classes on CUDA (the LL
# tests alone, then AllReduce, communicator, scatter/gather and layout tests), then the AllReduce bench 1K-16M bf16 under CUDA
# graphs (the "picked" column says TwoShot(ll) / OneShot(ll) where LL ran), then two tuning runs up to 4M: LL with a
# 64-block grid cap (MOE_LL_MAX_BLOCKS) and LL off (MOE_LL=0: the schedule path, same session). Logs in $OUT/ll-allreduce.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-ll-allreduce; mkdir -p "$out"
trap 'tar czf "$OUT/ll-allreduce.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader 2>/dev/null | head -2

# The LL tests first and alone: a hang here (a lost line) shows up as the timeout's exit 124, not as a slow suite.
timeout 90 $T -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests > "$out/ll-tests.log" 2>&1; echo "LL tests: exit $?"
grep -E "\[FAIL\]" -A 8 "$out/ll-tests.log" | head -40; grep -E "Total:" "$out/ll-tests.log"

timeout 70 $T -class MoeRuntime.Tests.Collectives.AllReduceTests -class MoeRuntime.Tests.Collectives.CommunicatorTests \
  -class MoeRuntime.Tests.Collectives.ScatterGatherTests -class MoeRuntime.Tests.Collectives.CollectiveKernelLayoutTests \
  > "$out/collective-tests.log" 2>&1; echo "collective tests: exit $?"
grep -E "\[FAIL\]" -A 8 "$out/collective-tests.log" | head -30; grep -E "Total:" "$out/collective-tests.log"

timeout 70 $M bench allreduce --devices cuda:0,cuda:1 --algo all --dtype bf16 --min 1K --max 16M --timing graph \
  --csv "$out/allreduce.csv" > "$out/bench.log" 2>&1; echo "bench allreduce: exit $?"
# size, time(us), #wrong, picked per row (the whole table is in bench.log).
grep -E "^#|^ +[0-9]" "$out/bench.log" | awk '/^#/ {print; next} {printf "%10s %9s %6s %s\n", $1, $4, $7, $8}' | head -100

for variant in "MOE_LL_MAX_BLOCKS=64" "MOE_LL=0"; do
  tag=${variant//[^A-Za-z0-9]/_}
  env "$variant" timeout 30 $M bench allreduce --devices cuda:0,cuda:1 --algo twoshot,oneshot --dtype bf16 --min 1K --max 4M --timing graph \
    --csv "$out/allreduce-$tag.csv" > "$out/bench-$tag.log" 2>&1; echo "bench $variant: exit $?"
  grep -E "^#|^ +[0-9]" "$out/bench-$tag.log" | awk '/^#/ {print; next} {printf "%10s %9s %6s %s\n", $1, $4, $7, $8}' | head -32
done

echo "== summary"; grep -hE "Total:" "$out/ll-tests.log" "$out/collective-tests.log"
grep -hcE "\[FAIL\]" "$out/ll-tests.log" "$out/collective-tests.log" | paste -sd' ' | sed 's/^/FAIL lines (LL, collective): /'
