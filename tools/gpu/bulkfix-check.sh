#!/usr/bin/env bash
# GPU machine, one H200 (cuda:0), after tools/gpu/pack.sh: issue 9, the bulk-copy GEMV's consumers (bulkfix branch).
#   1. The consumer settings (GroupedGemmGemvBulkTests.EveryConsumerSettingMatchesTheReference: X in shared memory,
#      contiguous items, deeper unroll, alone and together) and the shipped build's main cases against the F64
#      reference (timeout 60 s).
#   2. The grouped GEMM sweep at T=1 for qwen3, deepseek, mixtral with MOE_GROUPED_GEMM_GEMV_BULK=1 and the knobs
#      (MOE_GROUPED_GEMM_GEMV_BULK_*), most informative first; one BULK=0 reference (the 4-row GEMV). No grouped GEMM
#      sweep starts after 105 s.
#   3. In the time left: the layer sweep (moe_layer, T=1; qwen3, then deepseek, one preset a run) with the setting of least qwen3 time (gate_up +
#      gu+silu + down) among the bulk settings that took all three qwen3 calls, and with the switch off; their rows
#      (name | us | of floor | note).
# Prints per grouped GEMM sweep its exit status, then a table: setting -> us/% of floor per call; "~" marks a
# cell whose K is past the setting's limit (plain: STAGE_KB * 512, fused: STAGE_KB * 256, X in shared memory: X_KB * 128
# as well), so that call ran the 4-row GEMV (the sweep's note may still say gemvbulk).
# Logs in $OUT/bulkfix.tgz. At most 150 s.
set -uo pipefail
out=/tmp/moe-bulkfix; mkdir -p "$out"
trap 'tar czf "$OUT/bulkfix.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
SECONDS=0
bash .gpu/run.sh true # unpack the runtime once
T="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Tests/MoeRuntime.Tests.dll"
B="bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Benchmarks/MoeRuntime.Benchmarks.dll"
nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm --format=csv,noheader 2>/dev/null | head -1
budget=150 gemmStop=105
P=MOE_GROUPED_GEMM_GEMV_BULK_
class=MoeRuntime.Tests.Kernels.GroupedGemmGemvBulkTests
methods=(); for m in EveryConsumerSettingMatchesTheReference BulkGemvRunsQwen3AtOneToken BulkGemvRunsDeepSeekV3AtOneToken BulkGemvRowScaleAndFusedSiluAndMul; do
  methods+=(-method "$class.$m"); done
timeout 60 $T "${methods[@]}" > "$out/tests.log" 2>&1
echo "== tests: exit $? (${SECONDS}s)"
grep -E "\[FAIL\]" -A 8 "$out/tests.log" | head -40; grep -E "Total:" "$out/tests.log"

n=0
sweep() { # label, then knob assignments (without the prefix; BULK=0|1 is the switch)
  local label=$1; shift
  if (( SECONDS >= gemmStop )); then echo "== $label: not started (${SECONDS}s)"; return; fi
  n=$((n + 1)); local file; file=$(printf "s%02d" $n)
  local envs=(MOE_SWEEP_TOKENS=1 MOE_SWEEP_MODELS=qwen3,deepseek,mixtral MOE_GROUPED_GEMM_GEMV_BULK=1) stageKb=32 xKb=0
  for a in "$@"; do
    case $a in
      BULK=*) envs+=("MOE_GROUPED_GEMM_GEMV_BULK=${a#BULK=}") ;;
      *) envs+=("$P$a"); [[ $a == STAGE_KB=* ]] && stageKb=${a#*=}; [[ $a == X_KB=* ]] && xKb=${a#*=} ;;
    esac
  done
  printf "%s\n%s %s\n%s\n" "$label" "$stageKb" "$xKb" "$*" > "$out/$file.label"
  local limit=$((budget - SECONDS)); (( limit > 25 )) && limit=25
  env "${envs[@]}" timeout "$limit" $B sweep grouped_gemm --device cuda:0 --json "$out/$file.json" > "$out/$file.log" 2>&1
  echo "== $file $label ($*): exit $? (${SECONDS}s)" # its rows: in the table below and $file.log
}
sweep "reference: 4-row GEMV" BULK=0
sweep "full 4x32KB 1/SM (shipped)"
sweep "X16 contig 4x32KB 1/SM" X_KB=16 ORDER=contiguous
sweep "X16 contig 2x32KB 2/SM" X_KB=16 ORDER=contiguous STAGES=2 BLOCKS_PER_SM=2
sweep "X16 contig 4x32KB unroll8" X_KB=16 ORDER=contiguous UNROLL=8
sweep "contig 4x32KB unroll8" ORDER=contiguous UNROLL=8
sweep "X56 contig 2x32KB 1/SM" X_KB=56 ORDER=contiguous STAGES=2 BLOCKS_PER_SM=1
sweep "X16 4x32KB 1/SM" X_KB=16
sweep "contig 4x32KB 1/SM" ORDER=contiguous
sweep "X16 contig 2x32KB 1/SM" X_KB=16 ORDER=contiguous STAGES=2 BLOCKS_PER_SM=1
sweep "contig 2x32KB 2/SM" ORDER=contiguous STAGES=2 BLOCKS_PER_SM=2

