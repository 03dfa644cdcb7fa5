#!/usr/bin/env bash
# GPU machine, 2 GPUs, after tools/gpu/pack.sh (branch ep-host): the expert-parallel layer's host wall against its
# device phases once its buffers are kept across forwards. Runs the EP / EPLB tests with CUDA, `moe bench layer
# --parallel ep` for deepseek-v3 and qwen3-30b-a3b at T = 1, 128, 4096 (wall vs sum of phases, the target being
# wall <= 1.3 x phases at T >= 128), and `moe bench eplb` (step time with and without balancing).
# Logs and JSON in $OUT/ep-host.tgz; the tables on stdout. About 4 minutes at most.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-ep-host; mkdir -p "$out"
trap 'tar czf "$OUT/ep-host.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM   # a stopped run still packs what it has
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
step() { # seconds, label, command...
  local s=$1 label=$2; shift 2
  timeout "$s" "$@" > "$out/$label.log" 2>&1; echo "== $label: exit $?"
}
# (-class and -method in one call select their intersection: two calls)
step 45 tests $T -class MoeRuntime.Tests.Runtime.ExpertParallelReuseTests -class MoeRuntime.Tests.Eplb.ExpertParallelEplbTests \
  -class MoeRuntime.Tests.Cli.LayerBenchCommandTests
step 25 tests-ep-vs-single $T -method MoeRuntime.Tests.Runtime.MoeLayerTests.TensorAndExpertParallelMatchSingleAccelerator
for f in tests tests-ep-vs-single; do
  grep -E "\[FAIL\]" -A 8 "$out/$f.log" | head -30; grep -E "Total:" "$out/$f.log"; grep -cE "\[SKIP\]" "$out/$f.log" | sed 's/^/skipped: /'
done
step 75 ep-deepseek $M bench layer --parallel ep --devices cuda:0,cuda:1 --preset deepseek-v3 --tokens 1,128,4096 --warmup 3 --samples 10 --json "$out/ep-deepseek.json"
tail -5 "$out/ep-deepseek.log"
step 40 ep-qwen3 $M bench layer --parallel ep --devices cuda:0,cuda:1 --preset qwen3-30b-a3b --tokens 1,128,4096 --warmup 3 --samples 10 --json "$out/ep-qwen3.json"
tail -5 "$out/ep-qwen3.log"
step 35 eplb $M bench eplb --devices cuda:0,cuda:1 --skew zipf:1.2 --preset moe-e64 --tokens 4096 --steps 32 --redundant 16 --dtype bf16 --json "$out/eplb.json"
tail -8 "$out/eplb.log"
# wall / sum of phases per row (target <= 1.3 at T >= 128)
for f in "$out"/ep-deepseek.log "$out"/ep-qwen3.log; do
  awk -v name="$(basename "$f" .log)" '$1 ~ /^[0-9]+$/ && $3 > 0 { printf "%s T=%s wall/phases = %.2f\n", name, $1, $2 / $3 }' "$f"
done
