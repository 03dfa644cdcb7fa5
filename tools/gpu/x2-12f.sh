#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the closing call of the twelfth session. 1. A/B, alternating, two runs
# each, 64 KB .. 1 MB: the LL transport with and without its new 128-byte-line build from 128 KB (MOE_LL128_MIN_BYTES),
# NCCL in the base runs. 2. The line build's test class. 3. The whole suite (tools/gpu/check-suite.sh), which has the
# line build as an LL variant and one-shot's new default. Logs in $OUT/x2-12f.tgz and $OUT/suite.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-12f; mkdir -p "$out"
trap 'tar czf "$OUT/x2-12f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
SECONDS=0
declare -A envs=([base]="X=1" [ll128]="MOE_LL128_MIN_BYTES=131072")
order=(base ll128 base.2 ll128.2)
for v in "${order[@]}"; do
  key=${v%.*}
  algos=twoshot,oneshot; [ "$key" = base ] && algos=twoshot,oneshot,nccl
  env ${envs[$key]} timeout 45 $M bench allreduce --devices cuda:0,cuda:1 --algo $algos --dtype bf16 --min 64K --max 1M --factor 2 \
    --json "$out/ar-$v.json" > "$out/ar-$v.log" 2>&1
  echo "== $v (${envs[$key]}): exit $? (${SECONDS}s)"; grep -iE "error|exception" "$out/ar-$v.log" | head -3
done
python3 tools/gpu/ar-ab-table.py "$out" "${order[@]}"
timeout 100 $T -class MoeRuntime.Tests.Collectives.LowLatencyLine128Tests -longRunning 20 > "$out/line128.log" 2>&1
echo "== line128 tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/line128.log" | head -40; grep -E "Total:" "$out/line128.log"
WG_DEBUG_S=60 WG_S=110 SUITE_S=$((570 - SECONDS - 175)) OUT="$OUT" bash tools/gpu/check-suite.sh 2>&1 | grep -vE "^== wgmma-debug" | tail -40
echo "== done (${SECONDS}s)"
