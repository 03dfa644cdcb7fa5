#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the fourteenth session's second call (issues 5 and 9).
# Its MOE_DECODE_STAGE / _UNITS / _BARRIER / _POLL_NS / _WRITTEN / _ROWWISE variants were removed after the runs (all lost:
# docs/PERFORMANCE.md, fourteenth session); unknown variables are ignored, so it now times the default kernel under each name.
#   1. Tests: launches past 48 KB of shared memory, the fused decode classes with the defaults, then the bits tests
#      under the other unit orders, stages and barriers.
#   2. Qwen3-30B-A3B T=1 phase traces.
#   3. `sweep moe_layer` Qwen3 T=1, 4 layers cycled, alternating the variants below, twice; then every preset, old / default.
# Stdout: test totals and failures, traces, tables (us). Logs in $OUT/decode14b.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode14b; mkdir -p "$out"
trap 'tar czf "$OUT/decode14b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
R=MoeRuntime.Tests.Runtime
SECONDS=0
bash .gpu/run.sh true

timeout 120 $T -class MoeRuntime.Tests.Accelerators.KernelLaunchTests -class $K.MoeDecodeTests -class $R.MoeLayerFusedDecodeTests \
  -xml "$out/tests-default.xml" > "$out/tests-default.log" 2>&1
echo "== tests (launch, decode), defaults: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 12 "$out/tests-default.log" | head -60; grep -E "Total:" "$out/tests-default.log" | tail -1
i=0
for v in "MOE_DECODE_UNITS=spread MOE_DECODE_BARRIER=release MOE_DECODE_POLL_NS=100" "MOE_DECODE_UNITS=interleaved MOE_DECODE_STAGE=late" \
         "MOE_DECODE_STAGE=off MOE_DECODE_POLL_NS=50"; do
  i=$((i + 1))
  env $v timeout 60 $T -class $R.MoeLayerFusedDecodeTests > "$out/tests-v$i.log" 2>&1
  echo "== fused tests, $v: exit $? (${SECONDS}s)"
  grep -E "\[FAIL\]" -A 12 "$out/tests-v$i.log" | head -40; grep -E "Total:" "$out/tests-v$i.log" | tail -1
done

export MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1
declare -A envs=([old]="MOE_DECODE_STAGE=off" [early]="MOE_DECODE_STAGE=early" [late]="MOE_DECODE_STAGE=late"
  [spread]="MOE_DECODE_UNITS=spread MOE_DECODE_STAGE=off" [spreadE]="MOE_DECODE_UNITS=spread"
  [rel]="MOE_DECODE_BARRIER=release" [relP]="MOE_DECODE_BARRIER=release MOE_DECODE_POLL_NS=100" [poll]="MOE_DECODE_POLL_NS=50")
for v in early spreadE relP; do
  env ${envs[$v]} MOE_DECODE_TRACE=1 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== trace $v (${envs[$v]}): exit $? (${SECONDS}s)"; grep -A 12 "decode trace" "$out/trace-$v.log" | grep -v "^--$"
done

source tools/gpu/ab-table.sh
order=(early old late spread spreadE rel relP poll early.2 old.2 late.2 spread.2 spreadE.2 rel.2 relP.2 poll.2)
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
