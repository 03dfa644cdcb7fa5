#!/usr/bin/env bash
# GPU machine, one H200, fresh, after tools/gpu/pack.sh (twenty-ninth session, issue 5). final26c.sh again on main
# (skinny, routing and grouped GEMM built one dtype a compile): `moe bench layer` for the three presets at T = 1, 16,
# 128, 1024, 8192 with 4 layers cycled (each preset's compile lines kept: a bf16 user's first run), then
# bench/reference/moe_layer.py at the same counts in the same call, then the skinny test classes if time is left.
# Logs in $OUT/layers29f.tgz.
set -uo pipefail
out=/tmp/moe-layers29f; mkdir -p "$out"
trap 'tar czf "$OUT/layers29f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
lay() { local start=$SECONDS
        timeout $2 $M bench layer --preset $1 --tokens 1,16,128,1024,8192 --layers 4 > "$out/$1.log" 2> "$out/$1.err"
        echo "== $1: exit $? ($((SECONDS - start))s)"; grep -E "^moe: compil" "$out/$1.err"; grep -hE "^(preset|deepseek|mixtral|qwen3)" "$out/$1.log"; }
lay qwen3-30b-a3b 100
lay mixtral-8x7b 120
lay deepseek-v3 150
left=$((470 - SECONDS)); [ $left -gt 60 ] || { echo "== torch skipped (${SECONDS}s)"; exit 0; }
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out/torch" MOE_SWEEP_LAYERS=4 timeout $left python3 moe_layer.py > "$out/torch.log" 2>&1)
echo "== torch: exit $? (${SECONDS}s)"; grep -vE "^#" "$out/torch.log" | cut -c1-220 | tail -20
left=$((520 - SECONDS))
if [ $left -gt 30 ]; then
  timeout $left $T -class $K.GroupedGemmSkinnyTests -class $K.GroupedGemmSkinnyFoldTests -class $K.OneDtypeBuildTests > "$out/skinny-tests.log" 2>&1
  echo "== skinny classes: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 14 "$out/skinny-tests.log" | head -40; grep -E "Total:" "$out/skinny-tests.log" | tail -1
fi
echo "== done in ${SECONDS}s"
