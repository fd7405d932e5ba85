#!/usr/bin/env python3
"""Turns criterion's results into the Markdown table in benches/README.md.

Reads <target>/criterion/<group>/<implementation>/new/estimates.json for every group whose
name starts with one of the given prefixes, and prints one row per operation: the median of
each implementation and the ratios of vodozemac's and libolm's medians to ferrolm's
(above 1: ferrolm is faster).
Usage: report.py TARGET_DIR [PREFIX ...]
"""
import json
import os
import sys

IMPLEMENTATIONS = ["ferrolm", "vodozemac", "libolm"]


def median_ns(path):
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


def fmt(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns / scale < 100 else f"{ns / scale:.0f} {unit}"
    return f"{ns:.0f} ns"


def main():
    target = sys.argv[1]
    prefixes = sys.argv[2:] or [""]
    root = os.path.join(target, "criterion")
    rows = []
    for group in sorted(os.listdir(root)):
        if group == "report" or not any(group.startswith(p) for p in prefixes):
            continue
        medians = {}
        for impl in IMPLEMENTATIONS:
            path = os.path.join(root, group, impl, "new", "estimates.json")
            if os.path.exists(path):
                medians[impl] = median_ns(path)
        if "ferrolm" not in medians:
            continue
        ratios = [medians[peer] / medians["ferrolm"] if peer in medians else None for peer in ("vodozemac", "libolm")]
        with open(os.path.join(root, group, "ferrolm", "new", "benchmark.json")) as f:
            name = json.load(f)["group_id"]  # criterion's folder names replace '/' and '^'
        rows.append((name, medians, ratios))
    print("| operation | ferrolm | vodozemac | libolm | vs vodozemac | vs libolm |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for name, medians, ratios in rows:
        cells = [fmt(medians[i]) if i in medians else "–" for i in IMPLEMENTATIONS]
        cells += [f"{r:.2f}×" if r else "–" for r in ratios]
        print(f"| {name} | {' | '.join(cells)} |")
    # Derived: how much faster ferrolm's parallel backup restore is than its own sequential one.
    by_name = {name: medians for name, medians, _ in rows}
    sequential = by_name.get("pk/restore_100000_sequential", {}).get("ferrolm")
    parallel = by_name.get("pk/restore_100000_parallel", {}).get("ferrolm")
    if sequential and parallel:
        cores = os.cpu_count()
        print()
        print(f"Backup restore, 100,000 sessions: ferrolm's parallel `decrypt_many` runs "
              f"{sequential / parallel:.2f}× the sequential rate on {cores} cores "
              f"({100000 / (parallel / 1e9):,.0f} sessions/s against {100000 / (sequential / 1e9):,.0f}).")


if __name__ == "__main__":
    main()
