#!/usr/bin/env bash
# GPU machine, one H200 (cuda:0), after tools/gpu/pack.sh: issue 9, why the bulk-copy decode GEMV is slow (bulkdiag branch).
#   1. GroupedGemmGemvBulkTests with the default build: the shipped kernel's cases, and every knob setting measured below
#      against the F64 reference (through the test override; copy-only settings with their arithmetic put back, plus a
#      check that copy-only writes nothing). This also fills the NVRTC cache for the sweeps.
#   2. The grouped GEMM sweep at T=1 for qwen3 and deepseek with MOE_GROUPED_GEMM_GEMV_BULK=1 over a matrix of the
#      MOE_GROUPED_GEMM_GEMV_BULK_* knobs (GroupedGemmGemvBulkConfig), most informative first: the pure copy pipeline
#      (copy-only) at the shipped ring, deeper/smaller rings and 2 blocks per SM, split copies and several issuing lanes;
#      then full arithmetic at those rings, without the consumer barrier, with the L2 evict-first hint; and one
#      MOE_GROUPED_GEMM_GEMV_BULK=0 reference (the 4-row GEMV). No sweep starts after 200 s.
#   3. In the time left, the main CUDA cases of the class again with two knob settings set through the environment.
# Prints per sweep its rows (name | us | of floor | note), then a table: setting -> us (of floor) of qwen3 gate_up,
# gate_up+silu, down*w, the same cold, deepseek gate_up, gate_up+silu, down*w; "~" marks a cell where the call did not
# take gemvbulk (K = 7168 needs a 14 KB stage plain, 28 KB fused; smaller stages keep the 4-row GEMV there, though the
# sweep's note still says gemvbulk). copy-only rows write nothing: time only.
# Logs in $OUT/bulkdiag.tgz. At most 235 s.
set -uo pipefail
out=/tmp/moe-bulkdiag; mkdir -p "$out"
trap 'tar czf "$OUT/bulkdiag.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
bash .gpu/run.sh true # unpack the runtime once
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
SECONDS=0
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
budget=235 sweepStop=200
P=MOE_GROUPED_GEMM_GEMV_BULK_
class=MoeRuntime.Tests.Kernels.GroupedGemmGemvBulkTests
tests() { # label, timeout, then test runner arguments (env assignments first, if any)
  local label=$1 limit=$2; shift 2
  (( limit > budget - SECONDS )) && limit=$((budget - SECONDS))
  if (( limit < 15 )); then echo "== $label: skipped (${SECONDS}s)"; return; fi
  local envs=(); while [[ $# -gt 0 && $1 == *=* ]]; do envs+=("$1"); shift; done
  env "${envs[@]}" timeout "$limit" $T "$@" > "$out/$label.log" 2>&1
  echo "== $label (${envs[*]}): exit $? (${SECONDS}s)"
  grep -E "\[FAIL\]" -A 8 "$out/$label.log" | head -40; grep -E "Total:" "$out/$label.log"
}
tests tests-bulk 75 -class "$class"

rows() { grep -E "^\| .* T=1 " "$1" | awk -F'|' '{gsub(/ +$/, "", $2); gsub(/^ +/, "", $2); printf "  %-30s %9s us %6s | %s\n", $2, $4, $8, $9}'; }
n=0
sweep() { # label, then env assignments (the knobs without the prefix; BULK=0|1 is the switch)
  local label=$1; shift
  if (( SECONDS >= sweepStop )); then echo "== $label: not started (${SECONDS}s)"; return; fi
  n=$((n + 1)); local file; file=$(printf "s%02d" $n)
  local envs=(MOE_SWEEP_TOKENS=1 MOE_SWEEP_MODELS=qwen3,deepseek MOE_GROUPED_GEMM_GEMV_BULK=1)
  for a in "$@"; do if [[ $a == BULK=* ]]; then envs+=("MOE_GROUPED_GEMM_GEMV_BULK=${a#BULK=}"); else envs+=("$P$a"); fi; done
  echo "$label" > "$out/$file.label"
  local limit=$((budget - SECONDS)); (( limit > 40 )) && limit=40
  env "${envs[@]}" timeout "$limit" $B sweep grouped_gemm --device cuda:0 --json "$out/$file.json" > "$out/$file.log" 2>&1
  echo "== $file $label ($*): exit $? (${SECONDS}s)"
  rows "$out/$file.log"
}
sweep "copy-only 4x32KB 1/SM (shipped ring)" MODE=copy-only
sweep "full 4x32KB 1/SM (shipped)"
sweep "reference: 4-row GEMV" BULK=0
sweep "copy-only 8x16KB 1/SM" MODE=copy-only STAGES=8 STAGE_KB=16 BLOCKS_PER_SM=1
sweep "copy-only 4x16KB 2/SM" MODE=copy-only STAGES=4 STAGE_KB=16 BLOCKS_PER_SM=2
sweep "copy-only 8x8KB 2/SM" MODE=copy-only STAGES=8 STAGE_KB=8 BLOCKS_PER_SM=2
sweep "copy-only 4x32KB split 4KB" MODE=copy-only SPLIT_KB=4
sweep "copy-only 4x32KB split 4KB 8 lanes" MODE=copy-only SPLIT_KB=4 COPY_LANES=8
sweep "copy-only 2x32KB 1/SM" MODE=copy-only STAGES=2 STAGE_KB=32 BLOCKS_PER_SM=1
sweep "no-epilogue-sync 4x32KB" MODE=no-epilogue-sync
sweep "full 4x16KB 2/SM" STAGES=4 STAGE_KB=16 BLOCKS_PER_SM=2
sweep "full 8x16KB 1/SM" STAGES=8 STAGE_KB=16 BLOCKS_PER_SM=1
sweep "full 8x8KB 2/SM" STAGES=8 STAGE_KB=8 BLOCKS_PER_SM=2
sweep "full 4x32KB split 4KB 8 lanes" SPLIT_KB=4 COPY_LANES=8
sweep "full 4x32KB evict-first" L2_HINT=evict-first
sweep "no-epilogue-sync 4x16KB 2/SM" MODE=no-epilogue-sync STAGES=4 STAGE_KB=16 BLOCKS_PER_SM=2
sweep "full 4x32KB 4 lanes" COPY_LANES=4

echo "== T=1, us (of floor); ~ = not gemvbulk (4-row GEMV); q = qwen3-30b-a3b, d = deepseek-v3, (c) = cold"
printf "  %-38s %13s %13s %13s %13s %13s %13s %13s %13s\n" setting q.gate_up q.gu+silu q.down q.gu\(c\) q.down\(c\) d.gate_up d.gu+silu d.down
for f in "$out"/s[0-9][0-9].log; do
  [[ -f $f ]] || continue
  awk -F'|' -v label="$(cat "${f%.log}.label")" '
    /^\| .* T=1 / {n = $2; gsub(/^ +| +$/, "", n); t = $4; gsub(/ /, "", t); p = $8; gsub(/ /, "", p);
      # The sweep note names gemvbulk whatever K is; a stage below 14 KB (plain) or 28 KB (fused) cannot take K = 7168.
      kb = match(label, /x[0-9]+KB/) ? substr(label, RSTART + 1, RLENGTH - 3) + 0 : 32;
      fallback = (n == "deepseek-v3 gate_up" && kb < 14) || (n == "deepseek-v3 gate_up+silu" && kb < 28);
      mark = label ~ /^reference/ || ($9 ~ /gemvbulk/ && !fallback) ? "" : "~"; cell[n] = sprintf("%s%s/%s", mark, t, p)}
    END {printf "  %-38s", label;
      split("qwen3-30b-a3b gate_up|qwen3-30b-a3b gate_up+silu|qwen3-30b-a3b down*w|qwen3-30b-a3b gate_up (cold)|qwen3-30b-a3b down*w (cold)|deepseek-v3 gate_up|deepseek-v3 gate_up+silu|deepseek-v3 down*w", names, "|");
      for (i = 1; i <= 8; i++) printf " %13s", (names[i] in cell) ? cell[names[i]] : "-"; printf "\n"}' "$f"
done

# The main CUDA cases once more with knobs from the environment (4 x 32 KB stages keep every case's K in range).
methods=(); for m in BulkGemvMatchesTheReference BulkGemvRowScaleAndFusedSiluAndMul BulkGemvRunsQwen3AtOneToken BulkGemvRunsDeepSeekV3AtOneToken BulkGemvIsDeterministic; do
  methods+=(-method "$class.$m"); done
tests tests-env-nes-split 30 ${P}MODE=no-epilogue-sync ${P}SPLIT_KB=4 ${P}COPY_LANES=8 ${P}L2_HINT=evict-first "${methods[@]}"
tests tests-env-lanes 30 ${P}COPY_LANES=4 "${methods[@]}"
echo "== done (${SECONDS}s)"
