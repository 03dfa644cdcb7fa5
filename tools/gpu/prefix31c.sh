#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-first session). prefix31b.sh: in the DeepSeek-V3 T = 128 layer's
# graph (146 experts, 4 layers cycled) gate_up adds 2061 us and down 1022, but one traced eager call of each on the same
# routing spans 1967 and 992 us, and the isolated calls stream at 4.41 / 4.44 TB/s. Here, with the expert GEMMs also timed
# alone (graph-replayed, the layers cycled, then the first layer only), 4 layers cycled and 1 layer, alternating twice.
# Logs in $OUT/prefix31c.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-prefix31c; mkdir -p "$out"
trap 'tar czf "$OUT/prefix31c.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
for r in 1 2; do for n in 4 1; do
  MOE_SWEEP_PREFIXES=1 MOE_SWEEP_LAYERS=$n MOE_SWEEP_MODELS=deepseek MOE_SWEEP_TOKENS=128 timeout 120 $B sweep moe_layer --device cuda:0 > "$out/prefix-$n-$r.log" 2>&1
  echo "== $n layers, run $r: exit $? (${SECONDS}s)"; grep -E "^\| deepseek" "$out/prefix-$n-$r.log" | sed -E 's/ +\|/ |/g; s/T=128 H=7168 I=2048 E=256 k=8 //' | cut -c1-160
done; done
echo "== done in ${SECONDS}s"
