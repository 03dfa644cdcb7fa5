#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the sixteenth session's third call (issue 5). The fused decode kernel's
# gate_up items are G = 8 / split units of 4 W rows; at Qwen3's H = 2048 the split is 1, so a TP rank's slice (I = 384) has
# 192 items for 512 blocks (the whole layer 384). MOE_GROUPED_GEMM_GEMV_WARP_K=1024 / 512 makes the split 2 / 4 (in the
# chain's GEMV as well, so the kernel keeps the chain's bits): A/B at T = 1, 4 layers cycled, alternating, two runs each:
#   1. Qwen3 TP on two GPUs;  2. Qwen3 on one GPU (`sweep moe_layer`);  3. one rank's slice traced at 1024;
#   4. all three presets on one GPU, default and 1024, once each.
# Logs in $OUT/x2-16c.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-16c; mkdir -p "$out"
trap 'tar czf "$OUT/x2-16c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
declare -A envs=([base]="X=1" [wk1024]="MOE_GROUPED_GEMM_GEMV_WARP_K=1024" [wk512]="MOE_GROUPED_GEMM_GEMV_WARP_K=512")
order=(base wk1024 wk512 base.2 wk1024.2 wk512.2)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} timeout 60 $M bench layer --parallel tp --devices cuda:0,cuda:1 --preset qwen3-30b-a3b --tokens 1 --layers 4 > "$out/tp-$v.log" 2>&1
  echo "== qwen3 TP $v: exit $? (${SECONDS}s) $(grep -E "^qwen3" "$out/tp-$v.log")"
done
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/one-$v.log" 2>&1
  echo "== qwen3 one GPU $v: exit $? (${SECONDS}s) $(grep -E "^\| qwen3" "$out/one-$v.log" | cut -c1-120)"
done
MOE_GROUPED_GEMM_GEMV_WARP_K=1024 MOE_SWEEP_SLICE=2 MOE_DECODE_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 \
  timeout 60 $B sweep moe_layer --device cuda:0 > "$out/slice-trace-1024.log" 2>&1
echo "== slice trace 1024: exit $? (${SECONDS}s)"; sed -n '/forward 8 of 8/,$p' "$out/slice-trace-1024.log" | head -12; grep -E "^\| qwen3" "$out/slice-trace-1024.log" | cut -c1-120
for v in base wk1024; do
  env ${envs[$v]} MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 90 $B sweep moe_layer --device cuda:0 > "$out/all-$v.log" 2>&1
  echo "== all presets one GPU $v: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/all-$v.log" | grep -v "^| name" | cut -c1-120
done
echo "== done (${SECONDS}s)"
