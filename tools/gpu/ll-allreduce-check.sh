#!/usr/bin/env bash
# GPU machine, 2 GPUs: the low-latency (LL) AllReduce transport. First a quick eager two-shot bench in f32 and f16
# (1K-64K, 60 s each: a lost line shows up here in seconds, as a timeout whose message carries the LL report: the
# unit waited for, its slot, the flags expected and found, and every rank's published epoch). Then the LL tests alone
# (240 s; each case's communicator times out after 5 s, so one hang costs 5 s, not the budget), then the other
# collective classes, then the bf16 bench 1K-16M under CUDA graphs (the "picked" column: TwoShot(ll) / OneShot(ll)
# where LL ran; defaults now: LL up to 1 MB, 64 blocks). Logs in $OUT/ll-allreduce.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-ll-allreduce; mkdir -p "$out"
trap 'tar czf "$OUT/ll-allreduce.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader 2>/dev/null | head -2
rows() { grep -E "^#|^ +[0-9]" "$1" | awk '/^#/ {print; next} {printf "%10s %9s %6s %s\n", $1, $4, $7, $8}' | head -"$2"; }

for dtype in f32 f16; do
  timeout 60 $M bench allreduce --devices cuda:0,cuda:1 --algo twoshot --dtype $dtype --min 1K --max 64K --timing eager \
    > "$out/quick-twoshot-$dtype.log" 2>&1; echo "quick two-shot $dtype (eager): exit $?"
  rows "$out/quick-twoshot-$dtype.log" 12
  grep -iE "timed out|exception|error" "$out/quick-twoshot-$dtype.log" | head -4 | cut -c1-900
done

timeout 240 $T -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests > "$out/ll-tests.log" 2>&1; echo "LL tests: exit $?"
grep -E "\[FAIL\]" -A 6 "$out/ll-tests.log" | cut -c1-900 | head -60; grep -E "Total:" "$out/ll-tests.log"

timeout 70 $T -class MoeRuntime.Tests.Collectives.AllReduceTests -class MoeRuntime.Tests.Collectives.CommunicatorTests \
  -class MoeRuntime.Tests.Collectives.ScatterGatherTests -class MoeRuntime.Tests.Collectives.CollectiveKernelLayoutTests \
  > "$out/collective-tests.log" 2>&1; echo "collective tests: exit $?"
grep -E "\[FAIL\]" -A 8 "$out/collective-tests.log" | cut -c1-600 | head -30; grep -E "Total:" "$out/collective-tests.log"

timeout 70 $M bench allreduce --devices cuda:0,cuda:1 --algo all --dtype bf16 --min 1K --max 16M --timing graph \
  --csv "$out/allreduce.csv" > "$out/bench.log" 2>&1; echo "bench allreduce: exit $?"
# size, time(us), #wrong, picked per row (the whole table is in bench.log).
rows "$out/bench.log" 100

echo "== summary"; grep -hE "Total:" "$out/ll-tests.log" "$out/collective-tests.log"
grep -hcE "\[FAIL\]" "$out/ll-tests.log" "$out/collective-tests.log" | paste -sd' ' | sed 's/^/FAIL lines (LL, collective): /'
grep -hoE "LL: rank .*" "$out"/*.log | cut -c1-600 | sort | uniq -c | head -10
