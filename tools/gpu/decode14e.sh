#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the fourteenth session's closing call (issues 5 and 9).
#   1. `sweep moe_layer` T=1, 4 layers cycled, every preset with the closing defaults; Qwen3 with the grouped GEMV's K share
#      per warp at 1024 and 512 (MOE_GROUPED_GEMM_GEMV_WARP_K: gate_up's split 2 and 4, in the chain and the fused
#      kernel alike), alternating, twice.
#   2. Tests with CUDA: the Runtime and Accelerators namespaces, then the kernel classes whose launches ask the occupancy
#      (GEMV, bulk GEMV, W rows, routing) and MoeDecodeTests.
#   3. PyTorch's layer with 4 layers cycled, if time is left.
# Stdout: tables (us), test totals and failures. Logs in $OUT/decode14e.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode14e; mkdir -p "$out"
trap 'tar czf "$OUT/decode14e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
bash .gpu/run.sh true
MOE_SWEEP_LAYERS=4 MOE_SWEEP_TOKENS=1 timeout 90 $B sweep moe_layer --device cuda:0 > "$out/layer4-defaults.log" 2>&1
echo "== layer x4 defaults: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/layer4-defaults.log" | grep -v "^| name"

source tools/gpu/ab-table.sh
declare -A envs=([def]="MOE_GROUPED_GEMM_GEMV_WARP_K=2048" [wk1024]="MOE_GROUPED_GEMM_GEMV_WARP_K=1024" [wk512]="MOE_GROUPED_GEMM_GEMV_WARP_K=512")
order=(def wk1024 wk512 def.2 wk1024.2 wk512.2)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/q4-$v.log" 2>&1
  echo "== qwen3 x4 $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
ab_table "$out" q4 "${order[@]}"

left=$((400 - SECONDS))
timeout $left $T -namespace MoeRuntime.Tests.Runtime -namespace MoeRuntime.Tests.Accelerators -xml "$out/tests-ns.xml" > "$out/tests-ns.log" 2>&1
echo "== tests (Runtime, Accelerators): exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 12 "$out/tests-ns.log" | head -60; grep -E "Total:" "$out/tests-ns.log" | tail -1
left=$((500 - SECONDS))
timeout $left $T -class $K.MoeDecodeTests -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvBulkTests -class $K.GroupedGemmGemvWRowsTests \
  -class $K.TopKRoutingTests -xml "$out/tests-kernels.xml" > "$out/tests-kernels.log" 2>&1
echo "== tests (kernel classes): exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 12 "$out/tests-kernels.log" | head -60; grep -E "Total:" "$out/tests-kernels.log" | tail -1
left=$((555 - SECONDS))
if [ $left -gt 40 ]; then
  (cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" MOE_SWEEP_LAYERS=4 timeout $left python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
  echo "== torch layer x4: exit $? (${SECONDS}s)"; tail -8 "$out/ref-moe_layer.log"
fi
echo "== done in ${SECONDS}s"
