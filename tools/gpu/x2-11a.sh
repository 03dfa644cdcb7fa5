#!/usr/bin/env bash
# GPU machine, 2 x H200 (nvidia-h200-x2), after tools/gpu/pack.sh: the eleventh session's two-GPU measurements.
#   1. moe bench link: the one-way latency of an LL-style store GPU 0 <-> GPU 1 (1 to 1024 units a hop), the floor
#      under one-shot's one hop and two-shot's two (issue 4)
#   2. moe bench allreduce: two-shot, one-shot and NCCL, 1 KB .. 4 MB, graph-timed, in the same run (issue 4)
#   3. moe bench layer --parallel tp, Mixtral-8x7B, Qwen3-30B-A3B, DeepSeek-V3 at T = 1, 16, 128, 1024 (issue 5)
#   4. moe bench layer --parallel ep, Qwen3-30B-A3B and DeepSeek-V3 at T = 1, 16, 128, 1024 (issues 5 and 10)
# JSON and logs in $OUT/x2-11a.tgz; tables on stdout. About 7 minutes.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-11a; mkdir -p "$out"
trap 'tar czf "$OUT/x2-11a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
step() { # seconds, label, command...
  local s=$1 label=$2; shift 2
  timeout "$s" "$@" > "$out/$label.log" 2>&1; echo "== $label: exit $? (${SECONDS}s)"
}
nvidia-smi --query-gpu=index,name,clocks.sm,clocks.max.sm --format=csv,noheader
nvidia-smi topo -m 2>/dev/null | head -4
step 60 link $M bench link --devices cuda:0,cuda:1 --units 1,8,64,512,1024 --rounds 2000 --json "$out/link.json"
grep -vE "^moe bench" "$out/link.log"
step 90 allreduce $M bench allreduce --devices cuda:0,cuda:1 --algo twoshot,oneshot,nccl --dtype bf16 --min 1K --max 4M --factor 2 --json "$out/allreduce.json"
grep -E "^#|^ +[0-9]" "$out/allreduce.log"
for spec in mixtral-8x7b:mixtral:60 qwen3-30b-a3b:qwen3:60 deepseek-v3:deepseek:120; do
  IFS=: read -r preset name limit <<< "$spec"
  step "$limit" tp-$name $M bench layer --parallel tp --devices cuda:0,cuda:1 --preset "$preset" --tokens 1,16,128,1024 --json "$out/tp-$name.json"
  grep -vE "^moe bench" "$out/tp-$name.log"
done
for spec in qwen3-30b-a3b:qwen3:70 deepseek-v3:deepseek:100; do
  IFS=: read -r preset name limit <<< "$spec"
  step "$limit" ep-$name $M bench layer --parallel ep --devices cuda:0,cuda:1 --preset "$preset" --tokens 1,16,128,1024 \
    --warmup 3 --samples 10 --json "$out/h200x2-ep-$name-s11.json"
  grep -E "^ +[0-9]+ +[0-9.]+ |^#" "$out/ep-$name.log"
done
echo "== done (${SECONDS}s)"
