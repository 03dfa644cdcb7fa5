#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the closing check of the wgmma kernel's small tiles (nineteenth session):
# the idle warpgroup in its own K loop without the consumers' barrier, picked per call (up to 64 rows an expert), X boxes
# elsewhere. The wgmma tests; then the layer with the default (auto) and off: DeepSeek-V3 T = 128, 1024 with 4 layers
# cycled, T = 8192; Mixtral-8x7B T = 128, 1024 cycled; then the isolated sweep with balanced routing (whole tiles only),
# off / on / boxes; DeepSeek-V3 T = 128's phases with 1 and 4 layers. Logs in $OUT/small19e.tgz. Ran in the twentieth session (docs/PERFORMANCE.md).
set -uo pipefail
out=/tmp/moe-small19e; mkdir -p "$out"
trap 'tar czf "$OUT/small19e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
# ptxas with -v on the kernel with and without the idle warpgroup (GW_SMALL_TILES 3 and 1): does it serialize the wgmma?
python3 tools/gpu/ptxas_log.py -v src/Kernels/GroupedGemm/grouped_gemm_wgmma.cu -DGW_SMALL_TILES=3 -DGW_EPILOGUE_SMEM=1 \
  src/Kernels/GroupedGemm/grouped_gemm_wgmma.cu -DGW_SMALL_TILES=1 -DGW_EPILOGUE_SMEM=1 > "$out/ptxas.log" 2>&1 &
timeout 90 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests > "$out/wgmma.log" 2>&1
echo "== wgmma tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/wgmma.log" | head -30; grep -E "Total:" "$out/wgmma.log" | tail -1
wait; echo "== ptxas -v (${SECONDS}s)"; cut -c1-240 "$out/ptxas.log" | head -40
grep -q "Failed: 0," "$out/wgmma.log" || { echo "wgmma tests did not pass: no benchmarks"; exit 1; }
lay() { MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=$1 timeout $2 $M bench layer "${@:4}" > "$out/$3-$1.log" 2>&1
        echo "== $3 small tiles $1: exit $? (${SECONDS}s)"; grep -E "^(deepseek|mixtral|qwen3)" "$out/$3-$1.log"; }
lay auto 50 ds-cycled --preset deepseek-v3 --tokens 128,1024 --layers 4
lay auto 25 ds8k --preset deepseek-v3 --tokens 8192
lay auto 20 mixtral --preset mixtral-8x7b --tokens 128,1024 --layers 4
(( SECONDS < 125 )) && lay off 45 ds-cycled --preset deepseek-v3 --tokens 128,1024 --layers 4
# The router GEMM phase at DeepSeek-V3 T = 128 took 60 us with 4 layers cycled (12.4 us alone in the sixth session):
# phases with one layer and with 4 cycled, side by side.
lay auto 40 ds-phases-1 --preset deepseek-v3 --tokens 128 --phases
lay auto 50 ds-phases-4 --preset deepseek-v3 --tokens 128 --layers 4 --phases
grep -hE "^(preset|deepseek)" "$out"/ds-phases-*-auto.log
# Why the idle warpgroup loses where tiles are full: balanced routing (256 rows an expert, whole 128-row tiles, so no tile
# takes the idle path) at Mixtral-8x7B T = 1024 and DeepSeek-V3 T = 8192, off / on / boxes. If "on" is slower here too,
# the cause is the code generation of the full tiles, not the small ones.
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
for v in off on boxes; do
  MOE_GROUPED_GEMM_WGMMA_SMALL_TILES=$v MOE_SWEEP_ROUTING=balanced MOE_SWEEP_MODELS=mixtral,deepseek MOE_SWEEP_TOKENS=1024,8192 \
    timeout 60 $B sweep grouped_gemm --device cuda:0 --json "$out/balanced-$v.json" > "$out/balanced-$v.log" 2>&1
  echo "== balanced routing, small tiles $v: exit $? (${SECONDS}s)"
  grep -E "^\| [a-z].*(gate_up|down)" "$out/balanced-$v.log" | grep -v "read floor" | cut -c1-150
done
echo "== done in ${SECONDS}s"
