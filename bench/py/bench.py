#!/usr/bin/python3
"""VMDriver's benchmark harness (BENCHMARKS.md). Run through scripts/bench.sh, which installs the
tools, starts the daemons, builds vmctl, vmbench and the C anchor, then calls:

  bench.py --vmctl PATH --vmbench PATH --lookup PATH --out DIR [--quick] [--cases a,b] [--no-migration]
  bench.py --cleanup          remove everything a (crashed) run left behind

Every case runs VMDriver and its anchor(s) in the same run, interleaved (A B, B A, ...), and
reports medians over several runs and the median of the pair-by-pair ratios. Commands are
argument lists: nothing goes through a shell. Everything made is named vmdriver-bench-* and
removed at the end of its case, and again by --cleanup (scripts/bench.sh's trap).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from xml.sax.saxutils import escape

PREFIX = "vmdriver-bench-"
LOCAL = "qemu:///system"
WORK = "/var/lib/vmdriver-bench"
XFS_IMAGE = WORK + "/xfs.img"
XFS_MOUNT = WORK + "/xfs"
FIXTURES = os.environ.get("VMDRIVER_FIXTURES", "/var/cache/vmdriver/fixtures")
TESTBED = os.environ.get("VMDRIVER_TESTBED", "/var/lib/vmdriver-testbed")
SHARED = TESTBED + "/shared"
HOSTS = {"hosta": "10.77.0.1", "hostb": "10.77.0.2"}
GiB = 1 << 30
MiB = 1 << 20


def log(*words):
    print("bench:", *words, file=sys.stderr, flush=True)


# --- running things --------------------------------------------------------------------------

class Failed(Exception):
    pass


def run(argv, check=True, timeout=None, env=None):
    """Runs argv; returns (seconds, stdout, stderr, status)."""
    start = time.monotonic()
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as e:
        raise Failed(f"{argv[0]} timed out after {timeout} s") from e
    seconds = time.monotonic() - start
    if check and p.returncode != 0:
        raise Failed(f"{' '.join(argv)} exited {p.returncode}: {p.stderr.strip()[-600:]}")
    return seconds, p.stdout, p.stderr, p.returncode


def run_peak(argv, timeout=None):
    """Runs argv, polling its VmHWM (peak resident set of that process itself) every 20 ms.
    Returns (seconds, stdout, stderr, status, hwm_bytes, maxrss_bytes) where maxrss is
    wait4's ru_maxrss (the process or its largest reaped descendant, e.g. cp)."""
    start = time.monotonic()
    out = tempfile.TemporaryFile(mode="w+")
    err = tempfile.TemporaryFile(mode="w+")
    p = subprocess.Popen(argv, stdout=out, stderr=err, text=True)
    hwm = 0
    deadline = start + timeout if timeout else None
    while True:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        hwm = max(hwm, int(line.split()[1]) * 1024)
        except (FileNotFoundError, ProcessLookupError, ValueError):
            pass
        pid, status, usage = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if deadline and time.monotonic() > deadline:
            p.kill()
            os.wait4(p.pid, 0)
            raise Failed(f"{argv[0]} timed out after {timeout} s")
        time.sleep(0.02)
    seconds = time.monotonic() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    err.seek(0)
    return seconds, out.read(), err.read(), p.returncode, hwm, usage.ru_maxrss * 1024


def virsh(uri, *args, check=True, timeout=120):
    return run(["virsh", "-q", "-c", uri, *args], check=check, timeout=timeout)


def sync():
    run(["sync"])


def allocated(path):
    return os.stat(path).st_blocks * 512


def rm(*paths):
    for p in paths:
        if os.path.isdir(p) and not os.path.islink(p):
            shutil.rmtree(p, ignore_errors=True)
        else:
            try:
                os.unlink(p)
            except FileNotFoundError:
                pass


# --- statistics ------------------------------------------------------------------------------

def median(xs):
    return statistics.median(xs) if xs else None


def percentile(xs, q):
    """Nearest-rank percentile."""
    if not xs:
        return None
    s = sorted(xs)
    k = max(0, min(len(s) - 1, int(round(q / 100 * len(s) + 0.5)) - 1))
    return s[k]


def ratios(pairs):
    """Median of a/b over the pairs, and the list."""
    rs = [a / b for a, b in pairs if a is not None and b]
    return median(rs), rs


# --- guests ----------------------------------------------------------------------------------

def domain_xml(name, disk, serial, tag="bench", dirty_mib=0, dirty_rate=0, pty_console=False):
    with open(os.path.join(FIXTURES, "linux-domain.xml.in")) as f:
        text = f.read()
    cmd_tag = escape(tag) + (f" vmdriver.dirty={int(dirty_mib)}" if dirty_mib else "")
    cmd_tag += f" vmdriver.dirtyrate={int(dirty_rate)}" if dirty_rate else ""
    values = {"@NAME@": escape(name), "@DISK@": escape(disk), "@SERIAL@": escape(serial),
              "@KERNEL@": escape(FIXTURES + "/vmlinuz"), "@INITRD@": escape(FIXTURES + "/initrd.img"),
              "@TAG@": cmd_tag, "@DOMAIN_TYPE@": "qemu"}
    for k, v in values.items():
        text = text.replace(k, v)
    if pty_console:
        # virt-clone keeps a file serial's path, and two guests cannot share one log file.
        text = re.sub(r"<serial type='file'>.*?</serial>", "<serial type='pty'><target port='0'/></serial>", text,
                      flags=re.S)
        text = re.sub(r"<console type='file'>.*?</console>",
                      "<console type='pty'><target type='serial' port='0'/></console>", text, flags=re.S)
    return text


def define(uri, name, disk, serial, directory, **kw):
    path = os.path.join(directory, name + ".xml")
    with open(path, "w") as f:
        f.write(domain_xml(name, disk, serial, **kw))
    virsh(uri, "define", path)
    return path


def remove_domains(uri, prefix=PREFIX, timeout=20):
    try:
        _, out, _, rc = virsh(uri, "list", "--all", "--name", check=False, timeout=timeout)
    except Failed:
        return
    if rc != 0:
        return
    names = [n for n in out.split() if n.startswith(prefix)]

    def remove(name):
        virsh(uri, "destroy", name, check=False, timeout=timeout)
        virsh(uri, "undefine", "--snapshots-metadata", "--managed-save", name, check=False, timeout=timeout)

    # In parallel: a destroy waits ~2 s for PID 1 here to reap QEMU (PLATFORM.md).
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(remove, names))


