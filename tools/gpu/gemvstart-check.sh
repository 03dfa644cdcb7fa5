#!/usr/bin/env bash
# GPU machine, one H200 (cuda:0), after tools/gpu/pack.sh: issue 9, the decode GEMV's fixed cost (gemvstart branch).
#   1. The grouped GEMM CUDA tests on the new code (GEMV incl. the tile map at E = 128..513, dense GEMV, mma.sync,
#      wgmma, bulk, skinny), and the tile map tests once more on the old walk (MOE_EXPERT_TILES_WALK=serial).
#   2. sweep grouped_gemm at T=1,16 with the read floor rows: new walk (all three models), old walk (Qwen3 and
#      DeepSeek-V3, whose E = 128 / 256 the walk changes; Mixtral's E = 8 is one chunk either way).
#   3. The GEMV trace (MOE_GROUPED_GEMM_GEMV_TRACE=1) of Qwen3 T=1, new walk and old.
# Stdout: test totals and failures, a table old/new/read floor us per row, the trace summaries. Logs in
# $OUT/gemvstart.tgz. Expected about 3.5 minutes; the timeouts add to 5.8 (a sweep prints its table only at its end).
set -uo pipefail
out=/tmp/moe-gemvstart; mkdir -p "$out"
trap 'tar czf "$OUT/gemvstart.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
timeout 100 $T -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvExpertTilesTests -class $K.GroupedGemmDenseGemvTests \
  -class $K.GroupedGemmTests -class $K.GroupedGemmWgmmaTests -class $K.GroupedGemmGemvBulkTests -class $K.GroupedGemmSkinnyTests \
  > "$out/tests.log" 2>&1
echo "== tests, new walk: exit $?"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
MOE_EXPERT_TILES_WALK=serial timeout 30 $T -class $K.GroupedGemmGemvExpertTilesTests > "$out/tests-serial.log" 2>&1
echo "== tile map tests, old walk: exit $?"
grep -E "\[FAIL\]" -A 8 "$out/tests-serial.log" | head -20; grep -E "Total:" "$out/tests-serial.log"

touch "$out/old.log" "$out/new.log"
sweep() { # label, timeout, env...
  local label=$1 limit=$2; shift 2
  env "$@" timeout "$limit" $B sweep grouped_gemm --device cuda:0 --json "$out/$label.json" > "$out/$label.log" 2>&1
  echo "== sweep $label ($*): exit $?"
}
sweep new 110 MOE_SWEEP_TOKENS=1,16
sweep old 60 MOE_SWEEP_TOKENS=1,16 MOE_SWEEP_MODELS=qwen3,deepseek MOE_EXPERT_TILES_WALK=serial
# name | T | old us | new us | read floor us (the same experts' W, 16-byte loads) | read floor GB/s | new tile note
awk -F'|' '
  function trim(s) { gsub(/^ +| +$/, "", s); return s }
  FNR == 1 { file = FILENAME ~ /old\.log$/ ? 1 : 2 }
  /^\| / && $3 ~ /T=/ {
    name = trim($2); split(trim($3), sh, " "); key = name " " sh[1]; us = trim($4) + 0
    if (file == 1) old[key] = us
    else if (name ~ /read floor/) { floor[key] = us; gbs[key] = trim($5) }
    else { new[key] = us; note[key] = trim($9); order[++n] = key }
  }
  END {
    printf "%-44s %8s %8s %8s %7s  %s\n", "row", "old us", "new us", "floor us", "GB/s", "new note"
    for (i = 1; i <= n; i++) {
      k = order[i]; f = k
      sub(/ gate_up\+silu/, " gate_up", f); sub(/ down\*w/, " down", f)
      if (f ~ /\(cold\)/) { sub(/ \(cold\)/, "", f); sub(/ T=/, " read floor (cold) T=", f) } else sub(/ T=/, " read floor T=", f)
      printf "%-44s %8s %8.2f %8s %7s  %s\n", k, (k in old) ? sprintf("%.2f", old[k]) : "-", new[k],
             (f in floor) ? sprintf("%.2f", floor[f]) : "-", (f in gbs) ? gbs[f] : "-", note[k]
    }
  }' "$out/old.log" "$out/new.log" | sed 's/  *$//'
echo "(old: MOE_EXPERT_TILES_WALK=serial; floor: the read floor row, the same experts' W in 16-byte loads, replayed alike)"

trace() { # label, env...
  local label=$1; shift
  env "$@" MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_TOKENS=1 MOE_SWEEP_MODELS=qwen3 timeout 25 $B sweep grouped_gemm --device cuda:0 \
    > "$out/trace-$label.log" 2>&1
  echo "== GEMV trace, $label walk: exit $?"
  grep -E "^gemv trace|^  " "$out/trace-$label.log" | head -30
}
trace new
trace old MOE_EXPERT_TILES_WALK=serial
