"""The Markdown table and the PNG charts for bench/results.json (bench.py calls these; also
`python3 bench/py/report.py bench` redraws them from a results.json)."""
import json
import os
import sys


def fmt(value, unit):
    if value is None:
        return "—"
    if unit == "s":
        if value < 1e-3:
            return f"{value * 1e6:.0f} µs"
        if value < 1:
            return f"{value * 1e3:.1f} ms"
        return f"{value:.2f} s"
    if unit == "bytes":
        if value >= 1 << 30:
            return f"{value / (1 << 30):.2f} GiB"
        return f"{value / (1 << 20):.1f} MiB"
    if unit == "MiB/s":
        return f"{value:.0f} MiB/s"
    if unit == "ms":
        return f"{value:.0f} ms"
    return f"{value:.3g} {unit}"


def verdict(met):
    return "—" if met is None else ("**met**" if met else "**missed**")


def markdown(results):
    m = results["machine"]
    lines = [
        f"Command: `{results['command']}`{' (quick)' if results['quick'] else ''} — {results['date']}, "
        f"commit {results['commit']}, {results.get('total_seconds', 0):.0f} s in all",
        "",
        f"Machine: {m.get('cpu')}, {m.get('cores')} cores, {m.get('memory_bytes', 0) / (1 << 30):.0f} GiB, "
        f"{m.get('os')}, kernel {m.get('kernel')}, libvirt {m.get('libvirt')}, QEMU {m.get('qemu')}, "
        f"{m.get('virt_clone') and 'virt-clone ' + m['virt_clone']}, {m.get('accelerator')}, /var/lib on {m.get('root_fs')}",
        "",
        "| case | measure | VMDriver | anchor | anchor value | ratio (median of pairs) | target | verdict |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for case in results["cases"]:
        if case["status"] != "ok" and not case.get("rows"):
            lines.append(f"| {case['id']} | {case['title']} | — | — | — | — | — | **{case['status']}**: "
                         f"{case.get('reason', '').replace('|', '/')[:300]} |")
            continue
        for r in case["rows"]:
            ratio = "—" if r.get("ratio") is None else f"{r['ratio']:.2f}×"
            extra = []
            if r.get("downtime_ms") is not None or r.get("anchor_downtime_ms") is not None:
                extra.append(f"downtime {fmt_ms(r.get('downtime_ms'))} vs {fmt_ms(r.get('anchor_downtime_ms'))}")
            if r.get("bytes") or r.get("anchor_bytes"):
                extra.append(f"on the wire {fmt(r.get('bytes'), 'bytes')} vs {fmt(r.get('anchor_bytes'), 'bytes')}"
                             + (f", vmctl reports {fmt(r['reported_bytes'], 'bytes')}" if r.get("reported_bytes") else ""))
            if r.get("python") is not None:
                extra.append(f"python-libvirt {fmt(r['python'], 's')}, virsh per process {fmt(r['virsh'], 's')}")
            if r.get("note"):
                extra.append(r["note"])
            measure = r["measure"] + (f" ({'; '.join(extra)})" if extra else "")
            lines.append(f"| {case['id']} | {measure} | {fmt(r['vmdriver'], r['unit'])} | {r['anchor_name']} | "
                         f"{fmt(r['anchor'], r['unit'])} | {ratio} | {r['target']} | {verdict(r['met'])} |")
        if case["status"] != "ok":
            lines.append(f"| {case['id']} | (case {case['status']}) | — | — | — | — | — | "
                         f"{case.get('reason', '').replace('|', '/')[:300]} |")
    return "\n".join(lines) + "\n"


def fmt_ms(v):
    return "—" if v is None else f"{v:.0f} ms"


def every_run(results):
    """Every run of every row, failures included (✘), in the order they ran."""
    lines = ["", "Every run (in round order; ✘ = a failed run, counted as infinitely slow in the medians and ratios):", ""]
    for case in results["cases"]:
        for r in case.get("rows", []):
            parts = []
            for key, who in (("vm_runs", "VMDriver"), ("anchor_runs", r.get("anchor_name") or "anchor")):
                if r.get(key) is not None:
                    parts.append(f"{who}: " + ", ".join("✘" if x is None else fmt(x, r["unit"]) for x in r[key]))
            if parts:
                lines.append(f"- {case['id']}, {r['measure']}: " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def charts(results, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib missing (apt-get install python3-matplotlib): no charts", file=sys.stderr)
        return
    rows = [(c["id"], r) for c in results["cases"] for r in c.get("rows", [])]
    # 1. The headline: VMDriver's speed relative to its anchor (rows that place themselves on it).
    placed = [(cid, r) for cid, r in rows if r.get("speed") is not None]
    if placed:
        labels = [f"{cid}: {r['measure'][:48]}" for cid, r in placed]
        speed = [max(r["speed"], 1e-3) for _, r in placed]
        goal = [r.get("goal") for _, r in placed]
        fig, ax = plt.subplots(figsize=(10, 0.45 * len(labels) + 1.6))
        y = list(range(len(labels)))[::-1]
        # Coloured by the row's verdict (a target can ask more than speed: the dirty guest's
        # downtime too), grey where the row has no target.
        colors = ["#888" if r.get("met") is None else ("#2a7" if r["met"] else "#c44") for _, r in placed]
        ax.barh(y, speed, color=colors)
        marks = [(g, yi) for g, yi in zip(goal, y) if g is not None]
        ax.scatter([g for g, _ in marks], [yi for _, yi in marks], marker="|", s=400, color="black",
                   label="target", zorder=3)
        ax.axvline(1, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_yticks(y)
        ax.set_yticklabels(labels, fontsize=7)
        for yi, s in zip(y, speed):
            ax.text(s, yi, f" {s:.2f}×", va="center", fontsize=7)
        ax.set_xlabel("VMDriver speed relative to its anchor (>1 = faster; throughput ratio for full clones)")
        ax.set_title(f"VMDriver vs its anchors, medians of pair ratios, failures counted (green: target met)"
                     f"{' (--quick)' if results['quick'] else ''}", fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "ratios.png"), dpi=110)
        plt.close(fig)
    # 2. Every run of each row that has runs on both sides: dots per run, a bar at the median,
    # a red cross (at the top) per failed run.
    panels = [(cid, r) for cid, r in rows if r.get("vm_runs") and r.get("anchor_runs")][:15]
    if panels:
        cols = 3
        nrows = (len(panels) + cols - 1) // cols
        fig, axes = plt.subplots(nrows, cols, figsize=(13, 3.2 * nrows), squeeze=False)
        flat = [a for line in axes for a in line]
        for ax, (cid, r) in zip(flat, panels):
            scale, unit = (1e3, "ms") if r["unit"] == "s" and (r.get("vmdriver") or 1) < 1 else \
                ((1.0, "s") if r["unit"] == "s" else ((1 / (1 << 20), "MiB") if r["unit"] == "bytes" else (1.0, r["unit"])))
            sides = [("VMDriver", r["vm_runs"], "#2a7"), ((r.get("anchor_name") or "anchor")[:28], r["anchor_runs"], "#888")]
            top = max([x for _, xs, _ in sides for x in xs if x is not None] or [1]) * scale * 1.15
            for k, (name, xs, color) in enumerate(sides):
                ok = [x * scale for x in xs if x is not None]
                if ok:
                    ax.bar(k, sorted(ok)[len(ok) // 2], color=color, alpha=0.5, width=0.6)
                    ax.scatter([k] * len(ok), ok, color="black", s=10, zorder=3)
                bad = sum(1 for x in xs if x is None)
                if bad:
                    ax.scatter([k] * bad, [top] * bad, marker="x", color="red", s=40, zorder=4)
            ax.set_xticks([0, 1])
            ax.set_xticklabels([n for n, _, _ in sides], fontsize=7)
            ax.set_ylim(0, top * 1.05)
            ax.set_title(f"{cid}: {r['measure'][:60]} ({unit})", fontsize=7)
        for ax in flat[len(panels):]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "cases.png"), dpi=100)
        plt.close(fig)


if __name__ == "__main__":
    folder = sys.argv[1] if len(sys.argv) > 1 else "bench"
    with open(os.path.join(folder, "results.json")) as f:
        res = json.load(f)
    with open(os.path.join(folder, "results.md"), "w") as f:
        f.write(markdown(res) + every_run(res))
    charts(res, folder)
