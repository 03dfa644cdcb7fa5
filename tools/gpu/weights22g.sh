#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-second session, last call). weights22f found random expert weights
# 17-20% slower than constants on compute-bound calls, ours and torch._grouped_mm's alike. The same comparison at
# DeepSeek-V3 shapes (random experts made on the host: 22 GB), the default order. Logs in $OUT/weights22g.tgz.
set -uo pipefail
out=/tmp/moe-weights22g; mkdir -p "$out"
trap 'tar czf "$OUT/weights22g.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
MOE_SWEEP_WEIGHTS=random MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=1024,8192 timeout 150 $B sweep grouped_gemm --device cuda:0 > "$out/ours-random.log" 2>&1
echo "== ours, random weights: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/ours-random.log" | cut -c1-120
(cd bench/reference && MOE_SWEEP_WEIGHTS=random MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=1024,8192 OUT="$out/torch-random" \
  timeout 90 python3 grouped_gemm.py > "$out/torch-random.log" 2>&1)
echo "== torch, random weights: exit $? (${SECONDS}s)"; grep -E "^\| [a-z]" "$out/torch-random.log" | cut -c1-120
echo "== done in ${SECONDS}s"
