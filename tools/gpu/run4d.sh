#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (fourth session, last run): tools/gpu/persist-check.sh (routing's
# sigmoid exp shared with the CPU twin: the routing tests three times, the sweep), then Mixtral-8x7B at T=16 with the
# decode tile's split-K forced to 2 (MOE_GROUPED_GEMM_SPLITK=2) against the default: the layer and the sweep's rows.
set -uo pipefail
out=/tmp/moe-run4d; mkdir -p "$out"
trap 'tar czf "$OUT/run4d.tgz" -C "$out" .' EXIT
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
bash tools/gpu/persist-check.sh 2>&1 | tail -40
for split in default 2; do
  env $([ $split = 2 ] && echo MOE_GROUPED_GEMM_SPLITK=2) timeout 60 $M bench layer --preset mixtral-8x7b --tokens 16 --device cuda:0 > "$out/layer-$split.log" 2>&1
  echo "== layer mixtral-8x7b T=16, split $split: exit $?"; grep -E "^mixtral" "$out/layer-$split.log"
  env $([ $split = 2 ] && echo MOE_GROUPED_GEMM_SPLITK=2) MOE_SWEEP_MODELS=mixtral MOE_SWEEP_TOKENS=16 timeout 60 $B sweep grouped_gemm --device cuda:0 > "$out/gg-$split.log" 2>&1
  echo "== grouped_gemm mixtral T=16, split $split: exit $?"; grep -E "^\| mixtral" "$out/gg-$split.log" | cut -c1-150
done
echo "== done (${SECONDS}s)"
