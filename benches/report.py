#!/usr/bin/env python3
"""Turns criterion's results into the Markdown table in benches/README.md.

Reads <target>/criterion/<group>/<implementation>/new/estimates.json for every group whose
name starts with one of the given prefixes, and prints one row per operation: the median of
each implementation and the ratios of vodozemac's and libolm's medians to ferrolm's
(above 1: ferrolm is faster). The prefix `store` prints its own table, ferrolm-store against
matrix-sdk-sqlite, with the file sizes the store bench records in
<target>/criterion/store_file_size/<implementation>.json. The prefix `backup` prints the
machine's backup restore against matrix-sdk-crypto's, with the load averages the bench recorded
in <target>/criterion/backup_load/<implementation>.json; the prefix `machine` prints
ferrolm-machine against matrix-sdk-crypto, with the bare core Megolm decryption.
Usage: report.py TARGET_DIR [PREFIX ...]
"""
import json
import os
import sys

IMPLEMENTATIONS = ["ferrolm", "vodozemac", "libolm"]
STORES = ["ferrolm", "matrix-sdk-sqlite"]
MACHINES = ["ferrolm", "matrix-sdk-crypto"]


def median_ns(path):
    with open(path) as f:
        return json.load(f)["median"]["point_estimate"]


def fmt(ns):
    for unit, scale in (("s", 1e9), ("ms", 1e6), ("µs", 1e3)):
        if ns >= scale:
            return f"{ns / scale:.3g} {unit}" if ns / scale < 100 else f"{ns / scale:.0f} {unit}"
    return f"{ns:.0f} ns"


def group_medians(root, group, implementations):
    medians = {}
    for impl in implementations:
        path = os.path.join(root, group, impl, "new", "estimates.json")
        if os.path.exists(path):
            medians[impl] = median_ns(path)
    return medians


def store_table(root):
    """ferrolm-store against matrix-sdk-sqlite: medians, ratio, and the file size row."""
    print("| store operation | ferrolm | matrix-sdk-sqlite | matrix-sdk-sqlite / ferrolm |")
    print("| --- | ---: | ---: | ---: |")
    for group in sorted(os.listdir(root)):
        if not group.startswith("store"):
            continue
        medians = group_medians(root, group, STORES)
        if len(medians) != len(STORES):
            continue
        with open(os.path.join(root, group, "ferrolm", "new", "benchmark.json")) as f:
            name = json.load(f)["group_id"]
        ours, theirs = medians["ferrolm"], medians["matrix-sdk-sqlite"]
        print(f"| {name} | {fmt(ours)} | {fmt(theirs)} | {theirs / ours:.2f}× |")
    sizes = {}
    for impl in STORES:
        path = os.path.join(root, "store_file_size", f"{impl}.json")
        if os.path.exists(path):
            with open(path) as f:
                recorded = json.load(f)
            sizes[impl] = recorded["bytes"] / recorded["room_keys"] * 100000
    if len(sizes) == len(STORES):
        ours, theirs = sizes["ferrolm"], sizes["matrix-sdk-sqlite"]
        print(f"| store/file_size_per_100000_room_keys (bytes, not time) | {ours / 1e6:.1f} MB | "
              f"{theirs / 1e6:.1f} MB | {theirs / ours:.2f}× |")


def backup_table(root):
    """The machine's backup restore against matrix-sdk-crypto's, with the load the bench saw."""
    print("| operation | ferrolm | matrix-sdk-crypto | matrix-sdk-crypto / ferrolm | CPU s per restore (median), ferrolm / matrix-sdk-crypto | load average (1 min) during the runs |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    for group in sorted(os.listdir(root)):
        if not group.startswith("backup") or group == "backup_load":
            continue
        medians = group_medians(root, group, MACHINES)
        if len(medians) != len(MACHINES):
            continue
        with open(os.path.join(root, group, "ferrolm", "new", "benchmark.json")) as f:
            name = json.load(f)["group_id"]
        loads, cpus = [], []
        for impl in MACHINES:
            path = os.path.join(root, "backup_load", f"{impl}.json")
            if os.path.exists(path):
                with open(path) as f:
                    recorded = json.load(f)
                seen, cpu = recorded["load_1min"], sorted(recorded.get("cpu_s", []))
                if seen:
                    loads.append(f"{impl} {min(seen):.2f}–{max(seen):.2f}")
                if cpu:
                    cpus.append(f"{cpu[len(cpu) // 2]:.2f}")
        ours, theirs = medians["ferrolm"], medians["matrix-sdk-crypto"]
        print(f"| {name} | {fmt(ours)} | {fmt(theirs)} | {theirs / ours:.2f}× | {' / '.join(cpus)} | {'; '.join(loads)} |")


def machine_table(root):
    """ferrolm-machine against matrix-sdk-crypto: medians and ratio; the bare Megolm row."""
    print("| machine operation | ferrolm | matrix-sdk-crypto | matrix-sdk-crypto / ferrolm |")
    print("| --- | ---: | ---: | ---: |")
    bare = group_medians(root, "machine_megolm_decrypt_bare", ["ferrolm"]).get("ferrolm")
    warm = None
    for group in sorted(os.listdir(root)):
        if not group.startswith("machine") or group == "machine_megolm_decrypt_bare":
            continue
        medians = group_medians(root, group, MACHINES)
        if len(medians) != len(MACHINES):
            continue
        with open(os.path.join(root, group, "ferrolm", "new", "benchmark.json")) as f:
            name = json.load(f)["group_id"]
        ours, theirs = medians["ferrolm"], medians["matrix-sdk-crypto"]
        if name == "machine/decrypt_room_event_warm":
            warm = ours
        print(f"| {name} | {fmt(ours)} | {fmt(theirs)} | {theirs / ours:.2f}× |")
    if bare:
        print(f"| machine/megolm_decrypt_bare (the core alone, same message) | {fmt(bare)} | – | – |")
        if warm:
            print()
            print(f"decrypt_room_event warm is {warm / bare:.2f}× the bare core Megolm decryption of the same message.")


def main():
    target = sys.argv[1]
    prefixes = sys.argv[2:] or [""]
    root = os.path.join(target, "criterion")
    if "machine" in prefixes:
        machine_table(root)
        prefixes = [p for p in prefixes if p != "machine"]
        if not prefixes:
            return
        print()
    if "store" in prefixes:
        store_table(root)
        prefixes = [p for p in prefixes if p != "store"]
        if not prefixes:
            return
        print()
    if "backup" in prefixes:
        backup_table(root)
        prefixes = [p for p in prefixes if p != "backup"]
        if not prefixes:
            return
        print()
    rows = []
    for group in sorted(os.listdir(root)):
        if group == "report" or group.startswith(("store", "backup", "machine")) or not any(group.startswith(p) for p in prefixes):
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
