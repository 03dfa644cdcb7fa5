#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-first session, last call). The DeepSeek-V3 T = 8192 layer's
# gate_up took 7.66 ms under the dynamic order against 9.77 under steal (17.3 ms layer static), more than any isolated call
# of that shape (4.9-6.6 ms, uniform or balanced routing). Is it the routing? The layer's router counts
# (MOE_BENCH_LAYER_COUNTS), then the isolated sweep on them (MOE_SWEEP_COUNTS), static and dynamic, and traced. Logs and
# CSVs in $OUT/counts21h.tgz. The first run gave the layer 40 s and timed out making its weights on a fresh machine.
set -uo pipefail
out=/tmp/moe-counts21h; mkdir -p "$out/csv/static" "$out/csv/dynamic"
trap 'tar czf "$OUT/counts21h.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
MOE_BENCH_LAYER_COUNTS="$out/counts" timeout 75 $M bench layer --preset deepseek-v3 --tokens 8192 > "$out/layer.log" 2>&1
echo "== layer: exit $? (${SECONDS}s)"; grep -hE "^deepseek" "$out/layer.log"; ls "$out/counts"
f="$out/counts/deepseek-v3-T8192-counts.txt"
python3 -c "import sys; c=[int(x) for x in open('$f').read().split()]; s=sorted(c); print('experts', len(c), 'rows', sum(c), 'empty', c.count(0), 'min/median/max', s[0], s[len(s)//2], s[-1], '<=64:', sum(1 for x in c if 0<x<=64))"
sweep() { MOE_SWEEP_COUNTS="$f" MOE_GROUPED_GEMM_WGMMA_SCHEDULE=$1 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=8192 "${@:3}" \
            timeout 40 $B sweep grouped_gemm --device cuda:0 > "$out/sweep-$1-$2.log" 2>&1
          echo "== sweep on the layer's counts, $1 ($2): exit $? (${SECONDS}s)"; grep -E "^wgmma trace|^\| [a-z].*(gate_up|down)" "$out/sweep-$1-$2.log" | grep -v "read floor" | cut -c1-150; }
sweep static 1; sweep dynamic 1
for s in static dynamic; do sweep $s traced env MOE_GROUPED_GEMM_WGMMA_TRACE=1 MOE_SWEEP_TRACE_DIR="$out/csv/$s"; done
echo "== done in ${SECONDS}s"
