#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the closing check of the twelfth session. The AllReduce table on the
# closing defaults (two-shot, one-shot, NCCL, auto; 1 KB .. 4 MB), the whole suite with CUDA on the
# two GPUs (tools/gpu/check-suite.sh: wgmma debug, wgmma class, the rest), then, time allowing, the tensor-parallel layer
# (Qwen3-30B-A3B and DeepSeek-V3 at T = 1, 16, 128; the AllReduce of its partials now on the new LL grids) beside the
# one-GPU layer in the same call. Logs in $OUT/suite.tgz and $OUT/x2-12d.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-12d; mkdir -p "$out"
trap 'tar czf "$OUT/x2-12d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
timeout 40 $M bench allreduce --devices cuda:0,cuda:1 --algo twoshot,oneshot,nccl,auto --dtype bf16 --min 1K --max 4M --factor 2 --json "$out/allreduce.json" > "$out/allreduce.log" 2>&1
echo "== allreduce: exit $? (${SECONDS}s)"; grep -E "^#|^ +[0-9]" "$out/allreduce.log" | grep -v "^# AllReduce on" | awk '{print $1, $4, $8}' | paste -sd' ' | sed 's/# /\n# /g'
WG_DEBUG_S=60 WG_S=110 SUITE_S=300 OUT="$OUT" bash tools/gpu/check-suite.sh 2>&1 | grep -vE "^== wgmma-debug" | tail -40
echo "== suite done (${SECONDS}s)"
for preset in qwen3-30b-a3b deepseek-v3; do
  name=${preset%%-*}
  [ $((540 - SECONDS)) -gt 60 ] || { echo "== $name: skipped (time)"; continue; }
  timeout 45 $M bench layer --parallel tp --devices cuda:0,cuda:1 --preset "$preset" --tokens 1,16,128 --json "$out/tp-$name.json" > "$out/tp-$name.log" 2>&1
  echo "== tp-$name: exit $? (${SECONDS}s)"; grep -E "^ +[0-9]" "$out/tp-$name.log" | cut -c1-160
  timeout 40 $M bench layer --device cuda:0 --preset "$preset" --tokens 1,16,128 --json "$out/one-$name.json" > "$out/one-$name.log" 2>&1
  echo "== one-$name: exit $? (${SECONDS}s)"; grep -E "^ +[0-9]" "$out/one-$name.log" | cut -c1-160
done
echo "== done (${SECONDS}s)"
