#!/usr/bin/env bash
# GPU machine, one H200, after tools/gpu/pack.sh (thirty-third session, with the device time left). The final code's
# DeepSeek-V3 layer by phase at T = 16 and 128 (`moe bench layer --phases`: device events between the phases of eager
# forwards, 4 layers cycled): where the time goes now that T = 16's expert GEMMs run on the wgmma kernel.
# Logs in $OUT/phases33f.tgz.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
out=/tmp/moe-phases33f; mkdir -p "$out"
trap 'tar czf "$OUT/phases33f.tgz" -C "$out" .' EXIT
trap 'exit 143' TERM
SECONDS=0
timeout 120 bash .gpu/run.sh dotnet .gpu/app/MoeRuntime.Cli/moe.dll bench layer --preset deepseek-v3 --tokens 16,128 --layers 4 --phases > "$out/phases.log" 2>&1
echo "== phases: exit $? (${SECONDS}s)"; grep -vE "^moe:" "$out/phases.log" | tail -25
echo "== done in ${SECONDS}s"
