#!/usr/bin/env bash
# Emulates ll_allreduce.cu on the CPU (see emulate.py): two-shot and one-shot f32 at the CUDA tests' shapes, two calls
# each (both parities), and a call whose rank 1 never arrives (rank 0 must time out and leave its report).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd); work=$(mktemp -d)
python3 "$here/emulate.py" "$here/../../src/Collectives/Cuda/ll_allreduce.cu" "$work/emu.cpp"
cp "$here/shim.h" "$work/"
g++ -std=c++20 -O1 -pthread ${EMU_DEFINES:-} -o "$work/emu" "$work/emu.cpp"   # EMU_DEFINES: e.g. "-DLL_TAIL=0 -DLL_FENCE=4"
slot=${SLOT_UNITS:-131084}   # LowLatencyLayout.SlotUnits(2, 8 MB): the tests' communicators
for shape in "1 1" "7 1" "1000 1" "4099 2" "10007 3"; do
  for two in 1 0; do echo "count/grid $shape two-shot $two: $(timeout 120 "$work/emu" $shape $slot 2 $two | paste -sd' ')"; done
done
echo "grids 1,3,2 in turn, 6 calls, two-shot 10007: $(timeout 240 "$work/emu" 10007 1,3,2 $slot 6 1 | paste -sd' ')"
for n in 3 4; do for two in 1 0; do echo "$n ranks, grids 1,2 in turn, 4 calls of 4099, two-shot $two: $(EMU_RANKS=$n timeout 240 "$work/emu" 4099 1,2 $slot 4 $two | paste -sd' ')"; done; done
echo "rank 1 absent, two-shot 1000: $(timeout 60 "$work/emu" 1000 1 $slot 1 1 1)"
rm -rf "$work"
