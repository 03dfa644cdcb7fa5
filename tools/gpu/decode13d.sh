#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the thirteenth session's fourth call (issues 5 and 9).
# `sweep moe_layer` at T = 1, 2 with forwards cycling through 4 layers of different weights (MOE_SWEEP_LAYERS=4: each
# layer's weights come from DRAM, as in a model's decode), alternating: off (the chain), late (fused, default build),
# early, u2e (unroll 2, early), u2 (unroll 2, late); twice. Then one layer (as before) off / late / u2e once, and PyTorch's
# layer with 4 layers cycled.
# Stdout: tables (us). Logs in $OUT/decode13d.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode13d; mkdir -p "$out"
trap 'tar czf "$OUT/decode13d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
bash .gpu/run.sh true
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1

source tools/gpu/ab-table.sh
F="MOE_DECODE_FUSED=8"
declare -A envs=([off]="MOE_DECODE_FUSED=off" [late]="$F" [early]="$F MOE_DECODE_PREFETCH=early"
  [u2e]="$F MOE_DECODE_UNROLL=2 MOE_DECODE_PREFETCH=early" [u2]="$F MOE_DECODE_UNROLL=2")
export MOE_SWEEP_TOKENS=1,2
order=(off late early u2e u2 off.2 late.2 early.2 u2e.2 u2.2)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/layer4-$v.log" 2>&1
  echo "== layer x4 $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
ab_table "$out" layer4 "${order[@]}"
for v in off late u2e; do
  env ${envs[$v]} timeout 60 $B sweep moe_layer --device cuda:0 > "$out/layer1-$v.log" 2>&1
  echo "== layer x1 $v: exit $? (${SECONDS}s)"
done
ab_table "$out" layer1 off late u2e
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" MOE_SWEEP_LAYERS=4 timeout 90 python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
echo "== torch layer x4: exit $? (${SECONDS}s)"; tail -8 "$out/ref-moe_layer.log"
echo "== done in ${SECONDS}s"
