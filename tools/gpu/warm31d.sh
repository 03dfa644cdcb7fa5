#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-first session). prefix31c.sh: DeepSeek-V3 T = 128's expert GEMMs
# alone, graph-replayed, take gate_up 1966-1968 / down 991-993 us with one layer's weights, 1988-1996 / 988-991 on the
# first of 4 layers, 2047-2049 / 1029-1030 cycling the 4 layers; the whole layer 3052-3055 against 3171-3173 us. Suspect:
# address translation of W's pages at each item's first copy. Here the GW_WARM_NEXT build (MOE_GROUPED_GEMM_WGMMA_WARM=1:
# each item's start asks L2 for both ends of the W boxes one wave ahead) against the default, alternating processes,
# 4 layers cycled; the shared experts' GEMMs on other kernels (one layer); the traced default build cycling 4 layers (the items' gaps); the wgmma classes under the warm build.
# Logs and CSVs in $OUT/warm31d.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-warm31d; mkdir -p "$out/csv"
trap 'tar czf "$OUT/warm31d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
K=MoeRuntime.Tests.Kernels
SECONDS=0
for r in 1 2; do for w in 0 1; do
  MOE_GROUPED_GEMM_WGMMA_WARM=$w MOE_SWEEP_PREFIXES=1 MOE_SWEEP_LAYERS=4 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=128 \
    timeout 120 $B sweep moe_layer --device cuda:0 > "$out/warm$w-$r.log" 2>&1
  echo "== warm=$w run $r: exit $? (${SECONDS}s)"; grep -E "^\| deepseek" "$out/warm$w-$r.log" | sed -E 's/ +\|/ |/g; s/T=128 H=7168 I=2048 E=256 k=8 //' | cut -c1-150
done; done
# The shared experts add 58-80 us to the whole forward (prefix31c.sh): their dense T = 128 GEMMs on other kernels, one layer.
for v in default skinny=wide skinny=off,fewtiles=mma fewtiles=mma skinny=off; do
  env=(); case $v in *skinny=off*) env+=(MOE_GROUPED_GEMM_SKINNY=off);; *skinny=wide*) env+=(MOE_GROUPED_GEMM_SKINNY=wide);; esac
  case $v in *fewtiles=mma*) env+=(MOE_GROUPED_GEMM_FEW_TILES=mma);; esac
  env "${env[@]}" MOE_SWEEP_PREFIXES=1 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=128 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/shared-$v.log" 2>&1
  echo "== shared experts, $v: exit $? (${SECONDS}s)"; grep -E "^\| deepseek.*(layer|routing|whole)" "$out/shared-$v.log" | sed -E 's/ +\|/ |/g; s/T=128 H=7168 I=2048 E=256 k=8 //' | cut -c1-150
done
MOE_GROUPED_GEMM_WGMMA_TRACE=1 MOE_SWEEP_TRACE_DIR="$out/csv" MOE_SWEEP_PREFIXES=1 MOE_SWEEP_LAYERS=4 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=128 \
  timeout 120 $B sweep moe_layer --device cuda:0 > "$out/traced.log" 2>&1
echo "== traced, 4 layers: exit $? (${SECONDS}s)"; grep -E "^wgmma trace" "$out/traced.log" | cut -c1-150
MOE_GROUPED_GEMM_WGMMA_WARM=1 timeout 150 $T -class $K.GroupedGemmWgmmaTests > "$out/tests-warm.log" 2>&1
echo "== wgmma tests, warm build: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests-warm.log" | head -30; grep -E "Total:" "$out/tests-warm.log" | tail -1
echo "== done in ${SECONDS}s"
