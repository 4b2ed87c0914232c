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


def charts(results, out):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("report: matplotlib missing (apt-get install python3-matplotlib): no charts", file=sys.stderr)
        return
    cases = {c["id"]: c for c in results["cases"]}
    # 1. The headline: VMDriver's speed relative to its anchor, per row that has a ratio.
    labels, speed, goal = [], [], []
    short = {
        "linked_clone": "linked clone", "full_clone": "full clone", "fleet": "20 clones + start",
        "open_list": "", "migrate_idle": "migrate idle", "migrate_copy": "migrate copy",
        "migrate_incremental": "migrate incr.",
    }
    for cid, case in cases.items():
        for r in case.get("rows", []):
            if r.get("ratio") is None or cid not in short or "allocated size" in r["measure"] \
                    or "16 GiB base vs" in r["measure"]:
                continue
            m = r["measure"]
            if cid == "linked_clone":
                name = "linked clone, " + ("16 GiB" if "16 GiB" in m else "1 GiB") + " base"
                s, g = 1 / r["ratio"], 1 / 1.5
            elif cid == "full_clone":
                name = "full clone, " + ("XFS reflink" if "xfs" in m else "ext4")
                s, g = r["ratio"], 0.95
            elif cid == "fleet":
                made_only = "not started" in m
                name = "20 linked clones, made only" if made_only else "20 linked clones + start"
                s, g = r["ratio"], (None if made_only else 10)
            elif cid == "open_list":
                name = "open by name" if m.startswith("open") else "list 200 VMs"
                s, g = 1 / r["ratio"], 0.5
            else:
                name, s, g = short[cid], 1 / r["ratio"], 1 / 1.1
            labels.append(name)
            speed.append(s)
            goal.append(g)
    if labels:
        fig, ax = plt.subplots(figsize=(8, 0.45 * len(labels) + 1.6))
        y = list(range(len(labels)))[::-1]
        colors = ["#888" if g is None else ("#2a7" if s >= g else "#c44") for s, g in zip(speed, goal)]
        ax.barh(y, speed, color=colors)
        marks = [(g, yi) for g, yi in zip(goal, y) if g is not None]
        ax.scatter([g for g, _ in marks], [yi for _, yi in marks], marker="|", s=400, color="black",
                   label="target", zorder=3)
        ax.axvline(1, color="grey", lw=0.8, ls="--")
        ax.set_xscale("log")
        ax.set_yticks(y)
        ax.set_yticklabels(labels)
        for yi, s in zip(y, speed):
            ax.text(s, yi, f" {s:.2f}×", va="center", fontsize=8)
        ax.set_xlabel("VMDriver speed relative to its anchor (anchor time / VMDriver time; >1 = faster)")
        ax.set_title(f"VMDriver vs virsh / qemu-img / virt-clone, medians of pair ratios"
                     f"{' (--quick)' if results['quick'] else ''}", fontsize=10)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        fig.savefig(os.path.join(out, "ratios.png"), dpi=110)
        plt.close(fig)
    # 2. Absolute times per case, VMDriver beside its anchors (medians).
    panels = []
    if "linked_clone" in cases and cases["linked_clone"].get("sizes"):
        s = cases["linked_clone"]["sizes"]
        panels.append(("linked clone (ms)", [
            (f"{k} VMDriver", 1e3 * _med(v["vmdriver"])) for k, v in s.items()] + [
            (f"{k} qemu-img+virsh", 1e3 * _med(v["anchor"])) for k, v in s.items()]))
    for fs in ("ext4", "xfs"):
        fc = cases.get("full_clone", {}).get(fs)
        if fc and fc.get("throughput_MiBps"):
            panels.append((f"full clone, {fs} (MiB/s{', log' if fs == 'xfs' else ''})",
                           list(fc["throughput_MiBps"].items())))
    if "fleet" in cases and cases["fleet"].get("vmdriver"):
        f = cases["fleet"]
        panels.append(("20 clones + start (s)", [("VMDriver", _med(f["vmdriver"])),
                                                 ("virt-clone+virsh", _med(f["anchor"]))]))
    ol = cases.get("open_list", {})
    for mode in ("open", "list"):
        if ol.get(mode):
            per = ol[mode]["per_call"]
            panels.append((f"{mode} per call (µs, log)", [(k, 1e6 * _med(v)) for k, v in per.items()]))
    mig = [(cid, cases[cid]) for cid in ("migrate_idle", "migrate_copy", "migrate_incremental")
           if cases.get(cid, {}).get("runs")]
    if mig:
        data = []
        for cid, c in mig:
            short = cid.replace("migrate_", "")
            for who, label in (("vmdriver", "VMDriver"), ("virsh", "virsh")):
                walls = [x["wall"] for x in c["runs"][who] if x.get("wall") is not None]
                if walls:
                    data.append((f"{short} {label}", _med(walls)))
        panels.append(("hot migration wall (s)", data))
    if cases.get("clone_latency", {}).get("samples"):
        panels.append(("latency", cases["clone_latency"]["samples"]))
    if panels:
        n = len(panels)
        cols = 3
        rows = (n + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(12, 3.3 * rows))
        axes = [a for row in (axes if rows > 1 else [axes]) for a in row]
        for ax, (title, data) in zip(axes, panels):
            if title == "latency":
                ms = [1e3 * x for x in data]
                ax.hist(ms, bins=30, color="#47a")
                p50 = sorted(ms)[len(ms) // 2]
                p99 = sorted(ms)[max(0, min(len(ms) - 1, int(round(0.99 * len(ms) + 0.5)) - 1))]
                ax.axvline(p50, color="black", label=f"p50 {p50:.1f} ms")
                ax.axvline(p99, color="red", label=f"p99 {p99:.1f} ms")
                ax.set_title("library linked clone latency (ms, 100 clones)", fontsize=9)
                ax.legend(fontsize=7)
                continue
            names = [k for k, _ in data]
            values = [v for _, v in data]
            colors = ["#2a7" if k.lower().startswith("vmdriver") or "VMDriver" in k else "#888" for k in names]
            ax.bar(range(len(names)), values, color=colors)
            ax.set_xticks(range(len(names)))
            ax.set_xticklabels(names, rotation=25, ha="right", fontsize=7)
            if "log" in title:
                ax.set_yscale("log")
            ax.set_title(title, fontsize=9)
        for ax in axes[len(panels):]:
            ax.axis("off")
        fig.tight_layout()
        fig.savefig(os.path.join(out, "cases.png"), dpi=100)
        plt.close(fig)


def _med(xs):
    s = sorted(xs)
    n = len(s)
    return (s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2) if n else 0


if __name__ == "__main__":
    folder = sys.argv[1] if len(sys.argv) > 1 else "bench"
    with open(os.path.join(folder, "results.json")) as f:
        res = json.load(f)
    with open(os.path.join(folder, "results.md"), "w") as f:
        f.write(markdown(res))
    charts(res, folder)
