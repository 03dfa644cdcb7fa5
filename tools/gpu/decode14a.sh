#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the fourteenth session's first call (issues 5 and 9).
# Its MOE_DECODE_STAGE / _UNITS / _BARRIER / _POLL_NS / _WRITTEN / _ROWWISE variants were removed after the runs (all lost:
# docs/PERFORMANCE.md, fourteenth session); unknown variables are ignored, so it now times the default kernel under each name.
#   1. Tests: the fused decode classes and the layer's determinism with the defaults (down stage early, units dealt in
#      turn), then the bits test again under MOE_DECODE_STAGE=off, =late and MOE_DECODE_UNITS=blocked.
#   2. Qwen3-30B-A3B T=1 phase trace (defaults, then stage off).
#   3. `sweep moe_layer` T=1, 4 layers cycled, Qwen3 alternating: off (the chain), old (blocked units, no stage: the
#      thirteenth session's kernel), units (stage off), early (default), late; twice. Then every preset: old / default.
# Stdout: test totals and failures, traces, tables (us). Logs in $OUT/decode14a.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode14a; mkdir -p "$out"
trap 'tar czf "$OUT/decode14a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
R=MoeRuntime.Tests.Runtime
SECONDS=0
bash .gpu/run.sh true
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1

timeout 150 $T -class $K.MoeDecodeTests -class $R.MoeLayerFusedDecodeTests -class $R.MoeLayerDeterminismTests \
  -xml "$out/tests-default.xml" > "$out/tests-default.log" 2>&1
echo "== tests (decode, determinism), defaults: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 12 "$out/tests-default.log" | head -60; grep -E "Total:" "$out/tests-default.log" | tail -1
for v in "MOE_DECODE_STAGE=off" "MOE_DECODE_STAGE=late" "MOE_DECODE_UNITS=blocked"; do
  env $v timeout 90 $T -class $R.MoeLayerFusedDecodeTests > "$out/tests-${v#*=}-${v:11:5}.log" 2>&1
  echo "== fused tests, $v: exit $? (${SECONDS}s)"
  grep -E "\[FAIL\]" -A 12 "$out/tests-${v#*=}-${v:11:5}.log" | head -40; grep -E "Total:" "$out/tests-${v#*=}-${v:11:5}.log" | tail -1
done

export MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1
for v in default off; do
  MOE_DECODE_STAGE=$([ $v = off ] && echo off || echo early) MOE_DECODE_TRACE=1 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== trace, stage $v: exit $? (${SECONDS}s)"; grep -A 11 "decode trace" "$out/trace-$v.log" | grep -v "^--$"
done

source tools/gpu/ab-table.sh
declare -A envs=([off]="MOE_DECODE_FUSED=off" [old]="MOE_DECODE_UNITS=blocked MOE_DECODE_STAGE=off" [units]="MOE_DECODE_STAGE=off"
  [early]="MOE_DECODE_STAGE=early" [late]="MOE_DECODE_STAGE=late")
order=(early off old units late early.2 off.2 old.2 units.2 late.2)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/q4-$v.log" 2>&1
  echo "== qwen3 x4 $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
ab_table "$out" q4 "${order[@]}"

unset MOE_SWEEP_MODELS
for v in early old; do
  env ${envs[$v]} MOE_SWEEP_LAYERS=4 timeout 120 $B sweep moe_layer --device cuda:0 > "$out/all4-$v.log" 2>&1
  echo "== all x4 $v: exit $? (${SECONDS}s)"
done
ab_table "$out" all4 early old
echo "== done in ${SECONDS}s"
