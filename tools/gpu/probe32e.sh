#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-second session). floor32d.sh: at DeepSeek-V3 T = 16 the layer
# (1.62 ms, 4 layers cycled) is 65-78 us from 1.5x PyTorch's graph; its down GEMV streams 4.03 TB/s where gate_up streams
# 4.27 and the wgmma kernel at T = 128 4.40, and the shared experts on their stream add 49 us (their bytes take 20).
# Here, one layer, T = 16: the layer with the shared experts on their stream and on the forward's (MOE_LAYER_SHARED_STREAM=0),
# alternating processes; then the down GEMV alone on the layer's routing under its knobs (K share a warp, segments in
# flight, W rows a warp group), one process each. Logs in $OUT/probe32e.tgz.
# Its T = 16 stream A/B did not hold with 4 layers cycled (final32f.sh), and the rule it led to was reverted (32f7430).
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-probe32e; mkdir -p "$out/counts"
trap 'tar czf "$OUT/probe32e.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
for r in 1 2; do for s in 1 0; do
  MOE_LAYER_SHARED_STREAM=$s MOE_SWEEP_PREFIXES=1 MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=16 timeout 60 $B sweep moe_layer --device cuda:0 > "$out/layer-s$s-$r.log" 2>&1
  echo "== layer T=16, shared stream $s, run $r: exit $? (${SECONDS}s)"
  grep -E "^\| deepseek-v3 (layer|prefix: \+ combine|prefix: whole)" "$out/layer-s$s-$r.log" | sed -E 's/ +\|/ |/g; s/ H=7168 I=2048 E=256 k=8//' | cut -c1-150
done; done
MOE_BENCH_LAYER_COUNTS="$out/counts" timeout 60 $M bench layer --preset deepseek-v3 --tokens 16 > "$out/counts.log" 2>&1
echo "== counts: exit $? (${SECONDS}s)"
for v in default WARP_K=1024 WARP_K=512 UNROLL=2 UNROLL=4 WROWS=8 default; do
  [ $SECONDS -lt 400 ] || { echo "== down $v skipped"; continue; }
  env=(); [ $v = default ] || env=("MOE_GROUPED_GEMM_GEMV_$v")
  env "${env[@]}" MOE_SWEEP_CALLS=down MOE_SWEEP_COUNTS="$out/counts/deepseek-v3-T16-counts.txt" MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=16 \
    timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/down-$v.log" 2>&1
  echo "== down T=16, $v: exit $? (${SECONDS}s)"; grep -E "^\| deepseek-v3 down" "$out/down-$v.log" | grep -v cold | sed -E 's/ +\|/ |/g' | cut -c1-170
done
echo "== done in ${SECONDS}s"
