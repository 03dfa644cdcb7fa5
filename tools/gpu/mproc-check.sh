#!/usr/bin/env bash
# Runs on a machine with NPROC (default 2) GPUs, after tools/gpu/pack.sh here with .gpu carried:
# one process per GPU (moe launch --nproc N) against one process over cuda:0..N-1, tensor and expert parallel,
# every fixture family, f32 and bf16, outputs compared byte for byte (cmp); then the AllReduce bench across
# processes beside the one-process NCCL rows. Logs and outputs under $OUT (default /tmp/moe-mproc).
# Exit status 1 if any output differs or any command fails.
set -uo pipefail
n=${NPROC:-2}
out=${OUT:-/tmp/moe-mproc}
mkdir -p "$out"
moe="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
devices=$(seq -s, -f 'cuda:%g' 0 $((n - 1)))
status=0
for model in "deepseek_v3 1" "mixtral 0" "qwen3_moe 0" "qwen2_moe 0"; do
  set -- $model
  family=$1 layer=$2
  for parallel in tp ep; do
    for dtype in f32 bf16; do
      name="$family-$parallel-$dtype"
      common=(--model "tests/Fixtures/$family" --layer "$layer" --tokens 67 --seed 7 --dtype "$dtype" --repeats 3)
      if ! $moe launch --nproc "$n" -- run "${common[@]}" --parallel "$parallel" --output "$out/$name-ranks.safetensors" > "$out/$name-ranks.log" 2>&1; then
        echo "FAIL $name: moe launch (see $out/$name-ranks.log)"; tail -5 "$out/$name-ranks.log"; status=1; continue
      fi
      if ! $moe run "${common[@]}" --devices "$devices" --parallel "$parallel" --allreduce nccl --output "$out/$name-one.safetensors" > "$out/$name-one.log" 2>&1; then
        echo "FAIL $name: one process (see $out/$name-one.log)"; tail -5 "$out/$name-one.log"; status=1; continue
      fi
      if cmp -s "$out/$name-ranks.safetensors" "$out/$name-one.safetensors"; then
        echo "same  $name: $(grep -h 'time:' "$out/$name-ranks.log" | sed 's/^\[rank 0\] //') | one process: $(grep -h 'time:' "$out/$name-one.log")"
      else
        echo "DIFF  $name"; status=1
      fi
    done
  done
done
$moe launch --nproc "$n" -- bench allreduce --algo nccl --dtype bf16 --min 1K --max 256M --csv "$out/allreduce-ranks.csv" 2>&1 | tee "$out/allreduce-ranks.log"
[ "${PIPESTATUS[0]}" = 0 ] || status=1
$moe bench allreduce --devices "$devices" --algo nccl --dtype bf16 --min 1K --max 256M --csv "$out/allreduce-one.csv" 2>&1 | tee "$out/allreduce-one.log"
exit $status
