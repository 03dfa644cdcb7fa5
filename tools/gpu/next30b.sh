#!/usr/bin/env bash
# GPU machine, one H200, fresh (empty kernel cache), after tools/gpu/pack.sh (thirtieth session). topk_routing.cu now
# builds one dtype's group of entries a compile and grouped_gemm_skinny.cu one entry: `moe demo` cold with its compile
# lines (18 s in the twenty-ninth session), then the classes those builds serve (routing, skinny, build, layer bench,
# combine and gated activation, whose CPU twins changed), then issue 9's Qwen3-30B-A3B T = 1 rows, one process a side
# and a row set, ours and torch alternating, twice. Logs in $OUT/next30b.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-next30b; mkdir -p "$out"
trap 'tar czf "$OUT/next30b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
ls ~/.cache/moe-runtime/kernels 2>/dev/null | wc -l | sed 's/^/== cached kernels before: /'
timeout 90 $M demo > "$out/demo-cold.log" 2> "$out/demo-cold.err"; echo "== demo cold: exit $? (${SECONDS}s)"
grep -E "^moe: compil" "$out/demo-cold.err"; grep -E "^\|" "$out/demo-cold.log" | head -12
start=$SECONDS; timeout 30 $M demo > "$out/demo-warm.log" 2>&1; echo "== demo warm: exit $? ($((SECONDS - start))s)"
timeout 300 $T -class $K.TopKRoutingTests -class $K.TopKRoutingSigmoidBitsTests -class $K.TopKRoutingThreadPerTokenTests \
  -class $K.GroupedGemmSkinnyTests -class $K.GroupedGemmSkinnyFoldTests -class $K.OneDtypeBuildTests \
  -class $K.CombineTests -class $K.GatedActivationTests -class MoeRuntime.Tests.Cli.LayerBenchCommandTests > "$out/tests.log" 2>&1
echo "== test classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/tests.log" | head -60; grep -E "Total:" "$out/tests.log" | tail -1
timeout 120 $T -namespace MoeRuntime.Tests.Runtime > "$out/runtime-tests.log" 2>&1
echo "== Runtime namespace: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/runtime-tests.log" | head -40; grep -E "Total:" "$out/runtime-tests.log" | tail -1
# Issue 9: Qwen3-30B-A3B at T = 1, alone in each process (the sweep's other presets change its plain down: 27th section).
export MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1
ours() { [ $SECONDS -lt 500 ] || return; timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/ours-$1.log" 2>&1
  echo "== ours $1: exit $? (${SECONDS}s)"; grep -E "^\| qwen3.*(down\*w|gate_up)" "$out/ours-$1.log" | cut -c1-150; }
torch() { [ $SECONDS -lt 500 ] || return; (cd bench/reference && timeout 60 python3 grouped_gemm.py > "$out/torch-$1.log" 2>&1)
  echo "== torch $1: exit $? (${SECONDS}s)"; grep -E "qwen3" "$out/torch-$1.log" | cut -c1-150; }
ours 1; torch 1; torch 2; ours 2
echo "== done in ${SECONDS}s"
