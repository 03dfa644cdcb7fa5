#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (issue 9): the decode GEMV's 1-row entry (gemv1, picked where the caller
# bounds every expert's rows at 1: GroupedGemmOptions.MaxRowsPerExpert) against the 4-row entry, `sweep grouped_gemm`
# at T = 1 (graph-replayed, 20 calls a graph; read floor rows beside): Qwen3-30B-A3B alternating off / unroll 1 / 2 / 3,
# two runs each; then every preset off / unroll 1 / 2; then torch._grouped_mm at T = 1 in the same call; then the GEMV
# test classes (the 1-row entry against the 4-row one bit for bit, the F64 reference shapes) and the layer classes whose
# chain at T = 1 now runs it. Logs in $OUT/gemv17a.tgz.
set -uo pipefail
out=/tmp/moe-gemv17a; mkdir -p "$out"
trap 'tar czf "$OUT/gemv17a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
R=MoeRuntime.Tests.Runtime
SECONDS=0
source tools/gpu/ab-table.sh
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
declare -A envs=([off]="MOE_GROUPED_GEMM_GEMV_SINGLE=off" [u1]="MOE_GROUPED_GEMM_GEMV1_UNROLL=1" [u2]="MOE_GROUPED_GEMM_GEMV1_UNROLL=2"
                 [u3]="MOE_GROUPED_GEMM_GEMV1_UNROLL=3")
export MOE_SWEEP_TOKENS=1
order=(off u1 u2 u3 off.2 u1.2 u2.2 u3.2)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/qwen-$v.log" 2>&1
  echo "== qwen3 $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
ab_table "$out" qwen "${order[@]}"
grep -E "^\| qwen3" "$out/qwen-off.log" | grep -E "cold" | cut -c1-160
grep -E "^\| qwen3" "$out/qwen-u2.log" | grep -E "cold" | cut -c1-160
order=(off u1 u2)
for v in "${order[@]}"; do
  (( SECONDS > 330 )) && break
  env ${envs[$v]} timeout 90 $B sweep grouped_gemm --device cuda:0 > "$out/all-$v.log" 2>&1
  echo "== all presets $v: exit $? (${SECONDS}s)"
done
ab_table "$out" all "${order[@]}"
grep -E "^\| (mixtral|deepseek)" "$out/all-u2.log" | grep -E "gate_up |down\*w " | cut -c1-200 | head -4
if (( SECONDS < 420 )); then
  (cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" timeout 90 python3 grouped_gemm.py > "$out/ref-grouped_gemm.log" 2>&1)
  echo "== torch grouped_gemm: exit $? (${SECONDS}s)"; grep -E "\| [0-9]" "$out/ref-grouped_gemm.log" | head -12; tail -8 "$out/ref-grouped_gemm.log"
fi
left=$((590 - SECONDS)); (( left > 200 )) && left=200
timeout $left $T -class $K.GroupedGemmGemvSingleRowTests -class $K.GroupedGemmGemvTests -class $K.GroupedGemmGemvTileMapTests \
  -class $K.GroupedGemmGemvPrefetchTests -class $K.GroupedGemmGemvWRowsTests -class $R.MoeLayerFusedDecodeTests \
  -class $R.MoeLayerGemvPrefetchTests -xml "$out/tests.xml" > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"
echo "== done in ${SECONDS}s"
