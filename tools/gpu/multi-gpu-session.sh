#!/usr/bin/env bash
# GPU machine with 2+ GPUs, after tools/gpu/pack.sh: AllReduce (ours and NCCL, graph-timed), one process per
# GPU against one process (tools/gpu/mproc-check.sh), EPLB under Zipf skew, all-to-all and the EP layer per
# phase (the scale model's inputs), and the demo. Logs and JSON in $OUT/multi.tgz; summaries to stdout.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
n=${NGPU:-2}
devices=$(seq -s, -f 'cuda:%g' 0 $((n - 1)))
out=/tmp/moe-multi; mkdir -p "$out"
trap 'tar czf "$OUT/multi.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM   # a stopped run still packs what it has
M="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll"
step() { # seconds, label, command...
  local s=$1 label=$2; shift 2
  timeout "$s" "$@" > "$out/$label.log" 2>&1; echo "== $label: exit $?"
}
step 150 allreduce $M bench allreduce --devices "$devices" --algo all --dtype bf16 --min 1K --max 256M --json "$out/allreduce.json" --svg "$out/allreduce.svg"
grep -E "^\|? *(1 KB|1K|8 KB|64 KB|1 MB|4 MB|16 MB|256 MB)|algorithm|^#" "$out/allreduce.log" | head -60
NPROC=$n OUT="$out/mproc" timeout 170 bash tools/gpu/mproc-check.sh > "$out/mproc.log" 2>&1; echo "== mproc: exit $?"
grep -E "^(same|DIFF|FAIL)" "$out/mproc.log"
step 100 eplb-drift $M bench eplb --devices "$devices" --skew zipf:1.2 --drift --drift-period 16 --preset moe-e64 --tokens 4096 --steps 64 --redundant 16 --rebalance-every 4 --window 4 --dtype bf16 --json "$out/eplb-drift.json" --save-loads "$out/loads-e64.json"
tail -8 "$out/eplb-drift.log"
step 80 eplb $M bench eplb --devices "$devices" --skew zipf:1.2 --preset moe-e64 --tokens 4096 --steps 32 --redundant 16 --dtype bf16 --json "$out/eplb.json"
tail -6 "$out/eplb.log"
step 60 alltoall $M bench alltoall --devices "$devices" --algo all --min 16K --max 256M --factor 4 --json "$out/alltoall.json"
tail -14 "$out/alltoall.log"
step 150 ep-deepseek $M bench layer --parallel ep --devices "$devices" --preset deepseek-v3 --tokens 1,16,128,1024,4096 --json "$out/ep-deepseek.json"
tail -8 "$out/ep-deepseek.log"
step 90 ep-qwen3 $M bench layer --parallel ep --devices "$devices" --preset qwen3-30b-a3b --tokens 1,16,128,1024,4096 --json "$out/ep-qwen3.json"
tail -8 "$out/ep-qwen3.log"
step 90 demo $M demo
tail -14 "$out/demo.log"
