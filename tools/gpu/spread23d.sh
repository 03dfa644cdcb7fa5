#!/usr/bin/env bash
# (The switches this script compares were removed after the run; the build it ran is commit 6be9445.)
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-third session, issue 9): trace23c showed Qwen3-30B-A3B T = 1 gate_up's
# warps ending over ~4.5 us (loop end 10.8 / 13.3 / 15.5 us min / median / max) with the same bytes each. If a warp's
# 16 KB run of W rows sits on few DRAM channels, spreading its rows apart evens them. `sweep grouped_gemm` Qwen3 T = 1
# alternating, three runs each: defaults, spread (MOE_GROUPED_GEMM_GEMV_SPREAD=on); then one traced run of each.
# Logs in $OUT/spread23d.tgz.
set -uo pipefail
out=/tmp/moe-spread23d; mkdir -p "$out"
trap 'tar czf "$OUT/spread23d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [spread]="MOE_GROUPED_GEMM_GEMV_SPREAD=on")
order=(def.1 spread.1 def.2 spread.2 def.3 spread.3)
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/qwen-$v.log" 2>&1
  echo "== qwen3 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" qwen "${order[@]}"
for v in spread def; do
  env ${envs[$v]} MOE_GROUPED_GEMM_GEMV_TRACE=1 MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/trace-$v.log" 2>&1
  echo "== traced $v: exit $? (${SECONDS}s)"
  grep -A8 -E "gemv trace .*(gate_up|down)" "$out/trace-$v.log" | head -30
done
echo "== done in ${SECONDS}s"
