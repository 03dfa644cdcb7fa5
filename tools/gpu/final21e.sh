#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-first session, closing call). steal21d.sh: the steal order ties
# the static one on isolated calls and on the DeepSeek-V3 T = 8192 layer (17.1-17.2 ms), where dynamic takes 14.9. Where
# does dynamic gain in that layer: the layer's phases under each order, and the isolated sweep with balanced routing (256
# rows an expert, as a random router gives). Then the whole suite but the wgmma and trace classes (steal21d.sh ran those
# on this build). Logs in $OUT/final21e.tgz.
set -uo pipefail
out=/tmp/moe-final21e; mkdir -p "$out"
trap 'tar czf "$OUT/final21e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
for s in dynamic steal; do
  MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$s timeout 45 $M bench layer --preset deepseek-v3 --tokens 8192 --phases > "$out/ds8k-phases-$s.log" 2>&1
  echo "== ds8k phases, schedule $s: exit $? (${SECONDS}s)"; grep -vE "^\s*$" "$out/ds8k-phases-$s.log" | tail -22 | cut -c1-150
done
for s in static dynamic steal; do
  MOE_SWEEP_ROUTING=balanced MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$s MOE_SWEEP_MODELS=mixtral,deepseek MOE_SWEEP_TOKENS=1024,8192 \
    timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/balanced-$s.log" 2>&1
  echo "== balanced sweep, schedule $s: exit $? (${SECONDS}s)"; grep -E "^\| [a-z].*(gate_up |down)" "$out/balanced-$s.log" | grep -v "read floor" | cut -c1-100
done
left=$((560 - SECONDS))
timeout $left $T -class- MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -class- MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTraceTests \
  -ctrf "$out/ctrf.json" > "$out/suite.log" 2>&1
echo "== suite (limit ${left}s): exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/suite.log" | head -60; grep -E "Total:" "$out/suite.log" | tail -1
echo "== done in ${SECONDS}s"
