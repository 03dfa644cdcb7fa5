#!/usr/bin/env bash
# GPU machine, after tools/gpu/pack.sh (fourth session): routing after the team kernel's launch-shape change
# (tools/gpu/route6-check.sh: the bit-for-bit test, the sweep with T=2048/4096, the class), then the DeepSeek-V3 layer at
# T=128 with the shared experts on their own stream and on the forward's stream, alternating, twice each.
set -uo pipefail
out=/tmp/moe-run4c; mkdir -p "$out"
trap 'tar czf "$OUT/run4c.tgz" -C "$out" .' EXIT
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
bash tools/gpu/route6-check.sh 2>&1 | grep -vE "^ routing (softmax|deepseek grouped (division|one-pass|persistent))" | tail -30
for i in 1 2; do
  for s in 1 0; do
    MOE_LAYER_SHARED_STREAM=$s timeout 60 $M bench layer --preset deepseek-v3 --tokens 128 --device cuda:0 > "$out/layer-$s-$i.log" 2>&1
    echo "== layer deepseek-v3 T=128, shared stream $s, run $i: exit $?"; grep -E "^deepseek-v3" "$out/layer-$s-$i.log"
  done
done
echo "== done (${SECONDS}s)"
