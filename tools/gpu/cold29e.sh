#!/usr/bin/env bash
# GPU machine, one H200, fresh (empty kernel cache), after tools/gpu/pack.sh (twenty-ninth session). Main with
# grouped_gemm.cu and topk_routing.cu built one dtype a compile. The demo cold and warm (cold29d.sh: 92 s cold, of which
# NVRTC took 57 s for grouped_gemm.cu and 27 s for topk_routing.cu whole), then Qwen3-30B-A3B's bf16 layer cold (which
# kernels a bf16 user's first run compiles, and how long), then the test classes of the two changed sources (and the
# builds' own test, under NVRTC 13) and the Runtime namespace. Logs in $OUT/cold29e.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-cold29e; mkdir -p "$out"
trap 'tar czf "$OUT/cold29e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
ls ~/.cache/moe-runtime/kernels 2>/dev/null | wc -l | sed 's/^/== cached kernels before: /'
for run in cold warm; do
  start=$SECONDS
  timeout 120 $M demo > "$out/demo-$run.log" 2> "$out/demo-$run.err"
  echo "== demo $run: exit $? ($((SECONDS - start))s)"
  grep -E "^moe: compil" "$out/demo-$run.err" | head -40
  cat "$out/demo-$run.log"
done
start=$SECONDS
timeout 180 $M bench layer --preset qwen3-30b-a3b --tokens 1,128,1024 --warmup 2 --samples 10 > "$out/layer-cold.log" 2> "$out/layer-cold.err"
echo "== qwen3 layer bf16 cold: exit $? ($((SECONDS - start))s)"
grep -E "^moe: compil" "$out/layer-cold.err" | head -40; grep -vE "^moe: compil" "$out/layer-cold.err" | tail -5; cat "$out/layer-cold.log"
left=$((560 - SECONDS))
timeout $((left * 3 / 5)) $T -class $K.TopKRoutingTests -class $K.TopKRoutingSigmoidBitsTests -class $K.TopKRoutingThreadPerTokenTests \
  -class $K.GroupedGemmTests -class $K.OneDtypeBuildTests -class $K.PermuteTests -class $K.CombineTests > "$out/kernels-tests.log" 2>&1
echo "== kernel classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/kernels-tests.log" | head -60; grep -E "Total:" "$out/kernels-tests.log" | tail -1
left=$((575 - SECONDS))
timeout $left $T -namespace MoeRuntime.Tests.Runtime > "$out/runtime-tests.log" 2>&1
echo "== Runtime namespace: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/runtime-tests.log" | head -60; grep -E "Total:" "$out/runtime-tests.log" | tail -1
echo "== done in ${SECONDS}s"
