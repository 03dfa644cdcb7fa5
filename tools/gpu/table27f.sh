#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-seventh session, issue 9). Issue 9's whole table on main, ours
# and torch._grouped_mm in the same call: `sweep grouped_gemm` and bench/reference/grouped_gemm.py at T = 1, 16, 128
# (decode; constant weights, memory-bound either way), then at T = 1024, 8192 with random weights (compute-bound: random
# operands run slower than constants, for both). Logs in $OUT/table27f.tgz.
set -uo pipefail
out=/tmp/moe-table27f; mkdir -p "$out"
trap 'tar czf "$OUT/table27f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
budget=${TABLE_BUDGET_S:-360}
ours() { local name=$1 tokens=$2 weights=$3 limit=$(( budget - SECONDS )); [ $limit -gt 20 ] || { echo "== $name skipped (${SECONDS}s)"; return; }
  MOE_SWEEP_WEIGHTS=$weights MOE_SWEEP_TOKENS=$tokens timeout $limit $B sweep grouped_gemm --device cuda:0 > "$out/$name.log" 2>&1
  echo "== ours $name: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/$name.log" | grep -vE "read floor|cold|prefetched|silu" | cut -c1-125; }
theirs() { local name=$1 tokens=$2 weights=$3 limit=$(( budget - SECONDS )); [ $limit -gt 20 ] || { echo "== torch $name skipped (${SECONDS}s)"; return; }
  (cd bench/reference && MOE_SWEEP_WEIGHTS=$weights MOE_SWEEP_TOKENS=$tokens PYTHONUNBUFFERED=1 OUT="$out/torch-$name" \
    timeout $limit python3 grouped_gemm.py > "$out/torch-$name.log" 2>&1)
  echo "== torch $name: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/torch-$name.log" | cut -c1-110; }
ours decode 1,16,128 constant
theirs decode 1,16,128 constant
ours prefill 1024,8192 random
theirs prefill 1024,8192 random
echo "== done in ${SECONDS}s"
