#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the ninth session's last call.
#   1. GPU 0: Qwen3-30B-A3B at T = 16, where the GEMV now runs both expert GEMMs (MOE_GROUPED_GEMM_GEMV_RULE=experts) and
#      auto keeps 4 W rows (both grids several waves): `sweep grouped_gemm` and `sweep moe_layer` with
#      MOE_GROUPED_GEMM_GEMV_WROWS=auto / 8 / auto / 8 (the down call's K = 768 rows are short: 8 rows double a block's bytes).
#   2. Both GPUs: the whole suite with CUDA (tools/gpu/check-suite.sh).
# Logs in $OUT/final9.tgz and $OUT/suite.tgz; summaries on stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-final9; mkdir -p "$out"
trap 'tar czf "$OUT/final9.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
bash .gpu/run.sh true
rows() { grep -E "^\| [a-z]" "$1" | grep -v "^| name" | grep -v "(cold)" | grep -v "read floor" | awk -F'|' '{gsub(/^ +| +$/, "", $2); split($3, s, " ");
  gsub(/ /, "", $4); printf "  %-28s %-6s %9s us\n", $2, s[1], $4}'; }
export MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=16
for w in auto 8; do
  MOE_GROUPED_GEMM_GEMV_WROWS=$w timeout 100 $B sweep grouped_gemm --device cuda:0 > "$out/gemm-$w.log" 2>&1
  echo "== gemm, W rows $w: exit $? (${SECONDS}s)"; rows "$out/gemm-$w.log"
done
for v in auto 8 auto2 82; do
  MOE_GROUPED_GEMM_GEMV_WROWS=${v:0:$(( ${#v} > 2 ? 4 : 1 ))} timeout 60 $B sweep moe_layer --device cuda:0 > "$out/layer-$v.log" 2>&1
  echo "== layer, W rows $v: exit $? (${SECONDS}s)"; rows "$out/layer-$v.log"
done
unset MOE_SWEEP_MODELS MOE_SWEEP_TOKENS
WG_DEBUG_S=60 WG_S=110 SUITE_S=$((560 - SECONDS - 180)) OUT="$OUT" bash tools/gpu/check-suite.sh 2>&1 | grep -vE "^== wgmma-debug" | tail -40
echo "== done (${SECONDS}s)"
