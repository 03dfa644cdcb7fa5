#!/usr/bin/env python3
"""Turn the measured tables of docs/PERFORMANCE.md into the JSON the benchmarks write, so that
`moe simulate --calibrate` can fit the scale model from them when no saved JSON exists.

  python3 tools/perf/perfmd_to_json.py docs/PERFORMANCE.md docs/scaling

writes <out>/h100-2026-11-23-sweeps.json (grouped GEMM + token ops rows, sweep format: Name, Shape, Ms, GBps)
and <out>/h200x2-2026-11-22-allreduce.json (the NCCL column of the 2 x H200 AllReduce table, `moe bench allreduce`
format: Algorithm, Ranks, Bytes, TimeUs, BusGBs). Only our runtime's columns are taken, never PyTorch's."""
import json, re, sys

def table_after(lines, heading):
    i = next(n for n, l in enumerate(lines) if l.startswith(heading))
    rows = []
    for l in lines[i + 1:]:
        if l.startswith('|'):
            cells = [c.strip() for c in l.strip().strip('|').split('|')]
            if set(cells[0]) <= set('-') or cells[0] in ('GEMM', 'op', 'size', 'name'):
                continue
            rows.append(cells)
        elif rows:
            break
    return rows

def size_bytes(text):
    n, unit = re.match(r'(\d+)\s*([KMG]?)B', text).groups()
    return int(n) * {'': 1, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30}[unit]

def main(md, out):
    lines = open(md).read().splitlines()
    sweep = []
    floor_bw = 3.0e12  # the H100 tables' floor: bytes / 3.0 TB/s; "of floor" gives back the bytes
    for cells in table_after(lines, '#### Token ops, NVIDIA H100'):
        name, shape, us = cells[0], cells[1], float(cells[2])
        of_floor = cells[3]
        gbps = 0.0
        if of_floor.endswith('%'):
            gbps = float(of_floor[:-1]) / 100 * floor_bw / 1e9
        elif name.startswith('routing'):
            t, e, k = (int(x) for x in re.match(r'T=(\d+) E=(\d+) k=(\d+)', shape).groups())
            gbps = (4.0 * t * e + 8.0 * t * k + 4.0 * e) / (us * 1e-6) / 1e9
        sweep.append({'Name': name, 'Shape': shape, 'Ms': us / 1e3, 'GBps': gbps, 'Note': 'transcribed from docs/PERFORMANCE.md'})
    for cells in table_after(lines, '#### Grouped GEMM, NVIDIA H100'):
        sweep.append({'Name': cells[0], 'Shape': cells[1], 'Ms': float(cells[2]) / 1e3, 'GBps': 0.0, 'Note': 'transcribed from docs/PERFORMANCE.md'})
    json.dump({'device': 'NVIDIA H100 80GB HBM3', 'date': '2026-11-23', 'rows': sweep}, open(f'{out}/h100-2026-11-23-sweeps.json', 'w'), indent=2)
    rows = []
    for cells in table_after(lines, '### AllReduce, 2 x NVIDIA H200'):
        b, us = size_bytes(cells[0]), float(cells[3])
        rows.append({'Algorithm': 'Nccl', 'Ranks': 2, 'Bytes': b, 'TimeUs': us, 'BusGBs': b / (us * 1e-6) / 1e9})
    json.dump({'device': 'NVIDIA H200', 'ranks': 2, 'rows': rows}, open(f'{out}/h200x2-2026-11-22-allreduce.json', 'w'), indent=2)

if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
