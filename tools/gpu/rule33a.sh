#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-third session). DeepSeek-V3 at T = 16 is 1.44x PyTorch's graph
# (1.5x asked); its two expert GEMMs run on the decode GEMV (the Experts rule: 128 rows over 256 experts), which streams
# gate_up at 4.27 TB/s and down at 4.03, while the wgmma kernel, which the rule replaced at T = 16 in the ninth session,
# now streams 4.40 at T = 128. Does the wgmma kernel win at T = 16 today? 4 layers cycled, the same routing as
# PyTorch, one process a row, alternating: default; MOE_GROUPED_GEMM_GEMV_RULE=small (both GEMMs on wgmma);
# MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K=4096 (down, K = 2048, on wgmma; gate_up, K = 7168, on the GEMV); then Qwen3-30B-A3B
# T = 16 default against small; then each GEMM alone on the layer's first-layer routing. Logs in $OUT/rule33a.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-rule33a; mkdir -p "$out/routing" "$out/counts"
trap 'tar czf "$OUT/rule33a.tgz" -C "$out" --exclude=routing .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
ours() { [ $SECONDS -lt 470 ] || { echo "== ours $1 $2 $3 skipped"; return; }
         env $2 MOE_BENCH_LAYER_ROUTING="$out/routing" MOE_BENCH_LAYER_COUNTS="$out/counts" timeout 90 $M bench layer --preset $1 --tokens 16 --layers 4 > "$out/ours-$1-$3.log" 2>&1
         echo "== ours $1 [$2] $3: exit $? (${SECONDS}s)"; grep -hE "^(deepseek|qwen3)" "$out/ours-$1-$3.log"; }
torch() { [ $SECONDS -lt 480 ] || { echo "== torch skipped"; return; }
          (cd bench/reference && PYTHONUNBUFFERED=1 MOE_LAYER_ROUTING="$out/routing" MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=16 MOE_SWEEP_LAYERS=4 \
             timeout 90 python3 moe_layer.py > "$out/torch.log" 2>&1)
          echo "== torch: exit $? (${SECONDS}s)"; grep -E "^deepseek" "$out/torch.log" | cut -c1-200; }
D=deepseek-v3
ours $D MOE_X=0 default-a; ours $D MOE_GROUPED_GEMM_GEMV_RULE=small small-a; ours $D MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K=4096 mink-a
torch
ours $D MOE_X=0 default-b; ours $D MOE_GROUPED_GEMM_GEMV_RULE=small small-b; ours $D MOE_GROUPED_GEMM_GEMV_EXPERTS_MIN_K=4096 mink-b
ours qwen3-30b-a3b MOE_X=0 default-a; ours qwen3-30b-a3b MOE_GROUPED_GEMM_GEMV_RULE=small small-a
gemm() { [ $SECONDS -lt 480 ] || { echo "== gemm $1 skipped"; return; }
         env $1 MOE_SWEEP_COUNTS="$out/counts/deepseek-v3-T16-counts.txt" MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=16 \
           timeout 100 $B sweep grouped_gemm --device cuda:0 > "$out/gemm-$2.log" 2>&1
         echo "== grouped GEMM T=16 [$1]: exit $? (${SECONDS}s)"
         grep -E "^\| deepseek" "$out/gemm-$2.log" | grep -v cold | sed -E 's/ +\|/ |/g' | cut -c1-190; }
gemm MOE_X=0 default; gemm MOE_GROUPED_GEMM_GEMV_RULE=small small
echo "== done in ${SECONDS}s"
