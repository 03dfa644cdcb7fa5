#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh. The LL grid now spreads a call under its cap over blocks of at most
# MOE_LL_BLOCK_THREADS threads (256 by default; 512 was the one size before). A/B, alternating, two runs each, 1 KB .. 1 MB:
# blocks of 512 / 256 / 128, and two-shot with 256-thread blocks at 2 units a thread under a cap of 128 (1 MB: 128 blocks of
# 256). NCCL in the 256 runs. Then the LL test classes (the new block sizes are variants there). Logs in $OUT/x2-12a.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-12a; mkdir -p "$out"
trap 'tar czf "$OUT/x2-12a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
declare -A envs=([bt512]="MOE_LL_BLOCK_THREADS=512" [bt256]="MOE_LL_BLOCK_THREADS=256" [bt128]="MOE_LL_BLOCK_THREADS=128"
                 [wide2]="MOE_LL_BLOCK_THREADS=256 MOE_LL_MAX_BLOCKS=128 MOE_LL_UNITS_PER_THREAD=2")
order=(bt512 bt256 bt128 wide2 bt512.2 bt256.2 bt128.2 wide2.2)
for v in "${order[@]}"; do
  key=${v%.*}
  algos=twoshot,oneshot; [ "$key" = bt256 ] && algos=twoshot,oneshot,nccl; [ "$key" = wide2 ] && algos=twoshot
  env ${envs[$key]} timeout 45 $M bench allreduce --devices cuda:0,cuda:1 --algo $algos --dtype bf16 --min 1K --max 1M --factor 2 \
    --json "$out/ar-$v.json" > "$out/ar-$v.log" 2>&1
  echo "== $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
python3 tools/gpu/ar-ab-table.py "$out" "${order[@]}"
timeout 170 $T -class MoeRuntime.Tests.Collectives.LowLatencyVariantTests -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log"
echo "== done (${SECONDS}s)"
