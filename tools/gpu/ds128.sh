#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the next step on DeepSeek-V3 T = 128 (issue 5: 1.34x PyTorch eager
# with 4 layers cycled in the eighteenth session, against 1.5x asked). Where a cycled forward's time goes
# (`moe bench layer --layers 4 --phases`), and the routed experts' kernel at ~4 rows an expert: the default (wgmma)
# against the decode GEMV taking calls of up to 4 rows an expert (`MOE_GROUPED_GEMM_GEMV_RULE=wide`) and 8 rows a pass
# (`MOE_GROUPED_GEMM_GEMV_MAX_ROWS=8`), alternating; then PyTorch's layer, 4 layers cycled. Not run yet.
# Logs in $OUT/ds128.tgz.
set -uo pipefail
out=/tmp/moe-ds128; mkdir -p "$out/torch"
trap 'tar czf "$OUT/ds128.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
declare -A envs=([default]="" [wide]="MOE_GROUPED_GEMM_GEMV_RULE=wide" [rows8]="MOE_GROUPED_GEMM_GEMV_MAX_ROWS=8")
for r in 1 2; do
  for v in default wide rows8; do
    (( SECONDS > 420 )) && break 2
    env ${envs[$v]} timeout 120 $M bench layer --preset deepseek-v3 --tokens 16,128 --layers 4 --phases > "$out/$v-$r.log" 2>&1
    echo "== $v run $r: exit $? (${SECONDS}s)"; grep -E "^(preset|deepseek)" "$out/$v-$r.log"
  done
done
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out/torch" MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=16,128 MOE_SWEEP_LAYERS=4 \
  timeout $((570 - SECONDS)) python3 moe_layer.py > "$out/torch.log" 2>&1)
echo "== torch: exit $? (${SECONDS}s)"; grep -E "^(preset|deepseek)" "$out/torch.log"
echo "== done in ${SECONDS}s"
