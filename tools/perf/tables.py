#!/usr/bin/env python3
"""Markdown tables for docs/PERFORMANCE.md from one GPU run's results folder (results.tgz unpacked).

Pairs each of our sweep rows with the PyTorch reference row of the same name and shape from the same run,
so the ratio printed is always ours against theirs on one device, one session.
Usage: python3 tools/perf/tables.py DIR [grouped_gemm|token_ops|moe_layer ...]
"""
import json
import os
import sys


def load(folder, name):
    path = os.path.join(folder, name)
    return json.load(open(path)) if os.path.exists(path) else None


def grouped_gemm(folder):
    ours, torch = load(folder, "sweep-grouped_gemm.json"), load(folder, "grouped_gemm-torch.json")
    theirs = {(r["name"], r["shape"]): r for r in torch["rows"]} if torch else {}
    print(f"#### Grouped GEMM, {ours['device']}, {ours['date']}\n")
    print("| GEMM | shape | ours (us) | ours of floor | torch (us) | torch of floor | ours vs torch | TFLOP/s ours / torch | tile |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in ours["rows"]:
        base = r["Name"].replace("+silu", "").replace("down*w", "down")
        t = theirs.get((base, r["Shape"]))
        us, floor = r["Ms"] * 1e3, r["FloorMs"] * 1e3
        cells = [r["Name"], r["Shape"], f"{us:.1f}", f"{floor / us:.0%}"]
        if t:
            tus = t["ms"] * 1e3
            cells += [f"{tus:.1f}", f"{floor / tus:.0%}", f"{tus / us:.2f}x", f"{r['Tflops']:.0f} / {t['tflops']:.0f}"]
        else:
            cells += ["-", "-", "-", f"{r['Tflops']:.0f} / -"]
        cells.append(r["Note"])
        print("| " + " | ".join(cells) + " |")
    print()


def token_ops(folder):
    ours, torch = load(folder, "sweep-token_ops.json"), load(folder, "token_ops-torch.json")
    theirs = {}
    for r in (torch["rows"] if torch else []):
        key = r["Name"].split(" (")[0]
        theirs[(key, r["Shape"])] = r
    print(f"#### Token ops, {ours['device']}, {ours['date']}\n")
    print("| op | shape | ours (us) | of copy floor | PyTorch (us) | speed-up |")
    print("|---|---|---|---|---|---|")
    for r in ours["rows"]:
        key = r["Name"].split(" (")[0]
        t = theirs.get((key, r["Shape"]))
        us = r["Ms"] * 1e3
        floor = r["FloorMs"] * 1e3
        of_floor = f"{floor / us:.0%}" if floor / us >= 0.05 else "-"
        ref = f"{t['Us']:.1f}" if t else "-"
        ratio = f"{t['Us'] / us:.1f}x" if t else "-"
        print(f"| {r['Name']} | {r['Shape']} | {us:.1f} | {of_floor} | {ref} | {ratio} |")
    print()


def moe_layer(folder):
    ours, torch = load(folder, "sweep-moe_layer.json"), load(folder, "moe_layer-torch.json")
    theirs = {(r["preset"], r["tokens"]): r for r in torch["rows"]} if torch else {}
    print(f"#### MoE layer, single GPU, bf16, {ours['device']}, {ours['date']}\n")
    print("| preset | T | ours (ms) | timing | floor (ms) | ours of floor | torch eager (ms) | torch graph (ms) | vs eager | vs graph |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in ours["rows"]:
        preset = r["Name"].replace(" layer", "")
        tokens = int(r["Shape"].split()[0][2:])
        t = theirs.get((preset, tokens))
        ms, floor = r["Ms"], r["FloorMs"]
        eager = t["eager_ms"] if t else None
        graph = t["graph_ms"] if t and t.get("graph_ms") else None
        cells = [preset, str(tokens), f"{ms:.3f}", r["Note"], f"{floor:.3f}", f"{floor / ms:.0%}",
                 f"{eager:.3f}" if eager else "-", f"{graph:.3f}" if graph else "-",
                 f"{eager / ms:.2f}x" if eager else "-", f"{graph / ms:.2f}x" if graph else "-"]
        print("| " + " | ".join(cells) + " |")
    print()


if __name__ == "__main__":
    folder = sys.argv[1]
    for table in sys.argv[2:] or ["token_ops", "grouped_gemm", "moe_layer"]:
        globals()[table](folder)
