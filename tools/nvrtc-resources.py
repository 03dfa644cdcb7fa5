#!/usr/bin/env python3
"""Registers, stack and spills of every entry of a kernel source, as NVRTC's ptxas reports them (no GPU, no CUDA
toolkit: only libnvrtc), plus any .local use in the PTX (a per-thread array that could not stay in registers).

  python3 tools/nvrtc-resources.py src/Kernels/Routing/topk_routing.cu [sm_90] [--filter contiguous] [--ptx OUT.ptx] [-DNAME ...]

--ptx writes the PTX (a refactor that should not change the code: compare the files of before and after).

Compiles with the runtime's default options (NvrtcCompiler.DefaultOptions) and the headers of src/Accelerators/Headers and the source's folder,
adds -Xptxas=-v, and prints one line per entry: registers, stack frame, spill stores/loads, PTX .local mentions.
"""
import ctypes, os, re, sys

def main():
    args = sys.argv[1:]
    if not args:
        sys.exit(__doc__)
    source = args.pop(0)
    arch = args.pop(0) if args and args[0].startswith("sm_") else "sm_90"
    pattern = "."
    if "--filter" in args:
        i = args.index("--filter")
        pattern = args[i + 1]
        del args[i:i + 2]
    ptx_path = None
    if "--ptx" in args:
        i = args.index("--ptx")
        ptx_path = args[i + 1]
        del args[i:i + 2]
    headers_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "Accelerators", "Headers")
    # The runtime embeds every .cuh of the kernel assemblies: the shared headers, every kernel folder's, those beside the source.
    kernels_dir = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "src", "Kernels")
    folders = [headers_dir] + [os.path.join(kernels_dir, d) for d in sorted(os.listdir(kernels_dir))
                               if os.path.isdir(os.path.join(kernels_dir, d))] + [os.path.dirname(os.path.abspath(source))]
    paths = {f: os.path.join(d, f) for d in folders for f in os.listdir(d) if f.endswith(".cuh")}
    names = sorted(paths)
    texts = [open(paths[f], "rb").read() for f in names]
    nvrtc = None
    for library in ("libnvrtc.so", "libnvrtc.so.13", "libnvrtc.so.12", "libnvrtc.so.11.2"):
        try:
            nvrtc = ctypes.CDLL(library)
            break
        except OSError:
            pass
    if nvrtc is None:
        sys.exit("libnvrtc not found")
    program = ctypes.c_void_p()
    strings = ctypes.c_char_p * max(len(names), 1)
    check(nvrtc.nvrtcCreateProgram(ctypes.byref(program), open(source, "rb").read(), os.path.basename(source).encode(),
                                   len(names), strings(*texts), strings(*[n.encode() for n in names])), "create")
    options = [f"--gpu-architecture={arch}", "-std=c++17", "--device-int128", "-Xptxas=-v"] + args
    result = nvrtc.nvrtcCompileProgram(program, len(options), (ctypes.c_char_p * len(options))(*[o.encode() for o in options]))
    size = ctypes.c_size_t()
    nvrtc.nvrtcGetProgramLogSize(program, ctypes.byref(size))
    log = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetProgramLog(program, log)
    log = log.value.decode(errors="replace")
    if result != 0:
        sys.exit(log)
    nvrtc.nvrtcGetPTXSize(program, ctypes.byref(size))
    ptx = ctypes.create_string_buffer(size.value)
    nvrtc.nvrtcGetPTX(program, ptx)
    ptx = ptx.value.decode()
    if ptx_path:
        open(ptx_path, "w").write(ptx)
    local = {}
    for body in re.split(r"\.entry\s+", ptx)[1:]:
        local[body.split("(")[0].strip()] = len(re.findall(r"\.local\b", body))
    entry = re.compile(r"Function properties for (\S+)\n.*?(\d+) bytes stack frame, (\d+) bytes spill stores, "
                       r"(\d+) bytes spill loads\n.*?Used (\d+) registers", re.S)
    wanted = re.compile(pattern)
    rows = [m for m in entry.finditer(log) if wanted.search(m.group(1))]
    for m in sorted(rows, key=lambda m: m.group(1)):
        name = m.group(1)
        print(f"{name:48s} regs {int(m.group(5)):3d}  stack {int(m.group(2)):4d}  spill st/ld {m.group(3)}/{m.group(4)}"
              f"  ptx .local {local.get(name, 0)}")

def check(code, what):
    if code != 0:
        sys.exit(f"nvrtc {what}: error {code}")

if __name__ == "__main__":
    main()
