#!/usr/bin/env bash
# GPU machine, one GPU, after tools/gpu/pack.sh: issue 5, the layer's dense calls (router, shared expert) at few rows.
#   1. `dense_gemm` sweep: each call as the layer runs it and on each path (few-tiles, decode64, medium64).
#   2. bench/reference/dense_gemm.py: torch F.linear at the same shapes, same GPU, same run.
# Prints both tables. Logs in $OUT/dense-diag.tgz. About 2 minutes.
set -uo pipefail
out=/tmp/moe-dense-diag; mkdir -p "$out"
trap 'tar czf "$OUT/dense-diag.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
timeout 200 $B sweep dense_gemm --device cuda:0 --json "$out/dense_gemm.json" > "$out/dense_gemm.log" 2>&1
echo "== dense_gemm: exit $?"; grep -E "^\|" "$out/dense_gemm.log" | cut -c1-60,73-84,110-200
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" timeout 120 python3 dense_gemm.py > "$out/ref.log" 2>&1); echo "== torch: exit $?"
cat "$out/ref.log" | tail -25
