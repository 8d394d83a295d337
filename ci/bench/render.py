#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
"""Renders `cargo xtask bench` results as one PNG bar chart per benchmark.

Input: the JSON that `cargo xtask bench` writes, either a run's
{"metrics": [{"bench", "metric", "value"}, ...]} or the list of
{"bench", "metric", "base", "patched"} rows of `--compare-base`.
Usage: render.py RESULTS.json OUTDIR [TITLE-SUFFIX]
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    src, out = sys.argv[1], sys.argv[2]
    suffix = sys.argv[3] if len(sys.argv) > 3 else "TCG, absolute numbers emulated"
    data = json.load(open(src))
    rows = data["metrics"] if isinstance(data, dict) else data
    os.makedirs(out, exist_ok=True)
    benches = {}
    for r in rows:
        benches.setdefault(r["bench"], []).append(r)
    for bench, rs in benches.items():
        if bench == "sock_destroy" and isinstance(data, dict):
            sock_destroy_times(rs, out, suffix)
            rs = [r for r in rs if not r["metric"].endswith("_s")]
        # One unit per chart: group the metrics by their unit suffix.
        by_unit = {}
        for r in rs:
            unit = r["metric"].rsplit("_", 1)[-1]
            by_unit.setdefault(unit, []).append(r)
        for unit, us in by_unit.items():
            fig, ax = plt.subplots(figsize=(7, 3.2))
            names = [r["metric"][: -(len(unit) + 1)] or r["metric"] for r in us]
            if "patched" in us[0] and not any(r.get("base") for r in us):
                # Measured on the patched kernel only (the base lacks the
                # feature): plain bars.
                us = [dict(r, value=r["patched"]) for r in us]
            if "patched" in us[0] and any(r.get("base") for r in us):
                xs = range(len(us))
                w = 0.38
                base = [r["base"] or 0 for r in us]
                pat = [r["patched"] for r in us]
                ax.bar([x - w / 2 for x in xs], base, w, label="base 6.12")
                ax.bar([x + w / 2 for x in xs], pat, w, label="patched")
                ax.legend()
                for x, b, p in zip(xs, base, pat):
                    if b:
                        ax.annotate(f"{p / b:.2f}x", (x + w / 2, p), ha="center", va="bottom", fontsize=8)
            else:
                vals = [r["value"] for r in us]
                bars = ax.bar(names, vals, color="tab:blue")
                for b, v in zip(bars, vals):
                    ax.annotate(f"{v:.3g}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=8)
            ax.set_xticks(range(len(us)))
            ax.set_xticklabels(names, rotation=15, ha="right", fontsize=8)
            ax.set_ylabel(unit)
            ax.set_title(f"{bench} ({suffix})", fontsize=10)
            fig.tight_layout()
            path = os.path.join(out, f"{bench}-{unit}.png")
            fig.savefig(path, dpi=110)
            plt.close(fig)
            print(path)


def sock_destroy_times(rs, out, suffix):
    """Wall and run-phase seconds of both methods, grouped by configuration
    (`<method>_<phase>_<config>_s`)."""
    t = {}
    configs = []
    for r in rs:
        parts = r["metric"].split("_")
        if parts[-1] != "s" or len(parts) < 4:
            continue
        method, phase, config = parts[0], parts[1], "_".join(parts[2:-1])
        if phase not in ("wall", "run"):
            continue
        if config not in configs:
            configs.append(config)
        t[(method, phase, config)] = r["value"]
    if not t:
        return
    fig, ax = plt.subplots(figsize=(8, 3.6))
    series = [("bpf", "run"), ("bpf", "wall"), ("pinned", "wall"), ("diag", "run"), ("diag", "wall")]
    w = 0.16
    for i, (m, ph) in enumerate(series):
        xs = [x + (i - 2) * w for x in range(len(configs))]
        vals = [t.get((m, ph, c), 0) for c in configs]
        bars = ax.bar(xs, vals, w, label=f"{m} {ph}")
        for b, v in zip(bars, vals):
            ax.annotate(f"{v:.2g}", (b.get_x() + b.get_width() / 2, v), ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels(configs, fontsize=8)
    ax.set_ylabel("seconds")
    ax.legend(fontsize=8)
    ax.set_title(f"sock_destroy: 10k sockets, BPF iterators vs SOCK_DIAG ({suffix})", fontsize=10)
    fig.tight_layout()
    path = os.path.join(out, "sock_destroy-seconds.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(path)


if __name__ == "__main__":
    main()