echo "== T=1, us/% of floor; ~ = K past the setting's limit (4-row GEMV); q = qwen3-30b-a3b, d = deepseek-v3, m = mixtral-8x7b"
printf "  %-28s %12s %12s %12s %12s %12s %12s %12s %12s %12s\n" setting q.gate_up q.gu+silu q.down d.gate_up d.gu+silu d.down m.gate_up m.gu+silu m.down
best="" bestSum="" found=0
for f in "$out"/s[0-9][0-9].log; do
  [[ -f $f ]] || continue
  { read -r label; read -r stageKb xKb; read -r knobs; } < "${f%.log}.label"
  line=$(awk -F'|' -v label="$label" -v stageKb="$stageKb" -v xKb="$xKb" '
    BEGIN {k["qwen3-30b-a3b"] = 2048; ki["qwen3-30b-a3b"] = 768; k["deepseek-v3"] = 7168; ki["deepseek-v3"] = 2048;
      k["mixtral-8x7b"] = 4096; ki["mixtral-8x7b"] = 14336}
    /^\| .* T=1 / && !/cold/ {n = $2; gsub(/^ +| +$/, "", n); t = $4; gsub(/ /, "", t); p = $8; gsub(/ /, "", p);
      split(n, parts, " "); model = parts[1]; op = parts[2];
      kk = op == "down*w" ? ki[model] : k[model]; limit = op == "gate_up+silu" ? stageKb * 256 : stageKb * 512;
      if (xKb > 0 && xKb * 128 < limit) limit = xKb * 128;
      mark = label ~ /^reference/ || kk <= limit ? "" : "~"; cell[n] = sprintf("%s%s/%s", mark, t, p); us[n] = t + 0; ok[n] = mark == ""}
    END {printf "  %-28s", label;
      split("qwen3-30b-a3b gate_up|qwen3-30b-a3b gate_up+silu|qwen3-30b-a3b down*w|deepseek-v3 gate_up|deepseek-v3 gate_up+silu|deepseek-v3 down*w|mixtral-8x7b gate_up|mixtral-8x7b gate_up+silu|mixtral-8x7b down*w", names, "|");
      for (i = 1; i <= 9; i++) printf " %12s", (names[i] in cell) ? cell[names[i]] : "-";
      q = 0; for (i = 1; i <= 3; i++) { if (!(names[i] in cell) || !ok[names[i]]) q = -1; if (q >= 0) q += us[names[i]] }
      printf "\t%s\n", (label ~ /^reference/ || q < 0) ? "" : q}' "$f")
  echo "${line%%$'\t'*}"
  q=${line##*$'\t'}
  if [[ -n $q ]] && { [[ -z $bestSum ]] || awk -v a="$q" -v b="$bestSum" 'BEGIN {exit !(a < b)}'; }; then best=$knobs bestSum=$q found=1; fi
done

layer() { # label, preset, then env assignments (one preset per run: a sweep cut short by its timeout prints nothing)
  local label=$1 model=$2; shift 2
  local limit=$((budget - SECONDS)); (( limit > 30 )) && limit=30
  if (( limit < 12 )); then echo "== $label $model: skipped (${SECONDS}s)"; return; fi
  env MOE_SWEEP_TOKENS=1 MOE_SWEEP_MODELS=$model "$@" timeout "$limit" $B sweep moe_layer --device cuda:0 --json "$out/$label-$model.json" > "$out/$label-$model.log" 2>&1
  echo "== $label $model ($*): exit $? (${SECONDS}s)"
  grep -E "^\| .* T=1 " "$out/$label-$model.log" | awk -F'|' '{gsub(/ +$/, "", $2); gsub(/^ +/, "", $2); printf "  %-30s %9s us %6s | %s\n", $2, $4, $8, $9}'
}
bestEnv=(MOE_GROUPED_GEMM_GEMV_BULK=1); for a in $best; do bestEnv+=("$P$a"); done
(( found )) && echo "== best qwen3 setting: '${best:-shipped}' (${bestSum} us over gate_up, gu+silu, down)"
for model in qwen3 deepseek; do
  (( found )) && layer layer-best "$model" "${bestEnv[@]}"
  layer layer-bulk0 "$model" MOE_GROUPED_GEMM_GEMV_BULK=0
done
echo "== done (${SECONDS}s)"
