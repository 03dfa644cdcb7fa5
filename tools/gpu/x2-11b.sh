#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh and x2-11a.sh: the one-GPU layer beside the TP rows of x2-11a
# (moe bench layer on cuda:0, the same presets and token counts), then the whole suite with CUDA on both GPUs
# (tools/gpu/check-suite.sh) in the time left. Logs in $OUT/x2-11b.tgz and $OUT/suite.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-11b; mkdir -p "$out"
trap 'tar czf "$OUT/x2-11b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
for spec in mixtral-8x7b:mixtral:50 qwen3-30b-a3b:qwen3:40 deepseek-v3:deepseek:90; do
  IFS=: read -r preset name limit <<< "$spec"
  timeout "$limit" $M bench layer --device cuda:0 --preset "$preset" --tokens 1,16,128,1024 --json "$out/one-$name.json" > "$out/one-$name.log" 2>&1
  echo "== one-$name: exit $? (${SECONDS}s)"; grep -vE "^moe bench" "$out/one-$name.log"
done
WG_DEBUG_S=60 WG_S=110 SUITE_S=$((585 - SECONDS - 175)) OUT="$OUT" bash tools/gpu/check-suite.sh 2>&1 | grep -vE "^== wgmma-debug" | tail -40
echo "== done (${SECONDS}s)"
