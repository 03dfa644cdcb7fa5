#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the tenth session's first call (issues 5 and 9).
#   GPU 1 in the background (on one GPU: after the rest): the GEMV prefetch classes (kernel and layer), the GEMV W rows class (the 8-W-row build with
#   several X rows, not yet run on a GPU), the split-K class.
#   GPU 0: the layer at T = 1, 16, alternating: base (split tiles expected, prefetch off), split tiles bound (the model
#   before), prefetch on (2 segments), prefetch 8 segments, base again; Mixtral-8x7B T=16 phases; `sweep grouped_gemm` at
#   T = 1, 16, 128 with torch._grouped_mm (bench/reference/grouped_gemm.py) in the same run; PyTorch's layer.
# Stdout: tables (us), test totals and failures. Logs in $OUT/split10.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-split10; mkdir -p "$out"
trap 'tar czf "$OUT/split10.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
K=MoeRuntime.Tests.Kernels
R=MoeRuntime.Tests.Runtime
SECONDS=0
bash .gpu/run.sh true
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -2

gpus=$(nvidia-smi -L 2>/dev/null | wc -l)
run_tests() {
 left=$((585 - SECONDS)); (( left > 240 )) && left=240
 timeout $left $T -class $K.GroupedGemmGemvPrefetchTests -class $R.MoeLayerGemvPrefetchTests -class $K.GroupedGemmGemvWRowsTests \
   -class $K.GroupedGemmSplitKTests > "$out/tests.log" 2>&1
 echo "exit $?" >> "$out/tests.log"
}
tests=
if (( gpus > 1 )); then (CUDA_VISIBLE_DEVICES=1 run_tests) & tests=$!; fi

source tools/gpu/ab-table.sh
declare -A envs=([base]="" [bound]="MOE_GROUPED_GEMM_SPLIT_TILES=bound" [pf2]="MOE_GEMV_PREFETCH=on" [pf8]="MOE_GEMV_PREFETCH=8")
export MOE_SWEEP_TOKENS=1,16
order=(base bound pf2 pf8 base.2 bound.2 pf2.2 pf8.2 base.3)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} timeout 150 $B sweep moe_layer --device cuda:0 --json "$out/layer-$v.json" > "$out/layer-$v.log" 2>&1
  echo "== layer $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" layer "${order[@]}"

timeout 60 $M bench layer --preset mixtral-8x7b --tokens 16 --device cuda:0 --phases --samples 20 > "$out/phases-mixtral.log" 2>&1
echo "== phases mixtral T=16: exit $? (${SECONDS}s)"; grep -vE "^moe bench layer: generating" "$out/phases-mixtral.log" | tail -8
MOE_GROUPED_GEMM_SPLIT_TILES=bound timeout 60 $M bench layer --preset mixtral-8x7b --tokens 16 --device cuda:0 --phases --samples 20 > "$out/phases-mixtral-bound.log" 2>&1
echo "== phases mixtral T=16, split tiles bound: exit $? (${SECONDS}s)"; grep -vE "^moe bench layer: generating" "$out/phases-mixtral-bound.log" | tail -8

export MOE_SWEEP_TOKENS=1,16,128
timeout 150 $B sweep grouped_gemm --device cuda:0 > "$out/gemm-base.log" 2>&1
echo "== gemm base: exit $? (${SECONDS}s)"
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" timeout 120 python3 grouped_gemm.py > "$out/ref-grouped_gemm.log" 2>&1)
echo "== torch grouped_gemm: exit $? (${SECONDS}s)"
ab_table "$out" gemm base | grep -vE "read floor"
tail -32 "$out/ref-grouped_gemm.log"
export MOE_SWEEP_TOKENS=1,16
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" timeout 90 python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
echo "== torch moe_layer: exit $? (${SECONDS}s)"; tail -8 "$out/ref-moe_layer.log"

if [ -n "$tests" ]; then wait $tests; else run_tests; fi
echo "== tests (GPU $(( gpus > 1 ? 1 : 0 ))): $(tail -1 "$out/tests.log")"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log" | tail -1
echo "== done in ${SECONDS}s"
