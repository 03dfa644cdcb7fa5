#!/usr/bin/env python3
"""Compiles CUDA sources to sm_90a CUBINs with NVRTC through ctypes, as the runtime does, and prints each compile's log
(ptxas's warnings, e.g. "wgmma.mma_async instructions are serialized"). For the GPU machine, where NVRTC 13 knows sm_90a.
Usage: ptxas_log.py [-v] SOURCE.cu [-DNAME=VALUE ...] ... ; a source's defines follow it; -v passes -v to ptxas.
Nineteenth session: without -v every log was empty, for the wgmma kernel's forms with and without the idle warpgroup."""
import ctypes, glob, sys

lib = ctypes.CDLL(sorted(glob.glob("/usr/lib/x86_64-linux-gnu/libnvrtc.so*") + glob.glob("/usr/local/cuda*/lib64/libnvrtc.so*"))[-1])
INCLUDES = ["src/Accelerators/Headers", "src/Kernels/GroupedGemm", "src/Kernels/Routing"]

def compile_log(path, defines):
    program = ctypes.c_void_p()
    text = open(path, "rb").read()
    assert lib.nvrtcCreateProgram(ctypes.byref(program), text, path.encode(), 0, None, None) == 0
    options = ["--gpu-architecture=sm_90a", "-std=c++17", "--device-int128", "-DGW_HANG_TRAP", "--ptxas-options=--warn-on-spills"]
    if VERBOSE:
        options.append("--ptxas-options=-v")  # ptxas's info lines: registers, spills, and its (C7515) wgmma notes
    options += [f"--include-path={i}" for i in INCLUDES] + defines
    array = (ctypes.c_char_p * len(options))(*[o.encode() for o in options])
    result = lib.nvrtcCompileProgram(program, len(options), array)
    size = ctypes.c_size_t()
    lib.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    lib.nvrtcGetProgramLog(program, log)
    cubin = ctypes.c_size_t()
    lib.nvrtcGetCUBINSize(program, ctypes.byref(cubin))
    lib.nvrtcDestroyProgram(ctypes.byref(program))
    return result, cubin.value, log.value.decode(errors="replace")

jobs, current = [], None
VERBOSE = "-v" in sys.argv[1:]
for arg in [a for a in sys.argv[1:] if a != "-v"]:
    if arg.startswith("-D") and current is not None:
        current[1].append(arg)
    else:
        current = (arg, [])
        jobs.append(current)
for path, defines in jobs:
    result, cubin, log = compile_log(path, defines)
    serialized = sum("serialized" in line for line in log.splitlines())
    print(f"== {path} {' '.join(defines)}: nvrtc {result}, cubin {cubin} bytes, {serialized} 'serialized' lines")
    print("\n".join(line for line in log.splitlines() if not VERBOSE or "C75" in line or "serializ" in line or "spill" in line or "Used" in line)[:4000])
