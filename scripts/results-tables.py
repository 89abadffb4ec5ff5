#!/usr/bin/env python3
"""Markdown tables of a sweep CSV (relu-iht sweep): mean over seeds per (method, layers, m, s).

Usage: scripts/results-tables.py results/figure-1-quick.csv [...]
"""
import csv
import math
import sys
from collections import defaultdict


def fmt(metric, v):
    if v is None:
        return "–"
    if math.isnan(v):
        return "diverged"
    if math.isinf(v):
        return "exact"
    return f"{100 * v:.1f}%" if metric == "accuracy" else f"{v:.1f}"


def table(path):
    rows = list(csv.DictReader(open(path)))
    if not rows:
        return f"(no rows in {path})\n"
    metric = rows[0]["metric"]
    cells = defaultdict(list)
    for r in rows:
        v = float(r["value"])
        cells[(r["method"], int(r["layers"]), int(r["m"]), int(r["s"]))].append(v)
    ms = sorted({k[2] for k in cells})
    ss = sorted({k[3] for k in cells})
    out = []
    for layers in sorted({k[1] for k in cells}):
        methods = sorted({k[0] for k in cells if k[1] == layers})
        out.append(f"L = {layers}, {metric}, " + " / ".join(m.upper() for m in methods) + " per cell:\n")
        out.append("| m \\ s | " + " | ".join(str(s) for s in ss) + " |")
        out.append("| ---: |" + " ---: |" * len(ss))
        for m in ms:
            line = []
            for s in ss:
                vals = []
                for meth in methods:
                    v = cells.get((meth, layers, m, s))
                    if not v:
                        vals.append("–")
                    elif any(math.isnan(x) for x in v):
                        vals.append("diverged")
                    else:
                        vals.append(fmt(metric, sum(v) / len(v)))
                line.append(" / ".join(vals))
            out.append(f"| {m} | " + " | ".join(line) + " |")
        out.append("")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    for p in sys.argv[1:]:
        print(f"`{p}`\n")
        print(table(p))
