#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the fourteenth session's fourth call (issues 5 and 9).
# Its MOE_DECODE_STAGE / _UNITS / _BARRIER / _POLL_NS / _WRITTEN / _ROWWISE variants were removed after the runs (all lost:
# docs/PERFORMANCE.md, fourteenth session); unknown variables are ignored, so it now times the default kernel under each name.
#   1. Tests: the fused decode bits with lanes streaming W a row at a time (MOE_DECODE_ROWWISE=1, 2; 1 with unroll 2).
#   2. Qwen3-30B-A3B T=1 phase trace, rowwise 2.
#   3. `sweep moe_layer` Qwen3 T=1, 4 layers cycled: old (defaults), r1, r2, r1u2; twice. Then every preset: r2 / old.
# Stdout: test totals and failures, traces, tables (us). Logs in $OUT/decode14d.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-decode14d; mkdir -p "$out"
trap 'tar czf "$OUT/decode14d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
R=MoeRuntime.Tests.Runtime
SECONDS=0
bash .gpu/run.sh true
i=0
for v in "MOE_DECODE_ROWWISE=2" "MOE_DECODE_ROWWISE=1 MOE_DECODE_UNROLL=2"; do
  i=$((i + 1))
  env $v timeout 60 $T -class $R.MoeLayerFusedDecodeTests > "$out/tests-v$i.log" 2>&1
  echo "== fused tests, $v: exit $? (${SECONDS}s)"
  grep -E "\[FAIL\]" -A 12 "$out/tests-v$i.log" | head -40; grep -E "Total:" "$out/tests-v$i.log" | tail -1
done
export MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1
declare -A envs=([old]="MOE_DECODE_ROWWISE=0" [r1]="MOE_DECODE_ROWWISE=1" [r2]="MOE_DECODE_ROWWISE=2"
  [r1u2]="MOE_DECODE_ROWWISE=1 MOE_DECODE_UNROLL=2")
for v in r2; do
  env ${envs[$v]} MOE_DECODE_TRACE=1 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== trace $v (${envs[$v]}): exit $? (${SECONDS}s)"; grep -A 12 "decode trace" "$out/trace-$v.log" | grep -v "^--$"
done
source tools/gpu/ab-table.sh
order=(old r1 r2 r1u2 old.2 r1.2 r2.2 r1u2.2)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_LAYERS=4 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/q4-$v.log" 2>&1
  echo "== qwen3 x4 $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
ab_table "$out" q4 "${order[@]}"
unset MOE_SWEEP_MODELS
for v in r2 old; do
  env ${envs[$v]} MOE_SWEEP_LAYERS=4 timeout 120 $B sweep moe_layer --device cuda:0 > "$out/all4-$v.log" 2>&1
  echo "== all x4 $v: exit $? (${SECONDS}s)"
done
ab_table "$out" all4 r2 old
echo "== done in ${SECONDS}s"
