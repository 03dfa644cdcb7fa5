#!/usr/bin/env bash
# GPU machine, one H200 (cuda:0 of what CUDA_VISIBLE_DEVICES shows), after tools/gpu/pack.sh and `bash .gpu/run.sh true`:
# the dependent launch's trigger before the wait (MOE_PDL_TRIGGER=early) against after it (late, the default).
#   1. With early: DependentLaunchTests (the PTX order, a three-kernel chain in a graph), MoeLayerDependentLaunchTests
#      (the layer bit for bit with and without PDL), TopKRoutingTests; up to 100 s.
#   2. `sweep routing` late, early (graph node floor, softmax E=8 / E=128, DeepSeek-V3 grouped); 60 s each.
#   3. `sweep moe_layer` T = 1, 16 for mixtral, qwen3, deepseek: late, early, late, early; 50 s each.
# Stdout: test totals and failures, then "row | late | early" for the routing rows, "row | late1 | early1 | late2 |
# early2" for the layer (us, graph replays). Logs in $OUT/trigger.tgz. About 6 minutes.
set -uo pipefail
out=/tmp/moe-trigger; mkdir -p "$out"
trap 'tar czf "$OUT/trigger.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
MOE_PDL_TRIGGER=early timeout 100 $T -class MoeRuntime.Tests.Accelerators.DependentLaunchTests \
  -class MoeRuntime.Tests.Runtime.MoeLayerDependentLaunchTests -class MoeRuntime.Tests.Kernels.TopKRoutingTests > "$out/tests-early.log" 2>&1
echo "== tests, MOE_PDL_TRIGGER=early: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 8 "$out/tests-early.log" | head -30; grep -E "Total:" "$out/tests-early.log"

# "| name | shape | time (us) | ..." -> "name shape<TAB>time"
rows() { grep -E "^\| [a-z]" "$1" | grep -v "^| name" | awk -F'|' '{gsub(/^ +| +$/, "", $2); gsub(/^ +| +$/, "", $3);
  gsub(/ /, "", $4); printf "%s %s\t%s\n", $2, $3, $4}' | LC_ALL=C sort; }
jn() { LC_ALL=C join -t $'\t' -a 1 -e - -o auto "$@"; }

for trig in late early; do
  MOE_PDL_TRIGGER=$trig timeout 60 $B sweep routing --device cuda:0 --json "$out/routing-$trig.json" > "$out/routing-$trig.log" 2>&1
  echo "== sweep routing, $trig: exit $? (${SECONDS}s)"
  rows "$out/routing-$trig.log" > "$out/routing-$trig.rows"
done
echo "routing (us, graph replays): row | late | early"
jn "$out/routing-late.rows" "$out/routing-early.rows" | grep -E "^(graph node floor|routing softmax |routing deepseek grouped )" | grep -v -E "T=(2048|4096)" | tr '\t' '|'

for round in 1 2; do
  for trig in late early; do
    tag="layer-$trig$round"
    MOE_PDL_TRIGGER=$trig MOE_SWEEP_MODELS=mixtral,qwen3,deepseek MOE_SWEEP_TOKENS=1,16 timeout 50 $B sweep moe_layer \
      --device cuda:0 --json "$out/$tag.json" > "$out/$tag.log" 2>&1
    echo "== $tag: exit $? (${SECONDS}s)"
    rows "$out/$tag.log" > "$out/$tag.rows"
  done
done
echo "layer (us): row | late1 | early1 | late2 | early2"
jn "$out/layer-late1.rows" "$out/layer-early1.rows" | jn - "$out/layer-late2.rows" | jn - "$out/layer-early2.rows" | tr '\t' '|'
