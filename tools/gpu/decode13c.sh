#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the thirteenth session's third call (issues 5 and 9).
#   1. Tests: MoeDecodeTests; the fused decode layer class under the default build and under MOE_DECODE_UNROLL=2 with
#      MOE_DECODE_PREFETCH=early (the same bits asked).
#   2. `sweep moe_layer` at T = 1, 2 (all presets), alternating: off (the chain), late (default fused), early, u2 (unroll 2),
#      u2e (unroll 2, early), u4e; twice. Then traces of u2e and u4e at T = 1.
# Stdout: test totals and failures, tables (us), traces. Logs in $OUT/decode13c.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode13c; mkdir -p "$out"
trap 'tar czf "$OUT/decode13c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
R=MoeRuntime.Tests.Runtime
SECONDS=0
bash .gpu/run.sh true

timeout 100 $T -class $K.MoeDecodeTests -class $R.MoeLayerFusedDecodeTests > "$out/tests-decode.log" 2>&1
echo "== tests (decode, default build): exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 10 "$out/tests-decode.log" | head -40; grep -E "Total:" "$out/tests-decode.log" | tail -1
MOE_DECODE_UNROLL=2 MOE_DECODE_PREFETCH=early timeout 100 $T -class $R.MoeLayerFusedDecodeTests > "$out/tests-decode-u2e.log" 2>&1
echo "== tests (fused layer, unroll 2, early prefetch): exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 10 "$out/tests-decode-u2e.log" | head -40; grep -E "Total:" "$out/tests-decode-u2e.log" | tail -1

source tools/gpu/ab-table.sh
F="MOE_DECODE_FUSED=8"
declare -A envs=([off]="MOE_DECODE_FUSED=off" [late]="$F" [early]="$F MOE_DECODE_PREFETCH=early" [u2]="$F MOE_DECODE_UNROLL=2"
  [u2e]="$F MOE_DECODE_UNROLL=2 MOE_DECODE_PREFETCH=early" [u4e]="$F MOE_DECODE_UNROLL=4 MOE_DECODE_PREFETCH=early")
export MOE_SWEEP_TOKENS=1,2
order=(off late early u2 u2e u4e off.2 late.2 early.2 u2.2 u2e.2 u4e.2)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} timeout 60 $B sweep moe_layer --device cuda:0 > "$out/layer-$v.log" 2>&1
  echo "== layer $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
ab_table "$out" layer "${order[@]}"
for v in u2e u4e early; do env ${envs[$v]} MOE_DECODE_TRACE=1 MOE_SWEEP_TOKENS=1 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== trace $v: exit $?"; grep -A 11 "decode trace" "$out/trace-$v.log" | grep -v "^--$"; done
echo "== done in ${SECONDS}s"
