#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the thirteenth session's first call (issues 5 and 9).
#   1. Tests: the fused decode kernel (op, layer bits against the chain, reference, graph replay), the layer's
#      determinism and prefetch classes, the layer class, the routing class (its warp routing moved to a header).
#   2. `sweep moe_layer` at T = 1, 2, 4, 8, alternating: off (the six-kernel chain), fused (MOE_DECODE_FUSED=8), fusednp
#      (fused, no down prefetch); twice.
#   3. PyTorch's layer (bench/reference/moe_layer.py) at the same T.
# Stdout: test totals and failures, tables (us). Logs in $OUT/decode13a.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode13a; mkdir -p "$out"
trap 'tar czf "$OUT/decode13a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
R=MoeRuntime.Tests.Runtime
SECONDS=0
bash .gpu/run.sh true
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -2

timeout 150 $T -class $K.MoeDecodeTests -class $R.MoeLayerFusedDecodeTests -class $R.MoeLayerDeterminismTests \
  -class $R.MoeLayerGemvPrefetchTests > "$out/tests-decode.log" 2>&1
echo "== tests (decode, determinism, prefetch): exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 10 "$out/tests-decode.log" | head -60; grep -E "Total:" "$out/tests-decode.log" | tail -1

source tools/gpu/ab-table.sh
declare -A envs=([off]="MOE_DECODE_FUSED=off" [fused]="MOE_DECODE_FUSED=8" [fusednp]="MOE_DECODE_FUSED=8 MOE_DECODE_PREFETCH=off")
export MOE_SWEEP_TOKENS=1,2,4,8
order=(off fused fusednp off.2 fused.2 fusednp.2)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} timeout 70 $B sweep moe_layer --device cuda:0 --json "$out/layer-$v.json" > "$out/layer-$v.log" 2>&1
  echo "== layer $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
ab_table "$out" layer "${order[@]}"
grep -E "qwen3.*T=1 " "$out/layer-fused.log" | head -3

(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" MOE_SWEEP_TOKENS=1,2,4,8 timeout 60 python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
echo "== torch layer: exit $? (${SECONDS}s)"; tail -16 "$out/ref-moe_layer.log"

left=$((570 - SECONDS)); (( left > 200 )) && left=200
(( left > 40 )) && { timeout $left $T -class $R.MoeLayerTests -class $K.TopKRoutingTests > "$out/tests-layer.log" 2>&1
  echo "== tests (layer, routing): exit $? (${SECONDS}s)"
  grep -E "\[FAIL\]" -A 8 "$out/tests-layer.log" | head -30; grep -E "Total:" "$out/tests-layer.log" | tail -1; }
echo "== done in ${SECONDS}s"
