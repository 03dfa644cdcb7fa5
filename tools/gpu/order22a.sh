#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-second session, first call). Two new wgmma work orders
# (wgmma_order.cuh): gangs:S:C (gangs of S neighbouring blocks claim chunks of C neighbouring items, dynamic inside and
# between gangs: the static order's placement without its drift) and bounded:D (static, no block more than D rounds
# ahead). First the wgmma and trace classes on them; then the orders side by side in one process each
# (MOE_SWEEP_SCHEDULES) on the DeepSeek-V3 T = 8192 layer's router counts (where static lost 9.6 ms to 6.7), balanced
# Mixtral T = 1024 (where dynamic lost 13%) and the random routings. Also the decode GEMV's W loads with the L2::256B
# prefetch size (MOE_GROUPED_GEMM_GEMV_LOAD=l2_256) at T = 1, alternating. Logs in $OUT/order22a.tgz.
set -uo pipefail
out=/tmp/moe-order22a; mkdir -p "$out"
trap 'tar czf "$OUT/order22a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
timeout 200 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTraceTests > "$out/wgmma.log" 2>&1
echo "== wgmma, trace tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/wgmma.log" | head -60; grep -E "Total:" "$out/wgmma.log" | tail -1
gemv() { MOE_SWEEP_TOKENS=1 MOE_SWEEP_MODELS=$2 MOE_GROUPED_GEMM_GEMV_LOAD=$1 timeout 40 $B sweep grouped_gemm --device cuda:0 > "$out/gemv-$1-$2-$3.log" 2>&1
         echo "== gemv loads $1, $2 ($3): exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/gemv-$1-$2-$3.log" | grep -v "(cold)\|read floor (cold)" | cut -c1-140; }
gemv plain qwen3 1; gemv l2_256 qwen3 1; gemv plain qwen3 2; gemv l2_256 qwen3 2
gemv plain mixtral,deepseek 1; gemv l2_256 mixtral,deepseek 1
MOE_BENCH_LAYER_COUNTS="$out/counts" timeout 120 $M bench layer --preset deepseek-v3 --tokens 8192 > "$out/layer.log" 2>&1
echo "== DeepSeek-V3 T = 8192 layer, dynamic: exit $? (${SECONDS}s)"; grep -hE "^deepseek" "$out/layer.log"
f="$out/counts/deepseek-v3-T8192-counts.txt"
ORDERS="static,dynamic,gangs:4:8,gangs:8:8,gangs:8:32,gangs:16:16,gangs:16:64,bounded:1,bounded:2"
sweep() { [ $SECONDS -lt $1 ] || { echo "== skipped $2 past ${SECONDS}s"; return; }
          env MOE_SWEEP_SCHEDULES="$ORDERS" "${@:3}" timeout 90 $B sweep grouped_gemm --device cuda:0 > "$out/sweep-$2.log" 2>&1
          echo "== orders, $2: exit $? (${SECONDS}s)"; grep -E "^\| [a-z].*\\[" "$out/sweep-$2.log" | cut -c1-160; }
[ -f "$f" ] && sweep 330 ds-counts MOE_SWEEP_COUNTS="$f" MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=8192
sweep 360 mixtral-balanced MOE_SWEEP_ROUTING=balanced MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=1024
sweep 390 mixtral MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=1024,8192
sweep 410 qwen3 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1024,8192
sweep 430 deepseek MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=1024,8192
echo "== done in ${SECONDS}s"
