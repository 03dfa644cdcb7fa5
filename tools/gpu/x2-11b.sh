#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh and x2-11a.sh:
#   1. moe bench link (fixed: its buffers were of a type the allocator refuses)
#   2. Mixtral-8x7B's TP layer stopped after T=1 in x2-11a (no row at T=16 within 60 s): T=16 alone with progress on
#      stderr, with NCCL's AllReduce, without dependent launch, and as before
#   3. the one-GPU layer beside the TP rows of x2-11a (moe bench layer on cuda:0)
# Logs in $OUT/x2-11b.tgz. The suite follows in its own call: WG_DEBUG_S=60 WG_S=110 SUITE_S=400 bash tools/gpu/check-suite.sh
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-11b; mkdir -p "$out"
trap 'tar czf "$OUT/x2-11b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
timeout 40 $M bench link --devices cuda:0,cuda:1 --units 1,8,64,512,1024 --rounds 2000 --json "$out/link.json" > "$out/link.log" 2>&1
echo "== link: exit $? (${SECONDS}s)"; cat "$out/link.log"
tp16() { # label, env..., then the bench's extra arguments after --
  local label=$1; shift
  local envs=(); while [ "$1" != "--" ]; do envs+=("$1"); shift; done; shift
  env "${envs[@]}" timeout 45 $M bench layer --parallel tp --devices cuda:0,cuda:1 --preset mixtral-8x7b "$@" > "$out/tp-mixtral-$label.log" 2>&1
  echo "== tp-mixtral-$label: exit $? (${SECONDS}s)"; grep -vE "^moe bench layer: generating" "$out/tp-mixtral-$label.log" | tail -8
}
tp16 nccl X=1 -- --tokens 16 --allreduce nccl
tp16 nopdl MOE_PDL=0 -- --tokens 16
tp16 default X=1 -- --tokens 16,128,1024 --json "$out/tp-mixtral.json"
for spec in mixtral-8x7b:mixtral:50 qwen3-30b-a3b:qwen3:40 deepseek-v3:deepseek:60; do
  IFS=: read -r preset name limit <<< "$spec"
  timeout "$limit" $M bench layer --device cuda:0 --preset "$preset" --tokens 1,16,128,1024 --json "$out/one-$name.json" > "$out/one-$name.log" 2>&1
  echo "== one-$name: exit $? (${SECONDS}s)"; grep -vE "^moe bench" "$out/one-$name.log"
done
echo "== done (${SECONDS}s)"
