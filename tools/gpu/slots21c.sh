#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-first session). trace21b.sh's traces: under the dynamic schedule
# a wave's tiles ran slower as a whole (Mixtral-8x7B T = 1024 down, second wave: 164 us a tile against 137 static), with
# the same items running at the same times; only the SMs differ. The static order puts items 2j and 2j + 1 (often two
# m-tiles of one expert's column tile, sharing its W) on blocks 2j and 2j + 1, which share a TPC; the claims scatter them.
# A/B of where the static order's items run (MOE_GROUPED_GEMM_WGMMA_STATIC_SLOTS): identity, pairs (TPC pairs kept, moved
# as pairs), scramble (every block moved), against dynamic; the producer at 56 registers (the new default). Then the wgmma
# and trace classes on this build, and a trace of static-scramble. Logs in $OUT/slots21c.tgz.
set -uo pipefail
out=/tmp/moe-slots21c; mkdir -p "$out/csv"
trap 'tar czf "$OUT/slots21c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
sweep() { MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 MOE_GROUPED_GEMM_WGMMA_STATIC_SLOTS=$2 MOE_SWEEP_MODELS=mixtral,deepseek,qwen3 MOE_SWEEP_TOKENS=1024,8192 \
            timeout 60 $B sweep grouped_gemm --device cuda:0 --json "$out/sweep-$1-$2-$3.json" > "$out/sweep-$1-$2-$3.log" 2>&1
          echo "== sweep, schedule $1, slots $2 ($3): exit $? (${SECONDS}s)"
          grep -E "^\| [a-z].*(gate_up |down)" "$out/sweep-$1-$2-$3.log" | grep -v "read floor" | cut -c1-100; }
for r in 1 2; do sweep static identity $r; sweep static pairs $r; sweep static scramble $r; sweep dynamic identity $r; done
MOE_GROUPED_GEMM_WGMMA_TRACE=1 MOE_SWEEP_TRACE_DIR="$out/csv" MOE_GROUPED_GEMM_WGMMA_SCHEDULE=static MOE_GROUPED_GEMM_WGMMA_STATIC_SLOTS=scramble \
  MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=1024 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/traced-scramble.log" 2>&1
echo "== traced static scramble: exit $? (${SECONDS}s)"; grep -E "^wgmma trace" "$out/traced-scramble.log" | cut -c1-130
timeout 150 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTraceTests > "$out/wgmma.log" 2>&1
echo "== wgmma + trace tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/wgmma.log" | head -40; grep -E "Total:" "$out/wgmma.log" | tail -1
echo "== done in ${SECONDS}s"
