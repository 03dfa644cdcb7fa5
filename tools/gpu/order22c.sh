#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-second session, third call). order22a and order22b disagreed on
# the bounded order's gain (Mixtral-8x7B T = 1024 gate_up 7-12% in one, 0-2% in the other; Qwen3-30B-A3B T = 8192 gate_up
# +4% and -3%), so: the isolated calls under dynamic and auto, alternating, in two processes (random routing) and one
# (balanced), and the Mixtral-8x7B layer at T = 1024 with 4 layers cycled, in two processes. Logs in $OUT/order22c.tgz.
set -uo pipefail
out=/tmp/moe-order22c; mkdir -p "$out"
trap 'tar czf "$OUT/order22c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
run() { local name=$1 limit=$2 sweep=$3; shift 3
        [ $SECONDS -lt 330 ] || { echo "== skipped $name past ${SECONDS}s"; return; }
        env MOE_SWEEP_SCHEDULES=dynamic,auto "$@" timeout $limit $B sweep $sweep --device cuda:0 > "$out/$name.log" 2>&1
        echo "== $name: exit $? (${SECONDS}s)"; grep -E "^\| [a-z].*\[" "$out/$name.log" | cut -c1-120; }
run gemm-random-1 90 grouped_gemm MOE_SWEEP_MODELS=mixtral,qwen3,deepseek MOE_SWEEP_TOKENS=1024,8192
run layer-mixtral-1 60 moe_layer MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=1024 MOE_SWEEP_LAYERS=4
run gemm-balanced 90 grouped_gemm MOE_SWEEP_ROUTING=balanced MOE_SWEEP_MODELS=mixtral,qwen3,deepseek MOE_SWEEP_TOKENS=1024,8192
run gemm-random-2 90 grouped_gemm MOE_SWEEP_MODELS=mixtral,qwen3,deepseek MOE_SWEEP_TOKENS=1024,8192
run layer-mixtral-2 60 moe_layer MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=1024 MOE_SWEEP_LAYERS=4
echo "== done in ${SECONDS}s"
