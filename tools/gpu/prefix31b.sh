#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-first session). tail31a.sh: alone, on the sweep's uniform routing
# (254 experts), DeepSeek-V3's T = 128 gate_up+silu and down*w stream at 4.40 / 4.42 TB/s, and their last wave idles the
# SMs 0.5-1.1% of the span; in the layer (152 experts) the phase timer read 4.25 / 4.26 TB/s. Here: the layer's forward
# cut after each phase, graph-replayed (MOE_SWEEP_PREFIXES=1, 4 layers cycled, twice); the same with the traced wgmma
# build (the layer's own routing's items, as CSVs); the isolated calls on random weights. Logs in $OUT/prefix31b.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-prefix31b; mkdir -p "$out/csv"
trap 'tar czf "$OUT/prefix31b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
for r in 1 2; do
  MOE_SWEEP_PREFIXES=1 MOE_SWEEP_LAYERS=4 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=128 timeout 120 $B sweep moe_layer --device cuda:0 > "$out/prefix-$r.log" 2>&1
  echo "== prefixes $r: exit $? (${SECONDS}s)"; grep -E "^\| deepseek" "$out/prefix-$r.log" | sed -E 's/ +\|/ |/g' | cut -c1-200
done
MOE_GROUPED_GEMM_WGMMA_TRACE=1 MOE_SWEEP_TRACE_DIR="$out/csv" MOE_SWEEP_PREFIXES=1 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=128 \
  timeout 120 $B sweep moe_layer --device cuda:0 > "$out/traced.log" 2>&1
echo "== traced: exit $? (${SECONDS}s)"; grep -E "^wgmma trace" "$out/traced.log" | cut -c1-220
MOE_SWEEP_WEIGHTS=random MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=128 MOE_SWEEP_CALLS=gate_up+silu,down \
  timeout 120 $B sweep grouped_gemm --device cuda:0 > "$out/random.log" 2>&1
echo "== isolated, random weights: exit $? (${SECONDS}s)"; grep -E "^\| deepseek" "$out/random.log" | sed -E 's/ +\|/ |/g' | cut -c1-200
echo "== done in ${SECONDS}s"
