#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: issue 10, a second measurement of the expert-parallel layer on the
# closing build (op tables synchronous, the default), for the scale model's validation beside the s7 runs of
# ephost-check.sh: Qwen3-30B-A3B at T = 1, 16, 128, 1024 and DeepSeek-V3 at T = 1, 16, 128, 1024.
# JSON in $OUT (h200x2-ep-<preset>-ep7.json); the bench tables on stdout. About 2 minutes.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
for spec in qwen3-30b-a3b:qwen3:1,16,128,1024:60 deepseek-v3:deepseek:1,16,128,1024:90; do
  IFS=: read -r preset name tokens limit <<< "$spec"
  timeout "$limit" $M bench layer --parallel ep --devices cuda:0,cuda:1 --preset "$preset" --tokens "$tokens" \
    --warmup 3 --samples 10 --json "$OUT/h200x2-ep-$name-ep7.json" > "/tmp/ep7-$name.log" 2>&1
  echo "== $name: exit $? (${SECONDS}s)"
  grep -E "^ +[0-9]+ +[0-9.]+ |wall|phases" "/tmp/ep7-$name.log" | head -12
done
echo "== done (${SECONDS}s)"
