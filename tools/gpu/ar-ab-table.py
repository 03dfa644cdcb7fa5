#!/usr/bin/env python3
"""AllReduce A/B table: `ar-ab-table.py OUT v1 v2 ...` reads OUT/ar-<v>.json (moe bench allreduce --json) for each
variant and prints, per algorithm, one column per variant that has it and one row per size (us; the first variant's
pick, e.g. TwoShot(ll), after the row)."""
import json
import os
import sys

out, order = sys.argv[1], sys.argv[2:]
rows = {}
for v in order:
    path = os.path.join(out, f"ar-{v}.json")
    if not os.path.exists(path):
        continue
    for r in json.load(open(path))["rows"]:
        rows[(v, r["Algorithm"], r["Bytes"])] = (r["TimeUs"], r["Picked"])
sizes = sorted({k[2] for k in rows})
for algo in ["TwoShot", "OneShot", "Nccl"]:
    variants = [v for v in order if any(k[0] == v and k[1] == algo for k in rows)]
    if not variants:
        continue
    print(f"{algo:8} " + " ".join(f"{v:>10}" for v in variants))
    for s in sizes:
        times = " ".join(f"{rows.get((v, algo, s), (float('nan'), ''))[0]:10.2f}" for v in variants)
        print(f"{s:8} {times}  {rows.get((variants[0], algo, s), (0, ''))[1]}")
