#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: x2-12a/b's one-shot lost 0.45 us at 1-4 KB against the eleventh session
# (3.56-3.69 against 3.10-3.41 us): the trimmed blocks had given each thread 2 units there. Blocks now hold a thread per
# unit of their share. A/B, alternating, three runs each, 1 KB .. 1 MB: that (base) and one-shot grids at 1 unit a thread
# (MOE_LL_ONESHOT_UNITS_PER_THREAD=1: twice the blocks). NCCL and two-shot in the base runs. Then the LL test classes.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-12e; mkdir -p "$out"
trap 'tar czf "$OUT/x2-12e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
declare -A envs=([base]="X=1" [oupt1]="MOE_LL_ONESHOT_UNITS_PER_THREAD=1")
order=(base oupt1 base.2 oupt1.2 base.3 oupt1.3)
for v in "${order[@]}"; do
  key=${v%.*}
  algos=oneshot; [ "$key" = base ] && algos=oneshot,twoshot,nccl
  env ${envs[$key]} timeout 45 $M bench allreduce --devices cuda:0,cuda:1 --algo $algos --dtype bf16 --min 1K --max 1M --factor 2 \
    --json "$out/ar-$v.json" > "$out/ar-$v.log" 2>&1
  echo "== $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
python3 tools/gpu/ar-ab-table.py "$out" "${order[@]}"
timeout 240 $T -class MoeRuntime.Tests.Collectives.LowLatencyVariantTests -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests \
  -longRunning 30 -xml "$out/tests.xml" > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log"
echo "== done (${SECONDS}s)"
