#!/usr/bin/env bash
# GPU machine, one H200 (or GPU 0 of two), after tools/gpu/pack.sh: the tenth session's last call.
#   1. `sweep moe_layer` at T = 1, 16, 128 with this session's defaults, then PyTorch's layer (bench/reference/moe_layer.py).
#   2. The layer at T = 1, 16: the ninth session's defaults (old: split-K counting the grid's bound, no GEMV prefetch, the
#      GEMV at any K) against today's, alternating, today's last.
#   3. The whole suite with CUDA (tools/gpu/check-suite.sh: wgmma debug, wgmma class, the rest), in the time left.
# Logs in $OUT/final10.tgz and $OUT/suite.tgz; summaries on stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-final10; mkdir -p "$out"
trap 'tar czf "$OUT/final10.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
bash .gpu/run.sh true
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -2
source tools/gpu/ab-table.sh

MOE_SWEEP_TOKENS=1,16,128 timeout 200 $B sweep moe_layer --device cuda:0 --json "$out/layer-base.json" > "$out/layer-base.log" 2>&1
echo "== layer base T=1,16,128: exit $? (${SECONDS}s)"; ab_table "$out" layer base
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" MOE_SWEEP_TOKENS=1,16,128 timeout 90 python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
echo "== torch moe_layer: exit $? (${SECONDS}s)"; tail -10 "$out/ref-moe_layer.log"

declare -A envs=([new]="" [old]="MOE_GROUPED_GEMM_SPLIT_TILES=bound MOE_GEMV_PREFETCH=off MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K=0")
export MOE_SWEEP_TOKENS=1,16
order=(old new old.2 new.2)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} timeout 60 $B sweep moe_layer --device cuda:0 --json "$out/layer-$v.json" > "$out/layer-$v.log" 2>&1
  echo "== layer $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" layer "${order[@]}"
unset MOE_SWEEP_TOKENS

WG_DEBUG_S=60 WG_S=110 SUITE_S=$((585 - SECONDS - 175)) OUT="$OUT" bash tools/gpu/check-suite.sh 2>&1 | grep -vE "^== wgmma-debug" | tail -40
echo "== done (${SECONDS}s)"
