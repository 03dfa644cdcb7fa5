#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the sixth session's kernel checks, the two helpers' scripts side by
# side, one GPU each (CUDA_VISIBLE_DEVICES: each script's cuda:0), then the routing rows beside PyTorch's.
#   GPU 0: tools/gpu/bulkgemv-check.sh   (the bulk-copy GEMV: tests, grouped GEMM T=1 and layer T=1 A/B)
#   GPU 1: tools/gpu/skinnyfold-check.sh (the skinny split-K reducing in its kernel: tests, dense and layer A/B)
#   then, GPU 0: `sweep routing` (with the graph node floor row) and bench/reference/token_ops.py's routing rows, and
#   the grouped GEMM at T=1 with its cold rows.
# Logs in $OUT/mid6.tgz (the helpers' tarballs beside it); summaries on stdout, each script's in its own block.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-mid6; mkdir -p "$out"
trap 'tar czf "$OUT/mid6.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=index,name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null
CUDA_VISIBLE_DEVICES=0 timeout 290 bash tools/gpu/bulkgemv-check.sh > "$out/bulkgemv.out" 2>&1 &
p0=$!
CUDA_VISIBLE_DEVICES=1 timeout 290 bash tools/gpu/skinnyfold-check.sh > "$out/skinnyfold.out" 2>&1 &
p1=$!
wait $p0; echo "== bulkgemv-check: exit $? (${SECONDS}s)"
wait $p1; echo "== skinnyfold-check: exit $? (${SECONDS}s)"
tail -c 4500 "$out/bulkgemv.out"; echo
tail -c 4500 "$out/skinnyfold.out"; echo
timeout 90 $B sweep routing --device cuda:0 --json "$out/routing.json" > "$out/routing.log" 2>&1
echo "== sweep routing: exit $? (${SECONDS}s)"
grep -E "^\| (routing|graph node)" "$out/routing.log" | grep -vE " (teams|old|division|pairs)" |
  awk -F'|' '{printf "  %-34s %-22s %8s us | %s\n", $2, $3, $4, $9}' | sed 's/  */ /g'
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" timeout 100 python3 token_ops.py > "$out/ref-token_ops.log" 2>&1)
echo "== torch token_ops: exit $? (${SECONDS}s)"; grep -iE "routing" "$out/ref-token_ops.log" | head -14
MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/gemm-cold.log" 2>&1
echo "== grouped_gemm qwen3 T=1 with cold rows: exit $? (${SECONDS}s)"
grep -E "T=1 " "$out/gemm-cold.log" | awk -F'|' '{printf "  %-34s %9s us %6s | %s\n", $2, $4, $8, $9}'
