#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-second session, review mend): sweep moe_layer times each order and
# computes the floor and the decode trace once per token count; sweep grouped_gemm's trace reads the same wgmma test.
# Both sweeps once with MOE_SWEEP_SCHEDULES, Qwen3-30B-A3B. Logs in $OUT/mend22h.tgz.
set -uo pipefail
out=/tmp/moe-mend22h; mkdir -p "$out"
trap 'tar czf "$OUT/mend22h.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
for s in moe_layer grouped_gemm; do
  MOE_SWEEP_SCHEDULES=dynamic,auto MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1,1024 timeout 90 $B sweep $s --device cuda:0 > "$out/$s.log" 2>&1
  echo "== $s: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/$s.log" | grep -v "read floor\|(cold)" | cut -c1-140
done
