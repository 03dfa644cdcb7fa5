#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-second session, sixth call). The Mixtral-8x7B layer's gate_up phase
# took 924-931 us under both orders (order22e) against 850-891 us isolated on the same counts, where auto was 4% faster.
# The sweeps fill the experts with constants (0.01, -0.02); the layer's are random. Do random operands draw more power
# and slow the compute-bound calls? Ours (MOE_SWEEP_WEIGHTS=constant|random, dynamic and auto alternating) and
# torch._grouped_mm's (bench/reference/grouped_gemm.py, same switch) on constant and random weights, same call.
# Logs in $OUT/weights22f.tgz.
set -uo pipefail
out=/tmp/moe-weights22f; mkdir -p "$out"
trap 'tar czf "$OUT/weights22f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
ours() { MOE_SWEEP_WEIGHTS=$1 MOE_SWEEP_SCHEDULES=dynamic,auto MOE_SWEEP_MODELS=mixtral,qwen3 MOE_SWEEP_TOKENS=1024,8192 \
           timeout 120 $B sweep grouped_gemm --device cuda:0 > "$out/ours-$1.log" 2>&1
         echo "== ours, $1 weights: exit $? (${SECONDS}s)"; grep -E "^\| [a-z].*\[" "$out/ours-$1.log" | cut -c1-120; }
torch() { (cd bench/reference && MOE_SWEEP_WEIGHTS=$1 MOE_SWEEP_MODELS=mixtral,qwen3 MOE_SWEEP_TOKENS=1024,8192 OUT="$out/torch-$1" \
            timeout 120 python3 grouped_gemm.py > "$out/torch-$1.log" 2>&1)
          echo "== torch, $1 weights: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/torch-$1.log" | cut -c1-120; }
ours constant; ours random; torch constant; torch random
echo "== done in ${SECONDS}s"
