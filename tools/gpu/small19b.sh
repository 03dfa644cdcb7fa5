#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the wgmma kernel's small tiles, second look (nineteenth session).
# small19a.sh had the layer faster with them at DeepSeek-V3 T = 128 / 1024 (11% / 9%), Mixtral-8x7B and Qwen3-30B-A3B T = 128
# (3%), Qwen3 T = 1024 (2%), but Mixtral T = 1024 slower (1.74 / 1.78 against 1.64 / 1.70 ms). Here: the bit-for-bit
# tests of every mode; the isolated grouped GEMM sweep (T = 128, 1024, every preset), off and on alternating; Mixtral's
# layer at T = 1024 in each mode (off, on, X boxes only, idle warpgroup only), alternating; then torch._grouped_mm at the
# same points. Logs in $OUT/small19b.tgz.
set -uo pipefail
out=/tmp/moe-small19b; mkdir -p "$out/torch"
trap 'tar czf "$OUT/small19b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,clocks.mem --format=csv,noheader
timeout 100 $T -method "*SmallTiles*" > "$out/tests.log" 2>&1
echo "== small-tile tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -30; grep -E "Total:" "$out/tests.log" | tail -1
for r in 1 2; do
  for v in off on; do
    (( SECONDS > 260 )) && break 2
    MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=$v MOE_SWEEP_TOKENS=128,1024 timeout 80 $B sweep grouped_gemm --device cuda:0 --json "$out/gg-$v-$r.json" > "$out/gg-$v-$r.log" 2>&1
    echo "== grouped GEMM sweep, small tiles $v, run $r: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/gg-$v-$r.log" | cut -c1-160
  done
done
for r in 1 2; do
  for v in off on boxes idle; do
    (( SECONDS > 420 )) && break 2
    MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=$v timeout 40 $M bench layer --preset mixtral-8x7b --tokens 1024 --layers 4 > "$out/mixtral-$v-$r.log" 2>&1
    echo "== mixtral T=1024 small tiles $v, run $r: exit $? (${SECONDS}s)"; grep -E "^mixtral" "$out/mixtral-$v-$r.log"
  done
done
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out/torch" MOE_SWEEP_TOKENS=128,1024 timeout $((560 - SECONDS)) python3 grouped_gemm.py > "$out/torch.log" 2>&1)
echo "== torch._grouped_mm: exit $? (${SECONDS}s)"; grep -vE "^\s*$" "$out/torch.log" | cut -c1-160 | tail -24
echo "== done in ${SECONDS}s"
