#!/usr/bin/env bash
# GPU machine, 2 x H200, after tools/gpu/pack.sh: the LL trace (x2-11c) put 1.2 us between a two-shot call's wait and
# its first store (one-shot: 0.64) and 0.44 us between a line's arrival and the push (one-shot's store: 0.16). Less code
# on that path (unroll 1: 50 registers against 122) and the region table through the read-only cache, A/B, alternating:
#   base, u1 (MOE_LL_UNROLL=1), nc (MOE_LL_NC_PEERS=1), u1nc, then again; the traced u1 once. NCCL in the first and last.
# Logs in $OUT/x2-11d.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-x2-11d; mkdir -p "$out"
trap 'tar czf "$OUT/x2-11d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
declare -A envs=([base]="X=1" [u1]="MOE_LL_UNROLL=1" [nc]="MOE_LL_NC_PEERS=1" [u1nc]="MOE_LL_UNROLL=1 MOE_LL_NC_PEERS=1" [u1trace]="MOE_LL_UNROLL=1 MOE_LL_TRACE=1")
order=(base u1 nc u1nc base.2 u1.2 nc.2 u1nc.2 u1trace base.3)
for v in "${order[@]}"; do
  key=${v%.*}
  algos=twoshot,oneshot; [ "$v" = base ] || [ "$v" = base.3 ] && algos=twoshot,oneshot,nccl
  env ${envs[$key]} timeout 60 $M bench allreduce --devices cuda:0,cuda:1 --algo $algos --dtype bf16 --min 1K --max 1M --factor 4 \
    --json "$out/ar-$v.json" > "$out/ar-$v.log" 2>&1
  echo "== $v (${envs[$key]}): exit $? (${SECONDS}s)"
done
python3 tools/gpu/ar-ab-table.py "$out" "${order[@]}"
grep -E "^ +1024 |ll trace" "$out/ar-u1trace.log" | head -6
echo "== done (${SECONDS}s)"
