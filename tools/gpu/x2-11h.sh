#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: two-shot at 1 MB stays at 0.73x NCCL. A/B, alternating, 512 KB .. 2 MB
# (two-shot on LL up to 2 MB here): the grid's cap at 128 blocks (MOE_LL_MAX_BLOCKS; default 64), the unroll-1 build at
# 1 MB (MOE_LL_SMALL_MAX_BYTES=1048576), both. NCCL in the base runs. Logs in $OUT/x2-11h.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0 MOE_LL_TWOSHOT_MAX_BYTES=2097152
out=/tmp/moe-x2-11h; mkdir -p "$out"
trap 'tar czf "$OUT/x2-11h.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
declare -A envs=([base]="X=1" [mb128]="MOE_LL_MAX_BLOCKS=128" [small1m]="MOE_LL_SMALL_MAX_BYTES=1048576" [both]="MOE_LL_MAX_BLOCKS=128 MOE_LL_SMALL_MAX_BYTES=1048576")
order=(base mb128 small1m both base.2 mb128.2 small1m.2 both.2)
for v in "${order[@]}"; do
  key=${v%.*}
  algos=twoshot,oneshot; [ "$key" = base ] && algos=twoshot,oneshot,nccl
  env ${envs[$key]} timeout 40 $M bench allreduce --devices cuda:0,cuda:1 --algo $algos --dtype bf16 --min 512K --max 2M --factor 2 \
    --json "$out/ar-$v.json" > "$out/ar-$v.log" 2>&1
  echo "== $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
python3 tools/gpu/ar-ab-table.py "$out" "${order[@]}"
echo "== done (${SECONDS}s)"
