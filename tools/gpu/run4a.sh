#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh (fourth session, first of the closing runs):
#   1. tools/gpu/route5-check.sh (routing: the teams kernel against the old path; TopKRoutingTests)
#   2. tools/gpu/hostq-check.sh (scale model: host_launch sweep, calibration, validation)
#   3. GEMV K share A/B on DeepSeek-V3 T=1 (MOE_GROUPED_GEMM_GEMV_WARP_K 2048 default, 1024, 512)
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-run4a; mkdir -p "$out"
trap 'tar czf "$OUT/run4a.tgz" -C "$out" .; cp "$OUT"/route5.tgz "$OUT"/hostq.tgz "$out"/ 2>/dev/null' EXIT
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
echo "=== route5"; bash tools/gpu/route5-check.sh 2>&1 | tail -40
echo "=== hostq (${SECONDS}s)"; bash tools/gpu/hostq-check.sh 2>&1 | tail -70
echo "=== gemv warp K (${SECONDS}s)"
for wk in 2048 1024 512; do
  MOE_GROUPED_GEMM_GEMV_WARP_K=$wk MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=1 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/gemv-wk$wk.log" 2>&1
  echo "== warp K $wk: exit $?"; grep -E "^\| deepseek" "$out/gemv-wk$wk.log" | cut -c1-150
done
echo "=== done (${SECONDS}s)"
