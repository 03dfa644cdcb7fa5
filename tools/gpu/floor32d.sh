#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-second session). route32c.sh: with the same routing on both sides,
# DeepSeek-V3 T = 16 and 128 are 1.44x and 1.42-1.43x PyTorch's graph; 1.5x asks for 4-5% less time, nearly all of it
# in the expert GEMMs. Is that within what the H200 reads? The layer's first-layer routing (MOE_BENCH_LAYER_COUNTS) given
# to `sweep grouped_gemm` (MOE_SWEEP_COUNTS): each expert GEMM beside a plain 16-byte-load read of the same experts' W
# (the read floor rows), T = 16 and 128, and at T = 128 the read with 8 blocks an SM; then the T = 16 layer's prefix rows,
# 4 layers cycled. Logs in $OUT/floor32d.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-floor32d; mkdir -p "$out/counts"
trap 'tar czf "$OUT/floor32d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
MOE_BENCH_LAYER_COUNTS="$out/counts" timeout 90 $M bench layer --preset deepseek-v3 --tokens 16,128 > "$out/layer.log" 2>&1
echo "== layer, counts written: exit $? (${SECONDS}s)"; grep -E "^deepseek" "$out/layer.log"; ls "$out/counts"
gemm() { MOE_SWEEP_READ_FLOOR_BLOCKS=$2 MOE_SWEEP_COUNTS="$out/counts/deepseek-v3-T$1-counts.txt" MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=$1 \
           timeout 120 $B sweep grouped_gemm --device cuda:0 > "$out/gemm-$1-$2.log" 2>&1
         echo "== grouped GEMM T=$1, read floor $2 blocks an SM: exit $? (${SECONDS}s)"
         grep -E "^\| deepseek" "$out/gemm-$1-$2.log" | grep -v cold | sed -E 's/ +\|/ |/g' | cut -c1-190; }
gemm 16 4; gemm 128 4; gemm 128 8
MOE_SWEEP_PREFIXES=1 MOE_SWEEP_LAYERS=4 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=16 timeout 120 $B sweep moe_layer --device cuda:0 > "$out/prefix16.log" 2>&1
echo "== prefix rows T=16: exit $? (${SECONDS}s)"; grep -E "^\| deepseek" "$out/prefix16.log" | sed -E 's/ +\|/ |/g; s/ H=7168 I=2048 E=256 k=8//' | cut -c1-170
echo "== done in ${SECONDS}s"
