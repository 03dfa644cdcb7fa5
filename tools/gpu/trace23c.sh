#!/usr/bin/env bash
# (The switches this script compares were removed after the run; the build it ran is commit 6be9445.)
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-third session, issue 9): where Qwen3-30B-A3B T = 1 gate_up's time goes
# in the 1-row entry as it is, traced (MOE_GROUPED_GEMM_GEMV_TRACE=1: one eager call after each row's replays, every block's
# %globaltimer stamps), twice; then the two walks that lost in walk23a, traced once each (min3u2: 2 segments in flight
# at 3 blocks an SM; row4: one W row at a time). Logs in $OUT/trace23c.tgz.
set -uo pipefail
out=/tmp/moe-trace23c; mkdir -p "$out"
trap 'tar czf "$OUT/trace23c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
declare -A envs=([def]="" [min3u2]="MOE_GROUPED_GEMM_GEMV1_MIN_BLOCKS=3 MOE_GROUPED_GEMM_GEMV1_UNROLL=2"
                 [row4]="MOE_GROUPED_GEMM_GEMV1_ROW_WALK=4")
for v in def.1 min3u2.1 row4.1 def.2; do
  key=${v%.*}
  env ${envs[$key]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/qwen-$v.log" 2>&1
  echo "== qwen3 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
  grep -E "^\| qwen3.*gate_up T=1" "$out/qwen-$v.log" | cut -c1-150
  grep -A9 -E "gemv trace .*gate_up" "$out/qwen-$v.log" | grep -v silu | head -24
done
echo "== done in ${SECONDS}s"
