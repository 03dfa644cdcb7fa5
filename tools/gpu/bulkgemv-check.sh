#!/usr/bin/env bash
# GPU machine, one H200 (cuda:0), after tools/gpu/pack.sh: issue 9, the bulk-copy decode GEMV (bulkgemv branch).
#   1. GroupedGemmGemvBulkTests (gemvbulk forced against the F64 reference: awkward shapes, fused, scaled, every dtype
#      pair, K = 8 and the stage limits, Qwen3 / DeepSeek-V3 T=1).
#   2. The grouped GEMM sweep at T=1 for qwen3, deepseek-v3, mixtral, alternating MOE_GROUPED_GEMM_GEMV_BULK=0/1/0/1
#      (the note says "tile gemvbulk" where the switch took the new kernel, "tile gemv x4" for the old one).
#   3. The layer sweep at T=1 for the three presets, switch 0 and 1.
#   4. GroupedGemmGemvTests and GroupedGemmTests in the time left (at most 90 s).
# Prints per run: name | us | of floor | note; then the grouped GEMM rows side by side (us of each run, 0 and 1).
# Logs in $OUT/bulkgemv.tgz. At most 235 s: a step that would run past that is skipped (or, tests, cut short).
set -uo pipefail
out=/tmp/moe-bulkgemv; mkdir -p "$out"
trap 'tar czf "$OUT/bulkgemv.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
budget=235 # seconds for the whole script
tests() { # label, timeout (cut to what is left of the budget), classes...
  local label=$1 limit=$2; shift 2
  (( limit > budget - SECONDS )) && limit=$((budget - SECONDS))
  if (( limit < 20 )); then echo "== $label: skipped (${SECONDS}s)"; return; fi
  local args=(); for c in "$@"; do args+=(-class "MoeRuntime.Tests.Kernels.$c"); done
  timeout "$limit" $T "${args[@]}" > "$out/$label.log" 2>&1
  echo "== $label: exit $? (${SECONDS}s)"
  grep -E "\[FAIL\]" -A 8 "$out/$label.log" | head -40; grep -E "Total:" "$out/$label.log"
}
tests tests-bulk 60 GroupedGemmGemvBulkTests
rows() { grep -E "^\| .* T=1 " "$1" | awk -F'|' '{gsub(/ +$/, "", $2); gsub(/^ +/, "", $2); printf "  %-30s %9s us %6s | %s\n", $2, $4, $8, $9}'; }
sweep() { # label, timeout, sweep, env...
  local label=$1 limit=$2 name=$3; shift 3
  if (( SECONDS + limit > budget )); then echo "== $label: skipped (${SECONDS}s)"; return; fi
  env MOE_SWEEP_TOKENS=1 MOE_SWEEP_MODELS=qwen3,deepseek,mixtral "$@" timeout "$limit" $B sweep "$name" --device cuda:0 --json "$out/$label.json" > "$out/$label.log" 2>&1
  echo "== $label ($*): exit $? (${SECONDS}s)"
  rows "$out/$label.log"
}
round=0
for bulk in 0 1 0 1; do
  round=$((round + 1))
  sweep "gemm-bulk$bulk-r$round" 35 grouped_gemm MOE_GROUPED_GEMM_GEMV_BULK=$bulk
done
for bulk in 0 1; do
  sweep "layer-bulk$bulk" 45 moe_layer MOE_GROUPED_GEMM_GEMV_BULK=$bulk
done
echo "== grouped GEMM T=1: us (of floor) per run, bulk=0 in r1 and r3, bulk=1 in r2 and r4"
awk -F'|' 'FNR == 1 {run = FILENAME; sub(/.*gemm-/, "", run); sub(/\.log$/, "", run)}
  /^\| .* T=1 / {n = $2; gsub(/^ +| +$/, "", n); t = $4; gsub(/ /, "", t); f = $8; gsub(/ /, "", f);
    if (!(n in line)) order[++count] = n; line[n] = line[n] sprintf("  %s %s (%s)", run, t, f)}
  END {for (i = 1; i <= count; i++) printf "  %-28s%s\n", order[i], line[order[i]]}' "$out"/gemm-bulk*-r*.log 2>/dev/null
# The GEMV and grouped GEMM classes (unpack8 moved to a header; the dispatch gained a branch), in what time is left.
tests tests-gemm 90 GroupedGemmGemvTests GroupedGemmTests
echo "== done (${SECONDS}s)"
