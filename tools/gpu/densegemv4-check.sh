#!/usr/bin/env bash
# GPU machine, one H200 (cuda:0), after tools/gpu/pack.sh: issue 5, the routers at 5..16 rows on the dense GEMV's 4-row
# m-tiles side by side (the 8-row tile lost to the skinny kernel there, densegemv-check.sh).
#   1. GroupedGemmDenseGemvTests with CUDA (the forced path at 1..16 rows now runs 4-row m-tiles);
#   2. sweep dense_gemm, routers, T = 4, 8, 16: paths auto, gemv (forced), skinny;
#   3. sweep moe_layer, qwen3 and mixtral, T = 16: MOE_DENSE_GEMV_MAX_ROWS=16 (the routers on the GEMV) against the default
#      (4: the skinny kernel at 16 rows), alternating twice.
# Logs in $OUT/densegemv4.tgz; tables on stdout. About 2 minutes.
set -uo pipefail
out=/tmp/moe-densegemv4; rm -rf "$out"; mkdir -p "$out"
trap 'tar czf "$OUT/densegemv4.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
timeout 60 $T -class MoeRuntime.Tests.Kernels.GroupedGemmDenseGemvTests > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s) $(grep -oE "Total: [0-9]+, Errors: [0-9]+, Failed: [0-9]+, Skipped: [0-9]+" "$out/tests.log" | tail -1)"
grep -E "\[FAIL\]" -A 6 "$out/tests.log" | cut -c1-250 | head -24
MOE_DENSE_GEMM_PATHS=auto,gemv,skinny MOE_SWEEP_MODELS="deepseek-v3 router,qwen3,mixtral" MOE_SWEEP_TOKENS=4,8,16 timeout 45 $B sweep dense_gemm \
  --device cuda:0 --json "$out/dense.json" > "$out/dense.log" 2>&1
echo "== dense_gemm: exit $? (${SECONDS}s); us per path"
grep -E "^\| [a-z]" "$out/dense.log" | grep -v "^| name" | awk -F'|' '{gsub(/^ +| +$/, "", $2); split($3, s, " "); note = $9; sub(/^ +/, "", note);
  printf "  %-22s %-5s %8s  %s\n", $2, s[1], $4, note}'
layer() { # tag, max rows (empty: default)
  env ${2:+MOE_DENSE_GEMV_MAX_ROWS=$2} MOE_SWEEP_MODELS=qwen3,mixtral MOE_SWEEP_TOKENS=16 timeout 40 $B sweep moe_layer --device cuda:0 \
    --json "$out/$1.json" > "$out/$1.log" 2>&1
  echo "== layer $1 (MOE_DENSE_GEMV_MAX_ROWS=${2:-default}): exit $? (${SECONDS}s)"
  grep -E "^\| .* layer " "$out/$1.log" | awk -F'|' '{split($3,s," "); printf "  %-16s %-6s %9s us %6s\n", $2, s[1], $4, $8}'
}
layer on1 16; layer off1 ""; layer on2 16; layer off2 ""
echo "== done (${SECONDS}s)"