def remove_pools_under(folder, uri=LOCAL):
    """virt-clone defines (autostarted) storage pools for the folders it writes to: remove
    those under our work folder, so every run starts from the same host state."""
    _, out, _, rc = virsh(uri, "pool-list", "--all", "--name", check=False, timeout=30)
    for pool in out.split() if rc == 0 else []:
        _, xml, _, rc = virsh(uri, "pool-dumpxml", pool, check=False, timeout=30)
        m = re.search(r"<path>([^<]*)</path>", xml)
        if rc == 0 and m and (m.group(1) + "/").startswith(folder.rstrip("/") + "/"):
            virsh(uri, "pool-destroy", pool, check=False, timeout=30)
            virsh(uri, "pool-undefine", pool, check=False, timeout=30)


def make_disk(path, virtual_gib, data_bytes, base=None):
    """A qcow2 image of virtual_gib with data_bytes of incompressible data in 64 MiB chunks spread
    over the disk, after the fixture's 64 MiB ext4 filesystem when `base` (data.qcow2) is given,
    so the guest still boots and mounts it."""
    raw = path + ".raw"
    rm(raw)
    if base:
        run(["qemu-img", "convert", "-O", "raw", base, raw])
    with open(raw, "ab") as f:
        f.truncate(virtual_gib * GiB)
    chunk = 64 * MiB
    first = 64 * MiB if base else 0
    n = data_bytes // chunk
    span = virtual_gib * GiB - first
    step = max(chunk, (span // max(n, 1)) // chunk * chunk)
    block = os.urandom(chunk)
    with open(raw, "r+b") as f:
        for i in range(n):
            f.seek(first + i * step)
            # vary each chunk so nothing dedups or compresses
            f.write(block[i:] + block[:i])
    run(["qemu-img", "convert", "-O", "qcow2", raw, path])
    rm(raw)
    os.chmod(path, 0o644)


# --- the context every case gets -------------------------------------------------------------

class Context:
    def __init__(self, args):
        self.quick = args.quick
        self.vmctl = args.vmctl
        self.vmbench = args.vmbench
        self.lookup = args.lookup
        self.pylookup = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lookup.py")
        self.testbed = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "testbed.sh")

    def reps(self, quick, full):
        return quick if self.quick else full


def row(measure, vmdriver, anchor, anchor_name, ratio, target, met, unit="s", note=None, **extra):
    r = {"measure": measure, "vmdriver": vmdriver, "anchor": anchor, "anchor_name": anchor_name,
         "ratio": ratio, "target": target, "met": met, "unit": unit}
    if note:
        r["note"] = note
    r.update(extra)
    return r


# --- case: linked clone vs qemu-img create -b + virsh define ---------------------------------

def case_linked_clone(ctx):
    d = WORK + "/linked"
    rm(d)
    os.makedirs(d + "/clones")
    reps = ctx.reps(5, 15)
    result = {"runs": reps, "sizes": {}}
    rows = []
    medians = {}
    try:
        for gib in (1, 16):
            src = f"{PREFIX}linked-{gib}g"
            base = f"{d}/{src}.qcow2"
            # preallocation=falloc: every cluster allocated (du = the size), in a second.
            run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=falloc", base, f"{gib}G"])
            os.chmod(base, 0o644)
            define(LOCAL, src, base, f"{d}/{src}.serial", d)
            # Warm-up, untimed: VMDriver's first linked clone freezes the source (external
            # disk-only snapshot); later clones of the shut-off source reuse that frozen base,
            # which is what the anchor clones from too.
            run([ctx.vmctl, "clone", src, f"{src}-warm", "--linked", "--dest", d + "/clones"])
            run([ctx.vmctl, "delete", f"{src}-warm", "--with-storage"])
            frozen = base
            anchor_xml_template = domain_xml("@N@", "@D@", f"{d}/anchor.serial")
            vm_t, an_t, pairs = [], [], []
            for i in range(reps):
                order = ["vmdriver", "anchor"] if i % 2 == 0 else ["anchor", "vmdriver"]
                t = {}
                for who in order:
                    name = f"{src}-{who}-{i}"
                    if who == "vmdriver":
                        t[who] = run([ctx.vmctl, "clone", src, name, "--linked", "--dest", d + "/clones"])[0]
                    else:
                        overlay = f"{d}/clones/{name}-vda.qcow2"
                        xml = f"{d}/clones/{name}.xml"
                        with open(xml, "w") as f:
                            f.write(anchor_xml_template.replace("@N@", name).replace("@D@", overlay))
                        a = run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", frozen, overlay])[0]
                        b = run(["virsh", "-q", "-c", LOCAL, "define", xml])[0]
                        t[who] = a + b
                    virsh(LOCAL, "undefine", name)
                    for f in os.listdir(d + "/clones"):
                        if f.startswith(name + "-") or f == name + ".xml":
                            rm(os.path.join(d, "clones", f))
                vm_t.append(t["vmdriver"])
                an_t.append(t["anchor"])
                pairs.append((t["vmdriver"], t["anchor"]))
            r, rs = ratios(pairs)
            medians[gib] = median(vm_t)
            result["sizes"][f"{gib}GiB"] = {"vmdriver": vm_t, "anchor": an_t, "ratios": rs,
                                           "base_allocated": allocated(base)}
            rows.append(row(f"linked clone, base {gib} GiB allocated (vmctl, process start included)",
                            median(vm_t), median(an_t), "qemu-img create -b + virsh define", r,
                            "≤ 1.5× anchor", r is not None and r <= 1.5))
        spread = abs(medians[16] / medians[1] - 1)
        result["size_difference"] = spread
        rows.append(row("VMDriver's time, 16 GiB base vs 1 GiB base", medians[16], medians[1], "VMDriver at 1 GiB",
                        medians[16] / medians[1], "differs < 10%", spread < 0.10))
    finally:
        remove_domains(LOCAL, PREFIX + "linked-")
        rm(d)
    result["rows"] = rows
    return result


# --- case: library-level linked clone latency ------------------------------------------------

def case_clone_latency(ctx):
    d = WORK + "/latency"
    rm(d)
    os.makedirs(d + "/clones")
    src = PREFIX + "latency"
    try:
        base = f"{d}/{src}.qcow2"
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=falloc", base, "1G"])
        define(LOCAL, src, base, f"{d}/{src}.serial", d)
        _, out, _, _ = run([ctx.vmbench, "clone-latency", src, "--count", "100", "--prefix", src + "-c",
                            "--dest", d + "/clones"], timeout=600)
        samples = json.loads(out)["samples"]
    finally:
        remove_domains(LOCAL, src)
        rm(d)
    p50, p99 = median(samples), percentile(samples, 99)
    return {"samples": samples, "rows": [
        row("library linked clone latency p50 (clone() to result, 100 clones)", p50, None, "—", None,
            "reported", None),
        row("library linked clone latency p99", p99, None, "—", None, "reported", None)]}


# --- case: full clone ------------------------------------------------------------------------

class XFS:
    """An XFS loop image with reflink, mounted for the case and removed after it."""

    def __init__(self):
        self.device = None

    def __enter__(self):
        os.makedirs(XFS_MOUNT, exist_ok=True)
        rm(XFS_IMAGE)
        with open(XFS_IMAGE, "wb") as f:
            f.truncate(12 * GiB)
        run(["mkfs.xfs", "-q", "-m", "reflink=1", XFS_IMAGE])
        self.device = run(["losetup", "-f", "--show", XFS_IMAGE])[1].strip()
        run(["mount", self.device, XFS_MOUNT])
        os.chmod(XFS_MOUNT, 0o755)
        return XFS_MOUNT

    def __exit__(self, *exc):
        unmount_xfs()


def unmount_xfs():
    if os.path.ismount(XFS_MOUNT):
        run(["umount", XFS_MOUNT], check=False)
    _, out, _, _ = run(["losetup", "-j", XFS_IMAGE], check=False)
    for line in out.splitlines():
        run(["losetup", "-d", line.split(":")[0]], check=False)
    rm(XFS_IMAGE)


def full_clone_round(ctx, tool, src_name, src_disk, d, name):
    """One full copy by `tool`; returns (seconds, target path)."""
    target = f"{d}/{name}.qcow2"
    if tool == "vmdriver":
        s = run([ctx.vmctl, "clone", src_name, name, "--full", "--dest", d], timeout=600)[0]
        target = f"{d}/{name}-vda.qcow2"
    elif tool == "qemu-img convert":
        s = run(["qemu-img", "convert", "-O", "qcow2", src_disk, target], timeout=600)[0]
    elif tool == "cp --sparse=always":
        s = run(["cp", "--sparse=always", src_disk, target], timeout=600)[0]
    elif tool == "virt-clone":
        s = run(["virt-clone", "--connect", LOCAL, "--original", src_name, "--name", name, "--file", target],
                timeout=600)[0]
    return s, target


FULL_TOOLS = ["vmdriver", "qemu-img convert", "cp --sparse=always", "virt-clone"]


def full_clone_on(ctx, fs, d, reps):
    os.makedirs(d + "/clones", exist_ok=True)
    src = f"{PREFIX}full-{fs}"
    disk = f"{d}/{src}.qcow2"
    make_disk(disk, 4, 1 * GiB)
    define(LOCAL, src, disk, f"{d}/{src}.serial", d)
    data = allocated(disk)
    times = {t: [] for t in FULL_TOOLS}
    sizes = {t: [] for t in FULL_TOOLS}
    pairs = []
    try:
        for i in range(reps):
            order = FULL_TOOLS[i % len(FULL_TOOLS):] + FULL_TOOLS[:i % len(FULL_TOOLS)]
            got = {}
            for tool in order:
                name = f"{src}-{i}-{FULL_TOOLS.index(tool)}"
                sync()
                # Timed until the copy is on disk (the tool, then sync): without the sync this
                # measures copying into the page cache, and only fixed overheads would show.
                s, target = full_clone_round(ctx, tool, src, disk, d + "/clones", name)
                s += run(["sync"])[0]
                got[tool] = s
                times[tool].append(s)
                sizes[tool].append(allocated(target))
                virsh(LOCAL, "undefine", name, check=False)
                rm(target)
                if tool == "virt-clone":
                    remove_pools_under(WORK)
            fastest = min(got[t] for t in FULL_TOOLS[1:])
            # throughput ratio = anchor time / VMDriver time
            pairs.append((fastest, got["vmdriver"]))
    finally:
        remove_domains(LOCAL, src + "-")
        virsh(LOCAL, "undefine", src, check=False)
    r, rs = ratios(pairs)
    tput = {t: data / median(times[t]) / MiB for t in FULL_TOOLS}
    best_anchor = max(FULL_TOOLS[1:], key=lambda t: tput[t])
    alloc = median(sizes["vmdriver"]) / data
    rows = [
        row(f"full clone throughput, {fs} (4 GiB sparse, 1 GiB data; copy + sync)", tput["vmdriver"], tput[best_anchor],
            f"fastest anchor ({best_anchor})", r, "≥ 0.95× fastest anchor", r is not None and r >= 0.95,
            unit="MiB/s"),
        row(f"full clone allocated size vs source's, {fs}", median(sizes["vmdriver"]), data, "source",
            alloc, "≤ 1.05×", alloc <= 1.05, unit="bytes"),
    ]
    return {"source_allocated": data, "times": times, "allocated": sizes, "throughput_MiBps": tput,
            "ratios": rs, "rows": rows}


def case_full_clone(ctx):
    reps = ctx.reps(3, 5)
    result = {"runs": reps}
    d = WORK + "/full"
    rm(d)
    os.makedirs(d)
    try:
        result["ext4"] = full_clone_on(ctx, "ext4", d, reps)
    finally:
        rm(d)
    try:
        with XFS() as mnt:
            result["xfs"] = full_clone_on(ctx, "xfs-reflink", mnt + "/full", reps)
    except Failed as e:
        result["xfs"] = {"status": "skipped", "reason": f"no XFS loop image here: {e}", "rows": []}
    result["rows"] = result["ext4"]["rows"] + result["xfs"]["rows"]
    return result


# --- case: 20 linked clones made and started -------------------------------------------------

def case_fleet(ctx):
    d = WORK + "/fleet"
    rm(d)
    os.makedirs(d + "/clones")
    os.chmod(d, 0o755)
    golden = PREFIX + "golden"
    disk = f"{d}/{golden}.qcow2"
    golden_bytes = ctx.reps(256 * MiB, 1 * GiB)
    make_disk(disk, 2, golden_bytes, base=FIXTURES + "/data.qcow2")
    define(LOCAL, golden, disk, f"{d}/{golden}.serial", d, pty_console=True)
    count = 20
    reps = ctx.reps(1, 2)
    vm_t, an_t, pairs, made, an_made = [], [], [], [], []

    def clear(prefix, who):
        t0 = time.monotonic()
        remove_domains(LOCAL, prefix + "-")
        remove_pools_under(WORK)
        for f in os.listdir(d + "/clones"):
            rm(os.path.join(d, "clones", f))
        log(f"fleet: removing {who}'s clones took {time.monotonic() - t0:.1f} s")

    try:
        for i in range(reps):
            order = ["vmdriver", "anchor"] if i % 2 == 0 else ["anchor", "vmdriver"]
            t = {}
            for who in order:
                prefix = f"{golden}-{who[0]}{i}"
                try:
                    if who == "vmdriver":
                        # made only (not started), then made and started: the measured one
                        made.append(json.loads(run([ctx.vmbench, "fleet", golden, "--count", str(count),
                                                    "--prefix", prefix + "n", "--dest", d + "/clones",
                                                    "--no-start"], timeout=900)[1])["seconds"])
                        clear(prefix + "n", who)
                        t[who] = run([ctx.vmbench, "fleet", golden, "--count", str(count), "--prefix", prefix,
                                      "--dest", d + "/clones"], timeout=900)[0]
                    else:
                        cloning = 0.0
                        start = time.monotonic()
                        for k in range(count):
                            name = f"{prefix}-{k}"
                            cloning += run(["virt-clone", "--connect", LOCAL, "--original", golden, "--name", name,
                                            "--file", f"{d}/clones/{name}.qcow2"], timeout=600)[0]
                            run(["virsh", "-q", "-c", LOCAL, "start", name], timeout=120)
                        t[who] = time.monotonic() - start
                        an_made.append(cloning)
                finally:
                    # The booting TCG guests would eat both cores: gone at once.
                    clear(prefix, who)
            log(f"fleet round {i}: VMDriver {t['vmdriver']:.1f} s, virt-clone loop {t['anchor']:.1f} s")
            vm_t.append(t["vmdriver"])
            an_t.append(t["anchor"])
            pairs.append((t["anchor"], t["vmdriver"]))
    finally:
        remove_domains(LOCAL, golden)
        remove_pools_under(WORK)
        rm(d)
    r, rs = ratios(pairs)  # speed-up: anchor / VMDriver
    r2 = median(an_made) / median(made)
    size = f"{golden_bytes // MiB} MiB"
    return {"runs": reps, "vmdriver": vm_t, "anchor": an_t, "speedups": rs, "golden_allocated": golden_bytes,
            "vmdriver_made_only": made, "anchor_virt_clone_only": an_made, "rows": [
                row(f"{count} linked clones made and started (golden with {size} allocated; library, concurrent)",
                    median(vm_t), median(an_t), "virt-clone + virsh start loop", r, "≥ 10× faster",
                    r is not None and r >= 10, note="ratio = anchor time / VMDriver time"),
                row(f"{count} linked clones made, not started (the virt-clone share of the anchor loop)",
                    median(made), median(an_made), "virt-clone calls in that loop", r2, "reported", None,
                    note="ratio = anchor time / VMDriver time")]}


# --- case: open by name and list -------------------------------------------------------------

def case_open_list(ctx):
    import libvirt  # python3-libvirt (scripts/bench.sh installs it)
    libvirt.registerErrorHandler(lambda c, e: None, None)
    d = WORK + "/list"
    rm(d)
    os.makedirs(d)
    conn = libvirt.open(LOCAL)
    names = [f"{PREFIX}list-{i:03d}" for i in range(200)]
    rounds = ctx.reps(2, 5)
    n_open = 10000
    n_list = ctx.reps(100, 200)
    n_virsh = ctx.reps(30, 100)
    result = {"rounds": rounds, "open_calls": n_open, "list_calls": n_list, "virsh_calls": n_virsh}
    try:
        for name in names:
            conn.defineXML(domain_xml(name, f"{d}/{name}.qcow2", f"{d}/{name}.serial"))
        vms = len(conn.listAllDomains(0))
        target = names[100]
        impl = {
            "vmdriver": lambda mode: [ctx.vmbench, "open", target, "--count", str(n_open)] if mode == "open"
            else [ctx.vmbench, "list", "--count", str(n_list)],
            "c": lambda mode: [ctx.lookup, LOCAL, "open", target, str(n_open)] if mode == "open"
            else [ctx.lookup, LOCAL, "list", str(n_list)],
            "python": lambda mode: ["/usr/bin/python3", ctx.pylookup, LOCAL, "open", target, str(n_open)]
            if mode == "open" else ["/usr/bin/python3", ctx.pylookup, LOCAL, "list", str(n_list)],
        }
        rows = []
        for mode in ("open", "list"):
            per = {k: [] for k in impl}
            pairs = []
            for i in range(rounds):
                keys = list(impl)
                order = keys[i % 3:] + keys[:i % 3]
                got = {}
                for k in order:
                    out = json.loads(run(impl[k](mode), timeout=600)[1])
                    got[k] = out["seconds"] / out["calls"]
                    per[k].append(got[k])
                pairs.append((got["vmdriver"], got["c"]))
            # virsh: a process per call, as a shell script would do it.
            argv = ["virsh", "-q", "-c", LOCAL, "dominfo", target] if mode == "open" else \
                ["virsh", "-q", "-c", LOCAL, "list", "--all"]
            start = time.monotonic()
            for _ in range(n_virsh):
                run(argv)
            per["virsh"] = [(time.monotonic() - start) / n_virsh]
            r, rs = ratios(pairs)
            result[mode] = {"per_call": per, "ratios": rs}
            what = f"open by name ×{n_open}" if mode == "open" else f"list all ({vms} defined VMs) ×{n_list}"
            rows.append(row(f"{what}: per call, library", median(per["vmdriver"]), median(per["c"]),
                            "C API loop (gcc)", r, "≤ 2× C loop", r is not None and r <= 2,
                            python=median(per["python"]), virsh=per["virsh"][0]))
        result["rows"] = rows
        result["vms"] = vms
    finally:
        for name in names:
            try:
                conn.lookupByName(name).undefine()
            except libvirt.libvirtError:
                pass
        conn.close()
        rm(d)
    return result


# --- case: peak memory of vmctl --------------------------------------------------------------

def case_peak_rss(ctx):
    d = WORK + "/rss"
    rm(d)
    os.makedirs(d + "/clones")
    sizes = [1, 2] if ctx.quick else [1, 4]  # GiB of data
    out = {"full_clone": {}}
    try:
        for gib in sizes:
            src = f"{PREFIX}rss-{gib}g"
            disk = f"{d}/{src}.qcow2"
            make_disk(disk, 2 * gib + 2, gib * GiB)
            define(LOCAL, src, disk, f"{d}/{src}.serial", d)
            s, _, _, rc, hwm, maxrss = run_peak([ctx.vmctl, "clone", src, src + "-c", "--full", "--dest",
                                                 d + "/clones"], timeout=900)
            if rc != 0:
                raise Failed(f"vmctl clone exited {rc}")
            out["full_clone"][f"{gib}GiB"] = {"seconds": s, "vmctl_peak_rss": hwm, "with_children_maxrss": maxrss}
            virsh(LOCAL, "undefine", src + "-c", check=False)
            virsh(LOCAL, "undefine", src, check=False)
            rm(d + "/clones", disk)
            os.makedirs(d + "/clones")
    finally:
        remove_domains(LOCAL, PREFIX + "rss-")
        rm(d)
    a, b = (out["full_clone"][f"{g}GiB"]["vmctl_peak_rss"] for g in sizes)
    growth = b / a
    out["rows"] = [row(f"vmctl peak RSS, full clone of {sizes[0]} GiB vs {sizes[1]} GiB of data", b, a,
                       f"vmctl at {sizes[0]} GiB", growth, "flat (< 1.10×)", growth < 1.10, unit="bytes")]
    return out


# --- migration cases (the two-host testbed) --------------------------------------------------

def uri_of(host):
    return f"qemu+tcp://{HOSTS[host]}/system"


def other(host):
    return "hostb" if host == "hosta" else "hosta"


def host_images(host):
    """A host's own images folder (/var/lib/libvirt/images inside its namespace), seen from here."""
    return f"{TESTBED}/{host}/lib/images"


class Testbed:
    def __init__(self, ctx):
        self.ctx = ctx

    def up(self):
        run(["bash", self.ctx.testbed, "up"], timeout=300)

    def clean(self):
        clean_testbed()


def clean_testbed():
    """Our guests on both hosts, and our files (vmdriver-bench-*) in the shared folder (pool
    "shared" covers that folder itself, not its subfolders) and in each host's images."""
    for h in HOSTS:
        remove_domains(uri_of(h))
    for folder in [SHARED] + [host_images(h) for h in HOSTS]:
        if os.path.isdir(folder):
            for f in os.listdir(folder):
                if f.startswith(PREFIX):
                    rm(os.path.join(folder, f))
    for h in HOSTS:
        for pool in ("shared", "images"):
            virsh(uri_of(h), "pool-refresh", pool, check=False, timeout=20)


def wait_heartbeat(serial, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(serial, "rb") as f:
                if b"VMDRIVER-HEARTBEAT 2" in f.read():
                    return
        except FileNotFoundError:
            pass
        time.sleep(0.1)
    raise Failed(f"no heartbeat in {serial} within {timeout} s")


def start_guest(name, host, disk, serial, dirty_mib=0, dirty_rate=0):
    xml_dir = SHARED
    define(uri_of(host), name, disk, serial, xml_dir, dirty_mib=dirty_mib, dirty_rate=dirty_rate)
    virsh(uri_of(host), "start", name)
    wait_heartbeat(serial)


def where(name):
    for h in HOSTS:
        _, out, _, rc = virsh(uri_of(h), "domstate", name, check=False, timeout=20)
        if rc == 0 and out.strip() == "running":
            return h
    return None


def jobinfo(uri, name):
    """virsh domjobinfo --completed, as a dict of floats where it parses."""
    _, out, _, rc = virsh(uri, "domjobinfo", "--completed", name, check=False, timeout=30)
    info = {}
    for line in out.splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            m = re.match(r"\s*([\d.]+)\s*(\S*)", v)
            if m:
                value = float(m.group(1))
                unit = m.group(2)
                scale = {"KiB": 1024, "MiB": MiB, "GiB": GiB, "B": 1}.get(unit, 1)
                info[k.strip()] = value * scale
    return info


def wire_bytes():
    """Bytes both testbed hosts have sent over their links (the root-side veth's rx): what a
    migration really moved, memory and disks, whatever libvirt's job statistics count."""
    total = 0
    for h in HOSTS:
        with open(f"/sys/class/net/vmd-{h}/statistics/rx_bytes") as f:
            total += int(f.read())
    return total


def migrate_vmctl(ctx, name, src, extra=(), timeout=300):
    argv = [ctx.vmctl, "-c", uri_of(src), "migrate", name, HOSTS[other(src)], "--json", *extra]
    s, out, err, rc, hwm, _ = run_peak(argv, timeout=timeout)
    if rc != 0:
        e = Failed(f"vmctl migrate exited {rc}: {err.strip()[-500:]}")
        e.code = rc
        raise e
    res = json.loads(out)
    return {"wall": s, "seconds": res.get("seconds"), "downtime_ms": res.get("downtimeMilliseconds"),
            "bytes": res.get("bytesTransferred"), "steps": res.get("steps"), "peak_rss": hwm}


_tcg_live = None


def tcg_live():
    """Whether the testbed's QEMU moves TCG guests live without losing their writes (9.0 or
    later). Where it does not, vmctl moves them warm (not live), and so must virsh: the same
    work on both sides."""
    global _tcg_live
    if _tcg_live is None:
        _, out, _, _ = virsh(uri_of("hosta"), "version", check=False, timeout=30)
        m = re.search(r"Running hypervisor: QEMU (\d+)\.", out)
        _tcg_live = bool(m) and int(m.group(1)) >= 9
    return _tcg_live


def virsh_migrate_words():
    return "virsh migrate --live --p2p --unsafe" if tcg_live() else "virsh migrate --p2p --unsafe (warm: not live)"


def migrate_virsh(name, src, extra=(), limit=None):
    dst = other(src)
    live = ["--live"] if tcg_live() else []
    argv = ["virsh", "-q", "-c", uri_of(src), "migrate", *live, "--p2p", "--unsafe", "--persistent",
            "--undefinesource", *extra, name, uri_of(dst), "--migrateuri", f"tcp://{HOSTS[dst]}"]
    start = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=limit or 600)
    except subprocess.TimeoutExpired:
        # Did not converge within the limit: abort the job (the guest stays on the source).
        virsh(uri_of(src), "domjobabort", name, check=False, timeout=30)
        p.communicate(timeout=60)
        return {"wall": time.monotonic() - start, "finished": False}
    s = time.monotonic() - start
    if p.returncode != 0:
        raise Failed(f"virsh migrate exited {p.returncode}: {err.strip()[-500:]}")
    info = jobinfo(uri_of(dst), name)
    memory = info.get("Data processed") or info.get("Memory processed") or 0
    # With NBD storage copy, libvirt counts the disks apart: "File processed".
    return {"wall": s, "finished": True, "downtime_ms": info.get("Total downtime"),
            "bytes": memory + info.get("File processed", 0), "disk_bytes": info.get("File processed")}


def migration_case(ctx, label, setup, vm_args, virsh_args, pairs_n, target_ratio=1.1, before=None):
    """The shared shape of the hot migration cases: a guest set up once, then pairs of
    migrations (vmctl, virsh; then virsh, vmctl ...), each from wherever the guest is to the
    other host. `before(src, dst)` readies the destination for a run (untimed)."""
    tb = Testbed(ctx)
    tb.up()
    tb.clean()
    runs = {"vmdriver": [], "virsh": []}
    pairs = []
    try:
        name = setup()
        for i in range(pairs_n):
            order = ["vmdriver", "virsh"] if i % 2 == 0 else ["virsh", "vmdriver"]
            got = {}
            for who in order:
                src = where(name)
                if src is None:
                    raise Failed(f"{name} is running on neither host")
                if before:
                    before(who, src, other(src))
                wire = wire_bytes()
                if who == "vmdriver":
                    try:
                        got[who] = migrate_vmctl(ctx, name, src, vm_args)
                    except Failed as e:
                        # Recorded, and the anchor still runs (the guest stayed where it was).
                        got[who] = {"wall": None, "error": str(e), "code": getattr(e, "code", None)}
                else:
                    got[who] = migrate_virsh(name, src, virsh_args)
                got[who]["wire_bytes"] = wire_bytes() - wire
                got[who]["from"] = src
                runs[who].append(got[who])
            pairs.append((got["vmdriver"]["wall"], got["virsh"]["wall"]))
    finally:
        tb.clean()
    r, rs = ratios(pairs)
    errors = [x["error"] for x in runs["vmdriver"] if x.get("error")]
    vm_walls = [x["wall"] for x in runs["vmdriver"] if x.get("wall") is not None]
    vm_dt = median([x["downtime_ms"] for x in runs["vmdriver"] if x.get("downtime_ms") is not None])
    an_dt = median([x["downtime_ms"] for x in runs["virsh"] if x.get("downtime_ms") is not None])
    result = {"runs": runs, "ratios": rs}
    if errors:
        unsupported = all(x.get("code") == 1 for x in runs["vmdriver"] if x.get("error"))
        result["vmdriver_status"] = "skipped" if unsupported else "failed"
        result["reason"] = errors[0]
    return {**result, "rows": [
        row(f"{label}: wall (vmctl, process start included)", median(vm_walls),
            median([x["wall"] for x in runs["virsh"]]), virsh_migrate_words(), r,
            f"≤ {target_ratio}× anchor", None if r is None else r <= target_ratio,
            downtime_ms=vm_dt, anchor_downtime_ms=an_dt,
            bytes=median([x["wire_bytes"] for x in runs["vmdriver"] if x.get("wall") is not None]),
            anchor_bytes=median([x["wire_bytes"] for x in runs["virsh"]]),
            reported_bytes=median([x["bytes"] for x in runs["vmdriver"] if x.get("bytes")]),
            note=(f"VMDriver {result['vmdriver_status']}: {errors[0][:300]}" if errors else None))]}


def case_migrate_idle(ctx):
    name = PREFIX + "mig-idle"
    shared = SHARED

    def setup():
        disk = f"{shared}/{name}.qcow2"
        shutil.copy(FIXTURES + "/data.qcow2", disk)
        os.chmod(disk, 0o666)
        start_guest(name, "hosta", disk, f"{shared}/{name}.serial")
        return name

    return migration_case(ctx, "hot migration, idle 256 MiB guest, shared storage", setup, [], [],
                          ctx.reps(2, 6))


def case_migrate_dirty(ctx):
    name = PREFIX + "mig-dirty"
    shared = SHARED
    bandwidth = 32
    limit = 30  # the floor of virsh's limit
    timeout = 180  # VMDriver's own
    tb = Testbed(ctx)
    tb.up()
    tb.clean()
    result = {"bandwidth_MiBps": bandwidth, "virsh_limit_s": limit, "dirty_MiB": 128}
    try:
        disk = f"{shared}/{name}.qcow2"
        shutil.copy(FIXTURES + "/data.qcow2", disk)
        os.chmod(disk, 0o666)
        start_guest(name, "hosta", disk, f"{shared}/{name}.serial", dirty_mib=128)
        time.sleep(2)  # the dirtier is running
        try:
            vm = migrate_vmctl(ctx, name, "hosta", ["--bandwidth", str(bandwidth), "--timeout", str(timeout)],
                               timeout=timeout + 60)
            vm["finished"] = True
            # The same limit for virsh: as long as VMDriver took (+10%), never less than the floor.
            limit = max(limit, 1.1 * vm["wall"])
        except Failed as e:
            vm = {"finished": False, "error": str(e)}
        result["vmdriver"] = vm
        result["virsh_limit_s"] = limit
        an = migrate_virsh(name, where(name), ["--bandwidth", str(bandwidth)], limit=limit)
        result["virsh"] = an
    finally:
        tb.clean()
    met = vm.get("finished") and not an.get("finished")
    result["rows"] = [row(f"hot migration, guest dirtying 128 MiB faster than a {bandwidth} MiB/s cap",
                          vm.get("wall"), an.get("wall") if an.get("finished") else None,
                          f"virsh migrate --bandwidth {bandwidth} (limit {limit:.0f} s)", None,
                          "VMDriver finishes, virsh does not", bool(met), downtime_ms=vm.get("downtime_ms"),
                          note=("virsh finished" if an.get("finished") else f"virsh did not finish in {limit:.0f} s")
                          + ("" if vm.get("finished") else "; VMDriver failed: " + vm.get("error", "")[:300]))]
    return result


def case_forecast(ctx):
    """`migrate --check`'s prediction of plain pre-copy beside the real live move at the same
    cap and downtime limit, made by virsh (plain pre-copy is what the model describes; VMDriver
    itself moves this TCG guest warm where QEMU loses writes live, so the move measured is
    virsh's). The guest dirties 64 MiB at 4 MiB/s, which a 16 MiB/s cap outruns: it converges.
    Each pair: the check (its 1 s dirty-rate sample), then the move, from wherever the guest is."""
    name = PREFIX + "forecast"
    bandwidth, downtime, dirty_rate = 16, 300, 4
    tb = Testbed(ctx)
    tb.up()
    tb.clean()
    runs = []
    try:
        disk = f"{SHARED}/{name}.qcow2"
        shutil.copy(FIXTURES + "/data.qcow2", disk)
        os.chmod(disk, 0o666)
        start_guest(name, "hosta", disk, f"{SHARED}/{name}.serial", dirty_mib=64, dirty_rate=dirty_rate)
        time.sleep(2)  # the dirtier is running
        for _ in range(ctx.reps(1, 3)):
            src = where(name)
            if src is None:
                raise Failed(f"{name} is running on neither host")
            argv = [ctx.vmctl, "-c", uri_of(src), "migrate", name, HOSTS[other(src)], "--check", "--bandwidth",
                    str(bandwidth), "--max-downtime", str(downtime), "--policy", "plain", "--json"]
            _, out, err, rc = run(argv, check=False, timeout=120)
            try:
                forecast = json.loads(out).get("forecast") or {}
            except ValueError:
                forecast = {}
            prediction = forecast.get("prediction") or {}
            entry = {"from": src, "check_exit": rc, "dirty_MiBps": (forecast.get("dirtyRate") or {}).get("mibPerSecond"),
                     "predicted_s": prediction.get("seconds"), "predicted_passes": prediction.get("passes"),
                     "predicted_downtime_ms": prediction.get("downtimeMilliseconds"),
                     "predicted_converges": prediction.get("converges")}
            if not prediction:
                entry["error"] = f"no prediction (exit {rc}): {err.strip()[-300:]} {forecast.get('notes')}"
            live = [] if tcg_live() else ["--live"]
            virsh(uri_of(src), "migrate-setmaxdowntime", name, str(downtime), check=False, timeout=30)
            real = migrate_virsh(name, src, live + ["--bandwidth", str(bandwidth)], limit=180)
            entry.update(real_s=real.get("wall") if real.get("finished") else None, real_finished=real.get("finished"),
                         real_downtime_ms=real.get("downtime_ms"))
            runs.append(entry)
    finally:
        tb.clean()
    pairs = [(r["predicted_s"], r["real_s"]) for r in runs]
    errors = [(p - a) / a for p, a in pairs if p is not None and a]
    failed = [r for r in runs if r.get("predicted_s") is None or r.get("real_s") is None]
    error = median([abs(e) for e in errors]) if errors and not failed else None
    return {"runs": runs, "errors": errors, "rows": [
        row(f"forecast: plain pre-copy time predicted by migrate --check vs the real live move "
            f"({bandwidth} MiB/s cap, guest dirtying at {dirty_rate} MiB/s)",
            median([p for p, _ in pairs if p is not None]), median([a for _, a in pairs if a is not None]),
            f"virsh migrate --live --bandwidth {bandwidth} (max downtime {downtime} ms)",
            median([p / a for p, a in pairs if p is not None and a]), "prediction error ≤ 25%",
            None if error is None else error <= 0.25,
            downtime_ms=median([r["predicted_downtime_ms"] for r in runs if r.get("predicted_downtime_ms") is not None]),
            anchor_downtime_ms=median([r["real_downtime_ms"] for r in runs if r.get("real_downtime_ms") is not None]),
            note=(f"median |error| {100 * error:.0f}% over {len(errors)} runs; every run: "
                  + ", ".join(f"{100 * e:+.0f}%" for e in errors)) if error is not None
            else f"{len(failed)} of {len(runs)} runs failed: " + "; ".join(r.get("error", "the move did not finish") for r in failed)[:400])]}


def case_migrate_copy(ctx):
    name = PREFIX + "mig-copy"
    disk_name = f"{name}.qcow2"

    def setup():
        path = f"{host_images('hosta')}/{disk_name}"
        make_disk(path, 2, 1 * GiB, base=FIXTURES + "/data.qcow2")
        virsh(uri_of("hosta"), "pool-refresh", "images")
        serial = f"{SHARED}/{name}.serial"
        start_guest(name, "hosta", f"/var/lib/libvirt/images/{disk_name}", serial)
        return name

    def before(who, src, dst):
        # Each run finds no copy on the destination (virsh: the "images" pool lets libvirt make one).
        rm(f"{host_images(dst)}/{disk_name}")
        virsh(uri_of(dst), "pool-refresh", "images", check=False)

    return migration_case(ctx, "hot migration, copied storage (1 GiB data)", setup, ["--storage", "copy"],
                          ["--copy-storage-all"], ctx.reps(1, 3), before=before)


def case_migrate_incremental(ctx):
    name = PREFIX + "mig-inc"
    base_name = f"{PREFIX}mig-inc-base.qcow2"
    overlay_name = f"{name}.qcow2"
    ns_base = f"/var/lib/libvirt/images/{base_name}"
    info = {}

    def setup():
        a, b = host_images("hosta"), host_images("hostb")
        make_disk(f"{a}/{base_name}", 2, 1 * GiB, base=FIXTURES + "/data.qcow2")
        shutil.copy(f"{a}/{base_name}", f"{b}/{base_name}")
        # The overlay (the linked clone's own disk) with 64 MiB of its own data, then pointed at
        # the base's path as the hosts see it.
        ov = f"{a}/{overlay_name}"
        run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", f"{a}/{base_name}", ov])
        run(["qemu-io", "-c", "write -P 0x5a 1536M 64M", ov])
        run(["qemu-img", "rebase", "-u", "-F", "qcow2", "-b", ns_base, ov])
        for f in (ov, f"{a}/{base_name}", f"{b}/{base_name}"):
            os.chmod(f, 0o644)
        info["overlay_allocated"] = allocated(ov)
        for h in HOSTS:
            virsh(uri_of(h), "pool-refresh", "images")
        serial = f"{SHARED}/{name}.serial"
        start_guest(name, "hosta", f"/var/lib/libvirt/images/{overlay_name}", serial)
        return name

    def before(who, src, dst):
        target = f"{host_images(dst)}/{overlay_name}"
        rm(target)
        if who == "virsh":
            # libvirt will not pre-create for --copy-storage-inc: an empty overlay on the
            # destination's own copy of the base.
            run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-u", "-b", ns_base, target, "2G"])
            os.chmod(target, 0o644)
        virsh(uri_of(dst), "pool-refresh", "images", check=False)

    res = migration_case(ctx, "hot migration, incremental storage of a linked clone (64 MiB overlay)", setup,
                         ["--storage", "incremental"], ["--copy-storage-inc"], ctx.reps(1, 3), before=before)
    moved = res["rows"][0].get("bytes")
    if res.get("vmdriver_status"):
        res["status_override"] = res["vmdriver_status"]
    limit = info.get("overlay_allocated", 0) + 256 * MiB
    res["overlay_allocated"] = info.get("overlay_allocated")
    res["rows"].append(row("incremental: bytes moved on the wire vs overlay + memory", moved, limit,
                           "overlay + 256 MiB",
                           moved / limit if moved else None, "≤ 1×", None if moved is None else moved <= limit,
                           unit="bytes"))
    return res


# --- the run ---------------------------------------------------------------------------------

CASES = [
    ("linked_clone", "Linked clone vs qemu-img create -b + virsh define", case_linked_clone, False),
    ("clone_latency", "Library-level linked clone latency", case_clone_latency, False),
    ("full_clone", "Full clone vs qemu-img convert, cp --sparse=always, virt-clone", case_full_clone, False),
    ("fleet", "20 linked clones made and started vs virt-clone + virsh start", case_fleet, False),
    ("open_list", "Open by name and list vs C API, python-libvirt, virsh", case_open_list, False),
    ("peak_rss", "Peak memory of vmctl during full clones", case_peak_rss, False),
    ("migrate_idle", "Hot migration, idle guest, shared storage", case_migrate_idle, True),
    ("migrate_dirty", "Hot migration, guest dirtying memory faster than the cap", case_migrate_dirty, True),
    ("forecast", "migrate --check's pre-copy prediction vs the real move", case_forecast, True),
    ("migrate_copy", "Hot migration with copied storage", case_migrate_copy, True),
    ("migrate_incremental", "Hot migration with incremental storage", case_migrate_incremental, True),
]


def machine():
    def cmd(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=30).stdout.strip()
        except Exception:
            return None
    cpu = None
    for line in (cmd(["lscpu"]) or "").splitlines():
        if line.startswith("Model name:"):
            cpu = line.split(":", 1)[1].strip()
    mem = None
    with open("/proc/meminfo") as f:
        mem = int(f.readline().split()[1]) * 1024
    virsh_version = cmd(["virsh", "-c", LOCAL, "version", "--daemon"]) or ""
    libvirt_v = re.search(r"Running against daemon: (\S+)", virsh_version) or re.search(r"libvirt (\S+)", virsh_version)
    hv = re.search(r"Running hypervisor: QEMU (\S+)", virsh_version)
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_bytes": mem, "kernel": platform.release(),
        "os": (cmd(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]) or ""),
        "libvirt": libvirt_v.group(1) if libvirt_v else None, "qemu": hv.group(1) if hv else None,
        "qemu_img": (cmd(["qemu-img", "--version"]) or "").splitlines()[0],
        "virt_clone": cmd(["virt-clone", "--version"]),
        "swift": (cmd(["swift", "--version"]) or "").splitlines()[0] if shutil.which("swift") else None,
        "root_fs": cmd(["findmnt", "-no", "FSTYPE", "/var/lib"]) or cmd(["findmnt", "-no", "FSTYPE", "/"]),
        "accelerator": "TCG (domain type qemu)",
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--vmctl")
    ap.add_argument("--vmbench")
    ap.add_argument("--lookup")
    ap.add_argument("--out", default="bench")
    ap.add_argument("--cases", help="comma-separated case ids")
    ap.add_argument("--no-migration", action="store_true")
    ap.add_argument("--cleanup", action="store_true")
    ap.add_argument("--command", default="scripts/bench.sh")
    args = ap.parse_args()
    if args.cleanup:
        cleanup()
        return 0
    ctx = Context(args)
    wanted = set(args.cases.split(",")) if args.cases else None
    started = time.monotonic()
    results = {"command": args.command, "quick": args.quick,
               "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
               "commit": (subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
                          .stdout.strip()),
               "machine": machine(), "cases": []}
    os.makedirs(WORK, exist_ok=True)
    os.chmod(WORK, 0o755)
    for cid, title, fn, migration in CASES:
        if wanted and cid not in wanted:
            continue
        entry = {"id": cid, "title": title}
        if migration and args.no_migration:
            entry.update(status="skipped", reason="--no-migration", rows=[])
            results["cases"].append(entry)
            continue
        log(f"{cid}: {title}")
        t0 = time.monotonic()
        try:
            entry.update(fn(ctx))
            entry["status"] = entry.pop("status_override", None) or entry.get("vmdriver_status") or "ok"
        except Exception as e:  # a failed case is recorded, the others still run
            entry.update(status="failed", reason=str(e)[:1000], rows=entry.get("rows", []))
            log(f"{cid} FAILED: {e}")
            traceback.print_exc(file=sys.stderr)
        entry["case_seconds"] = time.monotonic() - t0
        log(f"{cid}: {entry['status']} in {entry['case_seconds']:.1f} s")
        results["cases"].append(entry)
    results["total_seconds"] = time.monotonic() - started
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=False)
    import report
    table = report.markdown(results)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(table)
    print(table)
    report.charts(results, args.out)
    log(f"done in {results['total_seconds']:.0f} s: {args.out}/results.json, results.md, *.png")
    return 0


def cleanup():
    remove_domains(LOCAL)
    if os.path.isdir(SHARED):
        clean_testbed()
    remove_pools_under(WORK)
    unmount_xfs()
    rm(WORK)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    sys.exit(main())
