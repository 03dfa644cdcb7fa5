#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (twenty-eighth session, issue 9). clocks28f.sh timed Mixtral-8x7B's
# T = 8192 down alone in each process: ours 2819-2834 us, torch 2864-2886, where the full sweep (down after two gate_up
# rows in ours, after one in torch's) had ours at 0.84-0.92x. The prefill table the same way: each process times one
# call (MOE_SWEEP_CALLS) of one preset at T = 1024 and 8192 on random weights, ours and torch._grouped_mm back to back,
# the order swapped in the second round. Logs in $OUT/prefill28g.tgz.
set -uo pipefail
out=/tmp/moe-prefill28g; mkdir -p "$out"
trap 'tar czf "$OUT/prefill28g.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
export MOE_SWEEP_CLOCKS=1 MOE_SWEEP_WEIGHTS=random MOE_SWEEP_TOKENS=1024,8192
run() { local name=$1; shift; "$@" > "$out/$name.log" 2>&1; local rc=$?
  echo "== $name: exit $rc (${SECONDS}s)"; grep -E "^\| (mixtral|qwen|deepseek)" "$out/$name.log" | sed -E 's/ +\|/ |/g' | cut -c1-200; }
ours() { run ours-$1-$2.$3 env MOE_SWEEP_MODELS=$1 MOE_SWEEP_CALLS=$2 timeout 90 $B sweep grouped_gemm --device cuda:0; }
torch() { run torch-$1-$2.$3 bash -c "cd bench/reference && MOE_SWEEP_MODELS=$1 MOE_SWEEP_CALLS=$2 timeout 90 python3 grouped_gemm.py"; }
for round in 1 2; do
  for model in mixtral qwen3 deepseek; do
    for call in gate_up down; do
      [ $SECONDS -lt 270 ] || { echo "== stopped at ${SECONDS}s"; break 3; }
      if [ $round = 1 ]; then ours $model $call $round; torch $model $call $round; else torch $model $call $round; ours $model $call $round; fi
    done
  done
done
echo "== done in ${SECONDS}s"
