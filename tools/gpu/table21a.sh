#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh: the twentieth session's prepared experiment (not run yet). The dynamic
# schedule lost 5-9% on some isolated calls (Mixtral-8x7B T = 1024 gate_up, DeepSeek-V3 T = 8192 down). Suspects: the
# claim's round trip and the serial walk over the offsets (eight dependent round trips at E = 256) between a tile's last
# K step and the next tile's first copy. A/B: the tile table in shared memory (MOE_GROUPED_GEMM_WGMMA_TILE_TABLE=1), the
# claim 4 K steps early (MOE_GROUPED_GEMM_WGMMA_CLAIM_AHEAD=4), each under both schedules. ptxas -v first (the producer has
# 40 registers). Logs in $OUT/table21a.tgz.
set -uo pipefail
out=/tmp/moe-table21a; mkdir -p "$out"
trap 'tar czf "$OUT/table21a.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
python3 tools/gpu/ptxas_log.py -v src/Kernels/GroupedGemm/grouped_gemm_wgmma.cu -DGW_SMALL_TILES=3 -DGW_EPILOGUE_SMEM=1 \
  src/Kernels/GroupedGemm/grouped_gemm_wgmma.cu -DGW_SMALL_TILES=3 -DGW_EPILOGUE_SMEM=1 -DGW_TILE_TABLE=1 -DGW_CLAIM_AHEAD=4 > "$out/ptxas.log" 2>&1 &
timeout 120 $T -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests > "$out/wgmma.log" 2>&1
echo "== wgmma tests: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 8 "$out/wgmma.log" | head -40; grep -E "Total:" "$out/wgmma.log" | tail -1
wait; echo "== ptxas -v"; grep -E "^==|Used|spill" "$out/ptxas.log" | sort | uniq -c | head -20
grep -q "Failed: 0," "$out/wgmma.log" || { echo "wgmma tests did not pass: no benchmarks"; exit 1; }
sweep() { MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 MOE_GROUPED_GEMM_WGMMA_TILE_TABLE=$2 MOE_GROUPED_GEMM_WGMMA_CLAIM_AHEAD=$3 \
            MOE_SWEEP_MODELS=mixtral,deepseek,qwen3 MOE_SWEEP_TOKENS=1024,8192 \
            timeout 60 $B sweep grouped_gemm --device cuda:0 --json "$out/sweep-$1-t$2-a$3-$4.json" > "$out/sweep-$1-t$2-a$3-$4.log" 2>&1
          echo "== sweep, schedule $1, table $2, claim ahead $3 ($4): exit $? (${SECONDS}s)"
          grep -E "^\| [a-z].*(gate_up |down)" "$out/sweep-$1-t$2-a$3-$4.log" | grep -v "read floor" | cut -c1-120; }
left() { [ $SECONDS -lt $1 ] || { echo "== skipped past ${SECONDS}s: $2"; false; }; }
sweep static 0 0 1; sweep dynamic 0 0 1; sweep static 1 0 1; sweep dynamic 1 0 1; sweep dynamic 1 4 1; sweep dynamic 0 4 1
left 330 "second sweeps" && { sweep dynamic 0 0 2; sweep dynamic 1 0 2; sweep dynamic 1 4 2; }
lay() { MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 MOE_GROUPED_GEMM_WGMMA_TILE_TABLE=$2 timeout $3 $M bench layer "${@:5}" > "$out/$4-$1-t$2.log" 2>&1
        echo "== $4 schedule $1 table $2: exit $? (${SECONDS}s)"; grep -hE "^(deepseek|mixtral|qwen3)" "$out/$4-$1-t$2.log"; }
for v in "dynamic 1" "dynamic 0"; do left 500 "layer $v" && lay $v 48 ds8k --preset deepseek-v3 --tokens 8192; done
echo "== done in ${SECONDS}s"
