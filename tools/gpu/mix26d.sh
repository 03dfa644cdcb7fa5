#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-sixth session, issues 5 and 9). Mixtral-8x7B at T = 16 runs its
# experts on the mma.sync decode tile with split-K (32 rows over 8 experts: under the wgmma kernel's 64-row minimum, and
# not the GEMV's), and its layer took longer than at T = 128 (final26c.sh: 0.769 against 0.718 ms graph-replayed).
# MOE_GROUPED_GEMM_WGMMA_MIN_ROWS=16 gives such calls to the wgmma kernel (small tiles load only an expert's rows of X).
# The layer at T = 8 and 16 (4 layers cycled), defaults and min 16 alternating three times; one phase run each; the
# isolated calls at T = 16 (defaults, forced wgmma); PyTorch's layer at T = 8 and 16; then the Runtime namespace and the
# wgmma class under min 16. DeepSeek-V3's layer at T = 128 twice between. Logs in $OUT/mix26d.tgz.
# Ran on 18f3131's build. Its test line filters by namespace and class at once and selected no test; mix26f.sh tests16
# ran them. Since 02c9c0b the default minimum is 12, so `def` here is now MOE_GROUPED_GEMM_WGMMA_MIN_ROWS=64.
set -uo pipefail
out=/tmp/moe-mix26d; mkdir -p "$out"
trap 'tar czf "$OUT/mix26d.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
SECONDS=0
declare -A envs=([def]="" [min16]="MOE_GROUPED_GEMM_WGMMA_MIN_ROWS=16")
for i in 1 2 3; do for v in def min16; do
  env ${envs[$v]} timeout 60 $M bench layer --preset mixtral-8x7b --tokens 8,16 --layers 4 > "$out/layer-$v.$i.log" 2>&1
  echo "== layer $v.$i: exit $? (${SECONDS}s)"; grep -hE "^mixtral" "$out/layer-$v.$i.log"
done; done
# final26c.sh timed DeepSeek-V3 T = 128 graph-replayed slower than eager (3.417 against 3.286 ms; 3.19-3.23 graph in the
# twentieth and twenty-first sessions): twice more.
for i in 1 2; do
  timeout 60 $M bench layer --preset deepseek-v3 --tokens 128 --layers 4 > "$out/ds128.$i.log" 2>&1
  echo "== deepseek-v3 T=128 ($i): exit $? (${SECONDS}s)"; grep -hE "^deepseek" "$out/ds128.$i.log"
done
for v in def min16; do
  env ${envs[$v]} timeout 60 $M bench layer --preset mixtral-8x7b --tokens 16 --phases > "$out/phases-$v.log" 2>&1
  echo "== phases $v: exit $? (${SECONDS}s)"; grep -vE "^\s*$" "$out/phases-$v.log" | tail -14
done
for v in default wgmma; do
  if [ $v = wgmma ]; then f="MOE_GROUPED_GEMM_VARIANT=wgmma"; else f=""; fi
  env $f MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=8,16 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/gemm-$v.log" 2>&1
  echo "== isolated $v: exit $? (${SECONDS}s)"; grep -E "^\| mixtral" "$out/gemm-$v.log" | grep -v "read floor" | cut -c1-170
done
(cd bench/reference && PYTHONUNBUFFERED=1 OUT="$out/torch" MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=8,16 MOE_SWEEP_LAYERS=4 \
  timeout 90 python3 moe_layer.py > "$out/torch.log" 2>&1)
echo "== torch: exit $? (${SECONDS}s)"; grep -vE "^#" "$out/torch.log" | cut -c1-200 | tail -4
left=$((560 - SECONDS)); [ $left -gt 60 ] || { echo "== tests skipped (${SECONDS}s)"; exit 0; }
MOE_GROUPED_GEMM_WGMMA_MIN_ROWS=16 timeout $left $T -namespace MoeRuntime.Tests.Runtime -class MoeRuntime.Tests.Kernels.GroupedGemmWgmmaTests > "$out/tests-min16.log" 2>&1
echo "== Runtime namespace and wgmma class under min 16: exit $? (${SECONDS}s)"; grep -E "\[FAIL\]" -A 10 "$out/tests-min16.log" | head -40; grep -E "Total:" "$out/tests-min16.log" | tail -1
echo "== done in ${SECONDS}s"
