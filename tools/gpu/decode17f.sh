#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the seventeenth session's closing call (issues 5 and 9). The Runtime
# namespace and the fused decode / GEMV 1-row classes on the final code; `sweep moe_layer` T = 1, 4 layers cycled, every
# preset, the fused kernel (default) and the six-kernel chain (MOE_DECODE_FUSED=off, whose GEMVs now take the 1-row entry),
# alternating; PyTorch's layer with 4 layers cycled in the same call. Logs in $OUT/decode17f.tgz.
set -uo pipefail
out=/tmp/moe-decode17f; mkdir -p "$out"
trap 'tar czf "$OUT/decode17f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
source tools/gpu/ab-table.sh
timeout 120 $T -namespace MoeRuntime.Tests.Runtime -xml "$out/tests-runtime.xml" > "$out/tests-runtime.log" 2>&1
echo "== runtime tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests-runtime.log" | head -30; grep -E "Total:" "$out/tests-runtime.log"
timeout 120 $T -class $K.MoeDecodeTests -class $K.MoeDecodeTwinTests -class $K.GroupedGemmGemvSingleRowTests -xml "$out/tests-kernels.xml" > "$out/tests-kernels.log" 2>&1
echo "== kernel tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 12 "$out/tests-kernels.log" | head -30; grep -E "Total:" "$out/tests-kernels.log"
export MOE_SWEEP_TOKENS=1 MOE_SWEEP_LAYERS=4
declare -A envs=([fused]="" [chain]="MOE_DECODE_FUSED=off")
order=(fused chain fused.2 chain.2)
for v in "${order[@]}"; do
  (( SECONDS > 400 )) && break
  env ${envs[${v%.*}]} timeout 120 $B sweep moe_layer --device cuda:0 > "$out/layer-$v.log" 2>&1
  echo "== layer $v: exit $? (${SECONDS}s)"
done
ab_table "$out" layer "${order[@]}"
left=$((570 - SECONDS))
if (( left > 40 )); then
  (cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out" timeout $left python3 moe_layer.py > "$out/ref-moe_layer.log" 2>&1)
  echo "== torch layer x4: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/ref-moe_layer.log" | cut -c1-140
fi
echo "== done in ${SECONDS}s"
