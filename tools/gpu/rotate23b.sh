#!/usr/bin/env bash
# (The switches this script compares were removed after the run; the build it ran is commit 6be9445.)
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-third session, issue 9): Qwen3-30B-A3B T = 1 `sweep grouped_gemm`
# alternating, two runs each: defaults; rot (MOE_GROUPED_GEMM_GEMV_ROTATE=on: each warp group starts its K walk at its own
# segment); rotu2 (that, with the 1-row entry bound at 3 blocks an SM and 2 segments in flight); tile (the existing
# MOE_GROUPED_GEMM_GEMV_ORDER=tile). Sweeps only. Logs in $OUT/rotate23b.tgz.
set -uo pipefail
out=/tmp/moe-rotate23b; mkdir -p "$out"
trap 'tar czf "$OUT/rotate23b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
source tools/gpu/ab-table.sh
declare -A envs=([def]="" [rot]="MOE_GROUPED_GEMM_GEMV_ROTATE=on"
                 [rotu2]="MOE_GROUPED_GEMM_GEMV_ROTATE=on MOE_GROUPED_GEMM_GEMV1_MIN_BLOCKS=3 MOE_GROUPED_GEMM_GEMV1_UNROLL=2"
                 [tile]="MOE_GROUPED_GEMM_GEMV_ORDER=tile")
names=(def rot rotu2 tile)
order=(); for r in 1 2; do for n in "${names[@]}"; do order+=("$n.$r"); done; done
for v in "${order[@]}"; do
  key=${v%.*}
  env ${envs[$key]} MOE_SWEEP_MODELS=qwen3 MOE_SWEEP_TOKENS=1 timeout 45 $B sweep grouped_gemm --device cuda:0 > "$out/qwen-$v.log" 2>&1
  echo "== qwen3 $v (${envs[$key]:-defaults}): exit $? (${SECONDS}s)"
done
ab_table "$out" qwen "${order[@]}"
echo "== done in ${SECONDS}s"
