#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the closing call of the eleventh session. The AllReduce table with the
# final defaults (all algorithms, 1 KB .. 4 MB by 2, NCCL in the same run), then the whole suite with CUDA on both GPUs
# (tools/gpu/check-suite.sh) in the time left. Logs in $OUT/x2-11g.tgz and $OUT/suite.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-11g; mkdir -p "$out"
trap 'tar czf "$OUT/x2-11g.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
timeout 90 $M bench allreduce --devices cuda:0,cuda:1 --algo all --dtype bf16 --min 1K --max 4M --factor 2 --json "$out/allreduce.json" --svg "$out/allreduce.svg" > "$out/allreduce.log" 2>&1
echo "== allreduce: exit $? (${SECONDS}s)"; grep -E "^#|^ +[0-9]" "$out/allreduce.log" | grep -v "^# AllReduce on" | awk '{print $1, $4, $8}' | paste -sd' ' | sed 's/# /\n# /g'
WG_DEBUG_S=60 WG_S=110 SUITE_S=$((585 - SECONDS - 175)) OUT="$OUT" bash tools/gpu/check-suite.sh 2>&1 | grep -vE "^== wgmma-debug" | tail -40
echo "== done (${SECONDS}s)"
