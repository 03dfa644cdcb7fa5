#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the LL kernel's one-path entries (MOE_LL_SPLIT=1) against the one kernel
# with both paths, alternating, 1 KB .. 1 MB by 4, NCCL in the first and last runs; the traced split build once; then the
# LL, variant and trace test classes on the two GPUs. Logs in $OUT/x2-11f.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-11f; mkdir -p "$out"
trap 'tar czf "$OUT/x2-11f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
declare -A envs=([base]="X=1" [split]="MOE_LL_SPLIT=1" [splittrace]="MOE_LL_SPLIT=1 MOE_LL_TRACE=1")
order=(base split base.2 split.2 splittrace base.3 split.3)
for v in "${order[@]}"; do
  key=${v%.*}
  algos=twoshot,oneshot; [ "$v" = base ] || [ "$v" = base.3 ] && algos=twoshot,oneshot,nccl
  env ${envs[$key]} timeout 60 $M bench allreduce --devices cuda:0,cuda:1 --algo $algos --dtype bf16 --min 1K --max 1M --factor 4 \
    --json "$out/ar-$v.json" > "$out/ar-$v.log" 2>&1
  echo "== $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
python3 tools/gpu/ar-ab-table.py "$out" "${order[@]}"
grep -E "^ +1024 |ll trace" "$out/ar-splittrace.log" | head -6
timeout 240 $T -class MoeRuntime.Tests.Collectives.LowLatencyTraceTests -class MoeRuntime.Tests.Collectives.LowLatencyVariantTests \
  -class MoeRuntime.Tests.Collectives.LowLatencyAllReduceTests > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
echo "== done (${SECONDS}s)"
