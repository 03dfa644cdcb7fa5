#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-first session). table21a.sh ruled out the claim's round trip and
# the walk over the offsets as the cause of the dynamic schedule's losses on isolated calls (Mixtral-8x7B T = 1024
# gate_up, DeepSeek-V3 T = 8192 down), and showed the default build spilling 16 bytes. Here:
# - ptxas -v of the default build, the producer at 56 and 24 registers (GW_PRODUCER_REGS), the traced build;
# - the wgmma and trace test classes;
# - the traced build (MOE_GROUPED_GEMM_WGMMA_TRACE=1): every work item's stamps under both schedules, as CSVs;
# - the producer's registers 40 / 56 under both schedules, alternating.
# Logs and CSVs in $OUT/trace21b.tgz.
set -uo pipefail
out=/tmp/moe-trace21b; mkdir -p "$out/csv"
trap 'tar czf "$OUT/trace21b.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
W=src/Kernels/GroupedGemm/grouped_gemm_wgmma.cu; D="-DGW_SMALL_TILES=3 -DGW_EPILOGUE_SMEM=1"
python3 tools/gpu/ptxas_log.py -v $W $D $W $D -DGW_PRODUCER_REGS=56 $W $D -DGW_PRODUCER_REGS=24 $W $D -DGW_TRACE > "$out/ptxas.log" 2>&1 &
timeout 150 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTraceTests > "$out/wgmma.log" 2>&1
echo "== wgmma + trace tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/wgmma.log" | head -40; grep -E "Total:" "$out/wgmma.log" | tail -1
wait; echo "== ptxas -v"; grep -E "^==|spill stores|Used" "$out/ptxas.log" | cut -c1-150 | uniq -c
grep -q "Failed: 0," "$out/wgmma.log" || { echo "tests did not pass: no benchmarks"; exit 1; }
for s in static dynamic; do
  mkdir -p "$out/csv/$s"
  MOE_GROUPED_GEMM_WGMMA_TRACE=1 MOE_SWEEP_TRACE_DIR="$out/csv/$s" MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$s MOE_SWEEP_MODELS=mixtral,deepseek \
    MOE_SWEEP_TOKENS=1024,8192 timeout 90 $B sweep grouped_gemm --device cuda:0 > "$out/traced-$s.log" 2>&1
  echo "== traced sweep, $s: exit $? (${SECONDS}s)"; grep -E "^wgmma trace|^\| [a-z].*(gate_up |down)" "$out/traced-$s.log" | grep -v "read floor" | cut -c1-160
done
sweep() { MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 MOE_GROUPED_GEMM_WGMMA_PRODUCER_REGS=$2 MOE_SWEEP_MODELS=mixtral,deepseek,qwen3 MOE_SWEEP_TOKENS=1024,8192 \
            timeout 60 $B sweep grouped_gemm --device cuda:0 --json "$out/sweep-$1-p$2-$3.json" > "$out/sweep-$1-p$2-$3.log" 2>&1
          echo "== sweep, schedule $1, producer $2 ($3): exit $? (${SECONDS}s)"
          grep -E "^\| [a-z].*(gate_up |down)" "$out/sweep-$1-p$2-$3.log" | grep -v "read floor" | cut -c1-100; }
for r in 1 2; do sweep static 40 $r; sweep dynamic 40 $r; sweep static 56 $r; sweep dynamic 56 $r; done
echo "== done in ${SECONDS}s"
