#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh. Written in the twenty-fifth session, run in the twenty-sixth.
# Main's decode GEMV with the direct write at a split of 1 (400fc06): `sweep grouped_gemm` at T = 1 for Qwen3-30B-A3B,
# DeepSeek-V3 and Mixtral-8x7B, three processes (issue 9 asks 85% of the copy floor: Qwen3's gate_up at 14.09 us or less;
# DeepSeek-V3's down at T = 1 has not run with the change), torch._grouped_mm at T = 1 between the first two, then the
# GEMV classes and the F64 reference class (GroupedGemmTests). Logs in $OUT/confirm26a.tgz.
set -uo pipefail
out=/tmp/moe-confirm26a; mkdir -p "$out"
trap 'tar czf "$OUT/confirm26a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
source tools/gpu/ab-table.sh
order=(main.1 main.2 main.3)
for v in "${order[@]}"; do
  MOE_SWEEP_TOKENS=1 timeout 120 $B sweep grouped_gemm --device cuda:0 > "$out/t1-$v.log" 2>&1
  echo "== T=1 $v: exit $? (${SECONDS}s)"
  if [ "$v" = main.1 ]; then
    (cd bench/reference && MOE_SWEEP_TOKENS=1 PYTHONUNBUFFERED=1 OUT="$out" timeout 90 python3 grouped_gemm.py > "$out/ref-grouped_gemm.log" 2>&1)
    echo "== torch T=1: exit $? (${SECONDS}s)"; cat "$out/ref-grouped_gemm.log"
  fi
done
ab_table "$out" t1 "${order[@]}"
left=$((560 - SECONDS)); [ $left -gt 60 ] || { echo "== GEMV classes skipped (${SECONDS}s)"; exit 0; }
timeout $left $T -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvSingleRowTests -class $K.GroupedGemmGemvTileMapTests \
  -class $K.GroupedGemmGemvPrefetchTests -class $K.GroupedGemmGemvWRowsTests -class $K.GroupedGemmTests > "$out/tests.log" 2>&1
echo "== GEMV and F64 classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -24; grep -E "Total:" "$out/tests.log" | head -1
echo "== done in ${SECONDS}s"
