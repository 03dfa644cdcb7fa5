#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the wgmma kernel's small tiles (nineteenth session, issue 5: DeepSeek-V3
# T = 128 at 1.34x PyTorch eager with layers cycled, against 1.5x asked). First the wgmma tests (the new bit-for-bit test of
# small tiles on and off among them), then `moe bench layer` with 4 layers cycled, MOE_GROUPED_GEMM_WGMMA_SMALL_TILES on
# and off alternating, each preset at T = 128 and 1024; DeepSeek-V3's phases both ways; then PyTorch's layer at the same
# points. Logs in $OUT/small19a.tgz.
set -uo pipefail
out=/tmp/moe-small19a; mkdir -p "$out/torch"
trap 'tar czf "$OUT/small19a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem --format=csv,noheader
timeout 150 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests > "$out/wgmma.log" 2>&1
echo "== wgmma tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/wgmma.log" | head -40; grep -E "Total:" "$out/wgmma.log" | tail -1
grep -q "Failed: 0," "$out/wgmma.log" || { echo "wgmma tests did not pass: no benchmarks"; exit 1; }
row() { grep -E "^(preset|deepseek|mixtral|qwen3)|^\| *[a-z]" "$1" | cut -c1-220; }
for r in 1 2; do
  for p in deepseek-v3 mixtral-8x7b qwen3-30b-a3b; do
    for v in on off; do
      (( SECONDS > 360 )) && break 3
      MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=$v timeout 90 $M bench layer --preset $p --tokens 128,1024 --layers 4 > "$out/$p-$v-$r.log" 2>&1
      echo "== $p small tiles $v, run $r: exit $? (${SECONDS}s)"; row "$out/$p-$v-$r.log"
    done
  done
done
for v in on off; do
  (( SECONDS > 420 )) && break
  MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=$v timeout 60 $M bench layer --preset deepseek-v3 --tokens 128 --layers 4 --phases > "$out/phases-$v.log" 2>&1
  echo "== deepseek-v3 phases, small tiles $v: exit $? (${SECONDS}s)"; cat "$out/phases-$v.log" | cut -c1-200 | tail -30
done
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out/torch" MOE_SWEEP_TOKENS=128,1024 MOE_SWEEP_LAYERS=4 \
  timeout $((575 - SECONDS)) python3 moe_layer.py > "$out/torch.log" 2>&1)
echo "== torch: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]|^\| preset" "$out/torch.log" | cut -c1-200
echo "== done in ${SECONDS}s"
