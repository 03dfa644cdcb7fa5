#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (issue 9): the decode GEMV's K share per warp at Qwen3-30B-A3B T = 1 alone
# (`sweep grouped_gemm`), MOE_GROUPED_GEMM_GEMV_WARP_K 2048 (default: gate_up split 1, down 1), 1024 (gate_up 2), 512
# (gate_up 4), 256 (gate_up 8, down 2); alternating, two runs each. Logs in $OUT/gemv16f.tgz.
set -uo pipefail
out=/tmp/moe-gemv16f; mkdir -p "$out"
trap 'tar czf "$OUT/gemv16f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
for v in 2048 1024 512 256 2048.2 1024.2 512.2 256.2; do
  MOE_GROUPED_GEMM_GEMV_WARP_K=${v%.*} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/gg-$v.log" 2>&1
  echo "== warp K $v: exit $? (${SECONDS}s)"; grep -E "^\| qwen3" "$out/gg-$v.log" | grep -v "read floor" | cut -c1-150
done
echo "== done (${SECONDS}s)"
