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


# --- libvirt, read through python-libvirt; the one interleaving loop and its statistics ----

_connections = {}

def lv(uri=LOCAL):
    """A python-libvirt connection to `uri`, kept for the run (opened again if it died)."""
    import libvirt  # python3-libvirt (scripts/bench.sh installs it)
    libvirt.registerErrorHandler(lambda c, e: None, None)
    c = _connections.get(uri)
    if c is not None:
        try:
            if c.isAlive():
                return c
        except libvirt.libvirtError:
            pass
    c = libvirt.open(uri)
    _connections[uri] = c
    return c

def lookup(uri, name):
    """The domain `name` on `uri`, or None."""
    import libvirt
    try:
        return lv(uri).lookupByName(name)
    except libvirt.libvirtError:
        return None

def refresh_pool(uri, name):
    import libvirt
    try:
        lv(uri).storagePoolLookupByName(name).refresh(0)
    except libvirt.libvirtError:
        pass

FAILED = float("inf")

def interleave(sides, n, one):
    """The harness's one interleaving loop: n rounds, round i running the sides rotated by i
    (A B, B A for two; A B C, B C A, C A B for three). `one(side, i)` returns the run's measure
    (a number, lower is better unless the caller says otherwise), or a dict with it under
    "value" and anything else worth keeping; an exception, or a value of None, is a failed run:
    recorded with its error, never dropped. Returns {side: [run, ...]} in round order."""
    runs = {s: [] for s in sides}
    for i in range(n):
        k = i % len(sides)
        for side in sides[k:] + sides[:k]:
            try:
                r = one(side, i)
                r = dict(r) if isinstance(r, dict) else {"value": r}
            except Exception as e:  # noqa: BLE001: a failure of either side is a result
                r = {"value": None, "error": str(e)[:600]}
                log(f"round {i}, {side}: FAILED: {e}")
            if r.get("value") is None:
                r.setdefault("error", "no measure")
            r["round"] = i
            runs[side].append(r)
    return runs

def values(runs):
    """Each run's measure; a failed run counts as infinitely slow."""
    return [FAILED if r.get("value") is None else r["value"] for r in runs]

def failures(runs):
    return sum(1 for r in runs if r.get("value") is None)

def med(runs):
    """Median of the runs' measures, a failed run counting as infinitely slow: with more than
    half failed, the median is a failure (None)."""
    m = median(values(runs))
    return None if m is None or m == FAILED else m

def pair_ratios(a_runs, b_runs):
    """a/b round by round (a failed a: infinite; a failed b: zero; both failed: no ratio,
    counted) and their median; None when the median is itself a failure."""
    rs = []
    for a, b in zip(values(a_runs), values(b_runs)):
        if a == FAILED and b == FAILED:
            continue
        rs.append(FAILED if a == FAILED else (0.0 if b == FAILED else a / b))
    m = median(rs)
    return (None if m is None or m == FAILED else m), rs

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
    xml = domain_xml(name, disk, serial, **kw)
    with open(path, "w") as f:
        f.write(xml)
    lv(uri).defineXML(xml)
    return path


def remove_domains(uri, prefix=PREFIX, timeout=20):
    import libvirt
    try:
        conn = lv(uri)
        doms = [d for d in conn.listAllDomains(0) if d.name().startswith(prefix)]
    except libvirt.libvirtError:
        return

    def remove(d):
        try:
            if d.isActive():
                d.destroy()
        except libvirt.libvirtError:
            pass
        try:
            d.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
        except libvirt.libvirtError:
            pass

    # In parallel: a destroy waits ~2 s for PID 1 here to reap QEMU (PLATFORM.md).
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(remove, doms))


def remove_pools_under(folder, uri=LOCAL):
    """virt-clone defines (autostarted) storage pools for the folders it writes to: remove
    those under our work folder, so every run starts from the same host state."""
    import libvirt
    import xml.etree.ElementTree as ET
    try:
        pools = lv(uri).listAllStoragePools(0)
    except libvirt.libvirtError:
        return
    for pool in pools:
        try:
            path = ET.fromstring(pool.XMLDesc(0)).findtext("target/path") or ""
            if (path + "/").startswith(folder.rstrip("/") + "/"):
                if pool.isActive():
                    pool.destroy()
                pool.undefine()
        except libvirt.libvirtError:
            pass


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


def row(measure, vmdriver, anchor, anchor_name, ratio, target, met, unit="s", note=None, vm_runs=None,
        anchor_runs=None, speed=None, goal=None, **extra):
    """One line of the table. `vm_runs`/`anchor_runs`: every run's measure (None for a failed
    one), printed under the table; `speed`/`goal` place the row on the ratios chart (VMDriver's
    speed relative to the anchor, >1 faster, and the target on that scale)."""
    r = {"measure": measure, "vmdriver": vmdriver, "anchor": anchor, "anchor_name": anchor_name,
         "ratio": ratio, "target": target, "met": met, "unit": unit}
    if note:
        r["note"] = note
    if vm_runs is not None:
        r["vm_runs"] = [None if isinstance(x, dict) and x.get("value") is None else
                        (x["value"] if isinstance(x, dict) else x) for x in vm_runs]
    if anchor_runs is not None:
        r["anchor_runs"] = [None if isinstance(x, dict) and x.get("value") is None else
                            (x["value"] if isinstance(x, dict) else x) for x in anchor_runs]
    if speed is not None:
        r["speed"], r["goal"] = speed, goal
    r.update(extra)
    return r


# --- case: linked clone vs qemu-img create -b + virsh define ---------------------------------

def floors(folder, n=50):
    """What a linked clone cannot go below on this machine: a 192 KiB file created and
    fsync'd (the size of the overlay qemu-img makes), and one virConnectDefineXML round trip
    (python-libvirt, a clone-sized definition). Medians of n, in seconds."""
    block = b"\0" * (192 * 1024)
    writes = []
    for i in range(n):
        path = f"{folder}/floor-{i}.qcow2"
        t0 = time.perf_counter()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, block)
        os.fsync(fd)
        os.close(fd)
        writes.append(time.perf_counter() - t0)
        os.unlink(path)
    conn = lv(LOCAL)
    defines = []
    for i in range(n):
        name = f"{PREFIX}floor-{i}"
        xml = domain_xml(name, f"{folder}/{name}.qcow2", f"{folder}/{name}.serial")
        t0 = time.perf_counter()
        d = conn.defineXML(xml)
        defines.append(time.perf_counter() - t0)
        d.undefine()
    return {"file_192k_fsync": median(writes), "define": median(defines),
            "file_runs": writes, "define_runs": defines}


def case_linked_clone(ctx):
    d = WORK + "/linked"
    rm(d)
    os.makedirs(d + "/clones")
    reps = ctx.reps(5, 15)
    result = {"runs": reps, "sizes": {}}
    rows = []
    medians = {}
    try:
        floor = floors(d)
        result["floor"] = floor
        for gib in (1, 16):
            src = f"{PREFIX}linked-{gib}g"
            base = f"{d}/{src}.qcow2"
            # preallocation=falloc: every cluster allocated (du = the size), in a second.
            run(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "preallocation=falloc", base, f"{gib}G"])
            os.chmod(base, 0o644)
            define(LOCAL, src, base, f"{d}/{src}.serial", d)
            # Warm-up, untimed: VMDriver's first linked clone freezes the source (external
            # disk-only snapshot); later clones of the shut-off source reuse that frozen base,
            # which is what the anchor clones from too. One warm-up for each side.
            run([ctx.vmctl, "clone", src, f"{src}-warm", "--linked", "--dest", d + "/clones"])
            run([ctx.vmctl, "delete", f"{src}-warm", "--with-storage"])
            frozen = base
            anchor_xml_template = domain_xml("@N@", "@D@", f"{d}/anchor.serial")

            def one(who, i):
                name = f"{src}-{who}-{i}"
                try:
                    if who == "vmdriver":
                        return run([ctx.vmctl, "clone", src, name, "--linked", "--dest", d + "/clones"])[0]
                    overlay = f"{d}/clones/{name}-vda.qcow2"
                    xml = f"{d}/clones/{name}.xml"
                    with open(xml, "w") as f:
                        f.write(anchor_xml_template.replace("@N@", name).replace("@D@", overlay))
                    a = run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", frozen, overlay])[0]
                    b = run(["virsh", "-q", "-c", LOCAL, "define", xml])[0]
                    return a + b
                finally:
                    dom = lookup(LOCAL, name)
                    if dom is not None:
                        dom.undefine()
                    for f in os.listdir(d + "/clones"):
                        if f.startswith(name + "-") or f == name + ".xml":
                            rm(os.path.join(d, "clones", f))

            one("vmdriver", -1), one("anchor", -1)  # the anchor's warm-up
            runs = interleave(["vmdriver", "anchor"], reps, one)
            r, rs = pair_ratios(runs["vmdriver"], runs["anchor"])
            medians[gib] = med(runs["vmdriver"])
            result["sizes"][f"{gib}GiB"] = {"vmdriver": runs["vmdriver"], "anchor": runs["anchor"], "ratios": rs,
                                           "base_allocated": allocated(base)}
            rows.append(row(f"linked clone, base {gib} GiB allocated (vmctl, process start included)",
                            medians[gib], med(runs["anchor"]), "qemu-img create -b + virsh define", r,
                            "≤ 1.0× anchor", r is not None and r <= 1.0, vm_runs=runs["vmdriver"],
                            anchor_runs=runs["anchor"], speed=None if not r else 1 / r, goal=1.0,
                            note=f"failed runs: VMDriver {failures(runs['vmdriver'])}, anchor {failures(runs['anchor'])}"
                            if failures(runs["vmdriver"]) or failures(runs["anchor"]) else None))
        if medians.get(1) and medians.get(16):
            spread = abs(medians[16] / medians[1] - 1)
            result["size_difference"] = spread
            rows.append(row("VMDriver's time, 16 GiB base vs 1 GiB base", medians[16], medians[1],
                            "VMDriver at 1 GiB", medians[16] / medians[1], "differs < 10%", spread < 0.10))
        rows.append(row("the floor: a 192 KiB file created and fsync'd, plus one virConnectDefineXML (python-libvirt)",
                        floor["file_192k_fsync"] + floor["define"], None, "—", None, "reported", None,
                        note=f"file + fsync {1e3 * floor['file_192k_fsync']:.2f} ms, define {1e3 * floor['define']:.2f} ms,"
                        " medians of 50"))
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
        floor = floors(d)
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
    floor_s = floor["file_192k_fsync"] + floor["define"]
    return {"samples": samples, "floor": floor, "rows": [
        row("library linked clone latency p50 (clone() to result, 100 clones)", p50, floor_s,
            "floor: 192 KiB file + fsync + one define", p50 / floor_s, "≤ 5 ms", p50 <= 0.005,
            note=f"floor: file + fsync {1e3 * floor['file_192k_fsync']:.2f} ms, define {1e3 * floor['define']:.2f} ms"),
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


def drop_caches(ctx):
    """Dirty pages written and the page cache dropped: every copy reads its source from the disk.
    Then every tool's own binary is read again (untimed, each side alike), as it is for anyone
    who runs it twice: what is measured is the copy, not loading an 87 MiB vmctl from disk."""
    run(["sync"])
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")
    for argv in ([ctx.vmctl, "list"], ["cp", "--version"], ["qemu-img", "--version"], ["dd", "--version"],
                 ["virt-clone", "--version"]):
        run(argv, check=False)


def full_clone_round(ctx, tool, src_name, src_disk, d, name):
    """One full copy by `tool`; returns (seconds, target path)."""
    target = f"{d}/{name}.qcow2"
    if tool == "vmdriver":
        s = run([ctx.vmctl, "clone", src_name, name, "--full", "--dest", d], timeout=600)[0]
        target = f"{d}/{name}-vda.qcow2"
    elif tool == "cp":
        s = run(["cp", "--reflink=never", "--sparse=auto", src_disk, target], timeout=600)[0]
    elif tool == "qemu-img convert":
        s = run(["qemu-img", "convert", "-W", "-m", "8", "-O", "qcow2", src_disk, target], timeout=600)[0]
    elif tool == "dd":
        s = run(["dd", f"if={src_disk}", f"of={target}", "bs=16M", "conv=sparse", "status=none"], timeout=600)[0]
    elif tool == "virt-clone":
        s = run(["virt-clone", "--connect", LOCAL, "--original", src_name, "--name", name, "--file", target],
                timeout=600)[0]
    return s, target


COPY_TOOLS = ["cp", "qemu-img convert", "dd"]


FULL_TOOLS = ["vmdriver"] + COPY_TOOLS + ["virt-clone"]


def full_clone_on(ctx, fs, d, reps):
    os.makedirs(d + "/clones", exist_ok=True)
    src = f"{PREFIX}full-{fs}"
    disk = f"{d}/{src}.qcow2"
    make_disk(disk, 4, 1 * GiB)
    define(LOCAL, src, disk, f"{d}/{src}.serial", d)
    data = allocated(disk)
    sizes = {t: [] for t in FULL_TOOLS}

    def one(tool, i):
        name = f"{src}-{i}-{FULL_TOOLS.index(tool)}"
        drop_caches(ctx)
        # Timed until the copy is on disk (the tool, then sync): without the sync this
        # measures copying into the page cache, and only fixed overheads would show.
        target = None
        try:
            s, target = full_clone_round(ctx, tool, src, disk, d + "/clones", name)
            s += run(["sync"])[0]
            sizes[tool].append(allocated(target))
            return s
        finally:
            dom = lookup(LOCAL, name)
            if dom is not None:
                dom.undefine()
            if target:
                rm(target)
            rm(f"{d}/clones/{name}-vda.qcow2", f"{d}/clones/{name}.qcow2")
            if tool == "virt-clone":
                remove_pools_under(WORK)

    try:
        runs = interleave(FULL_TOOLS, reps, one)
    finally:
        remove_domains(LOCAL, src + "-")
        dom = lookup(LOCAL, src)
        if dom is not None:
            dom.undefine()
    # Per round, the machine's own copy: the fastest of the three tools in that round.
    machine_runs = [{"value": min(values([runs[t][k] for t in COPY_TOOLS]))} for k in range(reps)]
    for m in machine_runs:
        if m["value"] == FAILED:
            m["value"] = None
    r, rs = pair_ratios(machine_runs, runs["vmdriver"])  # throughput ratio = copy time / VMDriver time
    tput = {t: (data / med(runs[t]) / MiB if med(runs[t]) else None) for t in FULL_TOOLS}
    best = min(COPY_TOOLS, key=lambda t: med(runs[t]) or FAILED)
    alloc = median(sizes["vmdriver"]) / data if sizes["vmdriver"] else None
    mib = lambda rs_: [None if x.get("value") is None else data / x["value"] / MiB for x in rs_]  # noqa: E731
    vc = pair_ratios(runs["virt-clone"], runs["vmdriver"])[0]
    rows = [
        row(f"full clone throughput, {fs} (4 GiB sparse, 1 GiB data; caches dropped, copy + sync)",
            tput["vmdriver"], tput[best], f"the machine's copy: fastest of cp --reflink=never --sparse=auto, "
            f"qemu-img convert -W -m 8, dd (fastest by median: {best})", r, "≥ 0.95× the machine's copy",
            r is not None and r >= 0.95, unit="MiB/s", vm_runs=mib(runs["vmdriver"]), anchor_runs=mib(machine_runs),
            speed=r, goal=0.95,
            note="every tool's median: " + ", ".join(f"{t} {tput[t]:.0f} MiB/s" if tput[t] else f"{t} failed"
                                                      for t in FULL_TOOLS)),
        row(f"full clone vs virt-clone, {fs} (extra row)", tput["vmdriver"], tput["virt-clone"], "virt-clone", vc,
            "reported", None, unit="MiB/s", vm_runs=mib(runs["vmdriver"]), anchor_runs=mib(runs["virt-clone"])),
        row(f"full clone allocated size vs source's, {fs}", median(sizes["vmdriver"]), data, "source",
            alloc, "≤ 1.05×", alloc is not None and alloc <= 1.05, unit="bytes"),
    ]
    return {"source_allocated": data, "runs": runs, "allocated": sizes, "throughput_MiBps": tput,
            "ratios": rs, "rows": rows}


def reflink_clone_on(ctx, d, reps):
    """On XFS with reflink: the library's full clone (vmbench, 20 clones) beside the floor, a
    `cp --reflink=always` of the same file plus one define round trip."""
    os.makedirs(d + "/clones", exist_ok=True)
    src = f"{PREFIX}reflink"
    disk = f"{d}/{src}.qcow2"
    make_disk(disk, 4, 1 * GiB)
    define(LOCAL, src, disk, f"{d}/{src}.serial", d)
    try:
        floor = floors(d, n=20)
        cps = []
        for i in range(20):
            target = f"{d}/clones/cp-{i}.qcow2"
            cps.append(run(["cp", "--reflink=always", disk, target])[0])
            rm(target)
        _, out, _, _ = run([ctx.vmbench, "clone-latency", src, "--full", "--count", str(20), "--prefix", src + "-c",
                            "--dest", d + "/clones"], timeout=600)
        samples = json.loads(out)["samples"]
    finally:
        remove_domains(LOCAL, src)
    p50 = median(samples)
    floor_s = median(cps) + floor["define"]
    return {"samples": samples, "cp_reflink": cps, "floor": floor, "rows": [
        row("full clone by reflink on XFS, library p50 (one disk, 1 GiB data, 20 clones)", p50, floor_s,
            "floor: cp --reflink=always (a process) + one define", p50 / floor_s, "≤ 5 ms + the define",
            p50 <= 0.005 + floor["define"], vm_runs=samples,
            note=f"cp --reflink=always {1e3 * median(cps):.1f} ms (process start included), "
                 f"define {1e3 * floor['define']:.2f} ms")]}


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
            result["xfs"] = reflink_clone_on(ctx, mnt + "/full", reps)
    except Failed as e:
        result["xfs"] = {"status": "skipped", "reason": f"no XFS loop image here: {e}", "rows": []}
    result["rows"] = result["ext4"]["rows"] + result["xfs"]["rows"]
    return result


# --- case: 20 linked clones made and started -------------------------------------------------

FLEET_ANCHOR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sh", "fleet-anchor.sh")


def case_fleet(ctx):
    """20 linked clones of a golden image: VMDriver's library (vmbench fleet, the clones made
    concurrently, starts spread over four connections) beside the fast path an expert would
    script: `qemu-img create -b` + `virsh define` (+ `virsh start`) per clone, run four at a
    time by `xargs -P 4`. Both sides get one untimed warm-up fleet; then made only, and made
    and started, each in alternating pairs. virt-clone (full copies, one after another) is an
    extra row."""
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
    reps = ctx.reps(1, 3)
    result = {"count": count, "golden_allocated": golden_bytes}

    def clear(prefix):
        remove_domains(LOCAL, prefix + "-")
        remove_pools_under(WORK)
        for f in os.listdir(d + "/clones"):
            rm(os.path.join(d, "clones", f))

    def vmdriver(prefix, start):
        argv = [ctx.vmbench, "fleet", golden, "--count", str(count), "--prefix", prefix, "--dest", d + "/clones"]
        return run(argv + ([] if start else ["--no-start"]), timeout=900)[0]

    def anchor(prefix, start):
        names = [f"{prefix}-{k}" for k in range(count)]
        for name in names:  # the definitions, written beforehand (untimed)
            with open(f"{d}/clones/{name}.xml", "w") as f:
                f.write(domain_xml(name, f"{d}/clones/{name}-vda.qcow2", f"{d}/clones/{name}.serial",
                                   pty_console=True))
        argv = ["xargs", "-P", "4", "-n", "1", "sh", FLEET_ANCHOR, "start" if start else "made", disk, d + "/clones"]
        t0 = time.monotonic()
        p = subprocess.run(argv, input="\n".join(names) + "\n", capture_output=True, text=True, timeout=900)
        s = time.monotonic() - t0
        if p.returncode != 0:
            raise Failed(f"xargs -P 4 fleet-anchor.sh exited {p.returncode}: {p.stderr.strip()[-400:]}")
        return s

    def one_for(start):
        def one(who, i):
            prefix = f"{golden}-{who[0]}{'s' if start else 'm'}{i}"
            try:
                return (vmdriver if who == "vmdriver" else anchor)(prefix, start)
            finally:
                clear(prefix)  # the booting TCG guests would eat both cores: gone at once
        return one

    try:
        # Warm-up, untimed, for both: VMDriver's first clone freezes the golden (its disk
        # becomes the base both sides clone from), and both sides' first runs load their code.
        for who in ("vmdriver", "anchor"):
            one_for(False)(who, -1)
        made = interleave(["vmdriver", "anchor"], reps, one_for(False))
        started = interleave(["vmdriver", "anchor"], reps, one_for(True))
        extra = []
        for k in range(ctx.reps(0, 1)):
            prefix = f"{golden}-v{k}"
            try:
                t0 = time.monotonic()
                for j in range(count):
                    name = f"{prefix}-{j}"
                    run(["virt-clone", "--connect", LOCAL, "--original", golden, "--name", name,
                         "--file", f"{d}/clones/{name}.qcow2"], timeout=600)
                    run(["virsh", "-q", "-c", LOCAL, "start", name], timeout=120)
                extra.append({"value": time.monotonic() - t0})
            except Failed as e:
                extra.append({"value": None, "error": str(e)})
            finally:
                clear(prefix)
    finally:
        remove_domains(LOCAL, golden)
        remove_pools_under(WORK)
        rm(d)
    r_made, _ = pair_ratios(made["anchor"], made["vmdriver"])  # speed-up: anchor / VMDriver
    r_started, _ = pair_ratios(started["vmdriver"], started["anchor"])  # VMDriver / anchor
    share = {who: (med(started[who]) - med(made[who])) if med(started[who]) and med(made[who]) else None
             for who in ("vmdriver", "anchor")}
    size = f"{golden_bytes // MiB} MiB"
    anchor_name = "xargs -P 4: qemu-img create -b + virsh define"
    rows = [
        row(f"{count} linked clones made, not started (golden with {size} allocated; library, concurrent)",
            med(made["vmdriver"]), med(made["anchor"]), anchor_name, r_made, "≥ 3× faster",
            r_made is not None and r_made >= 3, vm_runs=made["vmdriver"], anchor_runs=made["anchor"],
            speed=r_made, goal=3, note="ratio = anchor time / VMDriver time; process start included on both sides"),
        row(f"{count} linked clones made and started", med(started["vmdriver"]), med(started["anchor"]),
            anchor_name + " + virsh start", r_started, "≤ 1.0× anchor (no slower)",
            r_started is not None and r_started <= 1.0, vm_runs=started["vmdriver"], anchor_runs=started["anchor"],
            speed=None if not r_started else 1 / r_started, goal=1.0,
            note="the starts' share (made and started − made, medians): VMDriver "
                 + (f"{share['vmdriver']:.2f} s" if share["vmdriver"] is not None else "—") + ", anchor "
                 + (f"{share['anchor']:.2f} s" if share["anchor"] is not None else "—")),
    ]
    if extra:
        rows.append(row(f"{count} full copies by virt-clone + virsh start, one after another (extra row)",
                        med(started["vmdriver"]), med(extra), "virt-clone + virsh start loop",
                        pair_ratios(extra, started["vmdriver"][:len(extra)])[0], "reported", None,
                        anchor_runs=extra, note="ratio = virt-clone loop time / VMDriver time"))
    result.update(made=made, started=started, virt_clone=extra, start_share=share, rows=rows)
    return result


# --- case: open by name and list -------------------------------------------------------------

def case_open_list(ctx):
    import libvirt
    d = WORK + "/list"
    rm(d)
    os.makedirs(d)
    conn = lv(LOCAL)
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
            def one(k, i, mode=mode):
                out = json.loads(run(impl[k](mode), timeout=600)[1])
                return out["seconds"] / out["calls"]

            runs = interleave(list(impl), rounds, one)
            # virsh: a process per call, as a shell script would do it.
            argv = ["virsh", "-q", "-c", LOCAL, "dominfo", target] if mode == "open" else \
                ["virsh", "-q", "-c", LOCAL, "list", "--all"]
            start = time.monotonic()
            for _ in range(n_virsh):
                run(argv)
            per_virsh = (time.monotonic() - start) / n_virsh
            r, rs = pair_ratios(runs["vmdriver"], runs["c"])
            result[mode] = {"runs": runs, "virsh_per_call": per_virsh, "ratios": rs}
            what = f"open by name ×{n_open}" if mode == "open" else f"list all ({vms} defined VMs) ×{n_list}"
            rows.append(row(f"{what}: per call, library", med(runs["vmdriver"]), med(runs["c"]),
                            "C API loop (gcc)", r, "≤ 2× C loop", r is not None and r <= 2, vm_runs=runs["vmdriver"],
                            anchor_runs=runs["c"], speed=None if not r else 1 / r, goal=0.5,
                            python=med(runs["python"]), virsh=per_virsh))
        result["rows"] = rows
        result["vms"] = vms
    finally:
        for name in names:
            try:
                conn.lookupByName(name).undefine()
            except libvirt.libvirtError:
                pass
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
            for n in (src + "-c", src):
                dom = lookup(LOCAL, n)
                if dom is not None:
                    dom.undefine()
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
            refresh_pool(uri_of(h), pool)


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
    lookup(uri_of(host), name).create()
    wait_heartbeat(serial)


def where(name):
    for h in HOSTS:
        d = lookup(uri_of(h), name)
        try:
            if d is not None and d.isActive():
                return h
        except Exception:  # noqa: BLE001: a host that does not answer holds nothing running
            pass
    return None


def jobinfo(uri, name):
    """The completed migration job's statistics on `uri` (python-libvirt's jobStats)."""
    import libvirt
    d = lookup(uri, name)
    if d is None:
        return {}
    try:
        return d.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    except libvirt.libvirtError:
        return {}


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
    return {"value": s, "wall": s, "seconds": res.get("seconds"), "downtime_ms": res.get("downtimeMilliseconds"),
            "bytes": res.get("bytesTransferred"), "steps": res.get("steps"), "peak_rss": hwm,
            "call_s": res.get("migrationCallSeconds")}


_tcg_live = None


def tcg_live():
    """Whether the testbed's QEMU moves TCG guests live without losing their writes (9.0 or
    later). Where it does not, vmctl moves them warm (not live), and so must virsh: the same
    work on both sides."""
    global _tcg_live
    if _tcg_live is None:
        try:
            _tcg_live = lv(uri_of("hosta")).getVersion() // 1_000_000 >= 9
        except Exception:  # noqa: BLE001
            _tcg_live = False
    return _tcg_live


def virsh_migrate_words():
    return "virsh migrate --live --p2p --unsafe" if tcg_live() else "virsh migrate --p2p --unsafe (warm: not live)"


def migrate_virsh(name, src, extra=(), limit=None, live=None):
    """virsh's move of `name` from `src` to the other host. `live`: --live (default: where the
    testbed's QEMU moves TCG guests live). Past `limit` the job is aborted: a failed run."""
    dst = other(src)
    live = tcg_live() if live is None else live
    argv = ["virsh", "-q", "-c", uri_of(src), "migrate", *(["--live"] if live else []), "--p2p", "--unsafe",
            "--persistent", "--undefinesource", *extra, name, uri_of(dst), "--migrateuri", f"tcp://{HOSTS[dst]}"]
    start = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _, err = p.communicate(timeout=limit or 600)
    except subprocess.TimeoutExpired:
        # Did not finish within the limit: abort the job (the guest stays on the source).
        d = lookup(uri_of(src), name)
        if d is not None:
            try:
                d.abortJob()
            except Exception:  # noqa: BLE001
                pass
        p.communicate(timeout=60)
        raise Failed(f"virsh migrate did not finish within {limit:.0f} s (aborted)")
    s = time.monotonic() - start
    if p.returncode != 0:
        raise Failed(f"virsh migrate exited {p.returncode}: {err.strip()[-500:]}")
    info = jobinfo(uri_of(dst), name)
    memory = info.get("data_processed") or info.get("memory_processed") or 0
    return {"value": s, "wall": s, "downtime_ms": info.get("downtime"),
            "bytes": memory + (info.get("disk_processed") or 0), "disk_bytes": info.get("disk_processed")}


def serial_of(name):
    return f"{SHARED}/{name}.serial"


def serial_mark(name):
    try:
        return os.path.getsize(serial_of(name))
    except FileNotFoundError:
        return 0


def check_guest(name, mark, dirty=False, timeout=30):
    """After a move: the guest runs on exactly one host, never rebooted (no VMDRIVER-INIT after
    `mark`, the serial log's size before the move), its heartbeat goes on past the last one
    before the move, and, for the dirtying guest, a verification pass of its pages completes
    after the move with no CORRUPT line. Raises Failed naming what is wrong."""
    running = [h for h in HOSTS if (lambda d: d is not None and d.isActive())(lookup(uri_of(h), name))]
    if len(running) != 1:
        raise Failed(f"{name} runs on {len(running)} hosts ({', '.join(running) or 'none'}) after the move")
    with open(serial_of(name), "rb") as f:
        before = f.read(mark).decode(errors="replace")
    beats = [int(m) for m in re.findall(r"VMDRIVER-HEARTBEAT (\d+)", before)]
    last = beats[-1] if beats else 0
    deadline = time.monotonic() + timeout
    while True:
        with open(serial_of(name), "rb") as f:
            f.seek(mark)
            after = f.read().decode(errors="replace")
        if "VMDRIVER-INIT" in after:
            raise Failed(f"{name} rebooted during the move")
        if "CORRUPT" in after:
            line = next(x for x in after.splitlines() if "CORRUPT" in x)
            raise Failed(f"{name} lost writes in the move: {line.strip()[:200]}")
        later = [int(m) for m in re.findall(r"VMDRIVER-HEARTBEAT (\d+)", after)]
        passed = not dirty or re.search(r"VMDRIVER-DIRTY pass=\d+ ok", after)
        if later and max(later) > last and passed:
            return
        if time.monotonic() > deadline:
            raise Failed(f"{name}: no heartbeat after {last}" if not (later and max(later) > last)
                         else f"{name}: no verified pass of its pages within {timeout} s of the move")
        time.sleep(0.2)


def move_pairs(ctx, name, pairs_n, vm_args, virsh_args, before=None, dirty=False, limit=None, virsh_live=None,
               vm_timeout=300):
    """Alternating pairs of moves of one guest (vmctl, virsh; then virsh, vmctl ...), each from
    wherever the guest is to the other host, each followed by the guest check (a move whose
    guest fails it is a failed run of that side). `before(who, src, dst)` readies the
    destination (untimed)."""
    def one(who, i):
        src = where(name)
        if src is None:
            raise Failed(f"{name} is running on neither host")
        if before:
            before(who, src, other(src))
        if who == "vmdriver":
            return checked_move(name, src, lambda: migrate_vmctl(ctx, name, src, vm_args, timeout=vm_timeout),
                                dirty=dirty)
        return checked_move(name, src, lambda: migrate_virsh(name, src, virsh_args, limit=limit, live=virsh_live),
                            dirty=dirty)

    return interleave(["vmdriver", "virsh"], pairs_n, one)


def checked_move(name, src, move, dirty=False):
    """One move of `name` from `src` by `move()`, with the bytes it put on the testbed's links
    and the guest check after it (a guest failing it makes the move a failed run)."""
    wire = wire_bytes()
    mark = serial_mark(name)
    got = move()
    got["wire_bytes"] = wire_bytes() - wire
    got["from"] = src
    try:
        check_guest(name, mark, dirty=dirty)
    except Failed as e:
        got.update(value=None, error=f"the guest check failed: {e}")
    return got


def downtimes(runs):
    return [r["downtime_ms"] for r in runs if r.get("value") is not None and r.get("downtime_ms") is not None]


def migration_case(ctx, label, setup, vm_args, virsh_args, pairs_n, target_ratio=1.1, before=None, after=None):
    """The shared shape of the hot migration cases: a guest set up once, then `move_pairs`;
    `after(name, runs)` measures more with the same guest and returns rows of its own."""
    tb = Testbed(ctx)
    tb.up()
    tb.clean()
    more = []
    try:
        name = setup()
        runs = move_pairs(ctx, name, pairs_n, vm_args, virsh_args, before=before)
        if after:
            more = after(name, runs)
    finally:
        tb.clean()
    r, rs = pair_ratios(runs["vmdriver"], runs["virsh"])
    errors = [x["error"] for x in runs["vmdriver"] if x.get("error")]
    result = {"runs": runs, "ratios": rs}
    if errors and all(x.get("code") == 1 for x in runs["vmdriver"] if x.get("error")) and not failures(runs["virsh"]):
        result["vmdriver_status"] = "skipped"
        result["reason"] = errors[0]
    ok = lambda who, key: [x[key] for x in runs[who] if x.get("value") is not None and x.get(key) is not None]  # noqa: E731
    fails = f"failed runs: VMDriver {failures(runs['vmdriver'])}/{pairs_n}, virsh {failures(runs['virsh'])}/{pairs_n}"
    return {**result, "rows": [
        row(f"{label}: wall (vmctl, process start included)", med(runs["vmdriver"]), med(runs["virsh"]),
            virsh_migrate_words(), r, f"≤ {target_ratio}× anchor", None if r is None else r <= target_ratio,
            downtime_ms=median(downtimes(runs["vmdriver"])), anchor_downtime_ms=median(downtimes(runs["virsh"])),
            bytes=median(ok("vmdriver", "wire_bytes")), anchor_bytes=median(ok("virsh", "wire_bytes")),
            reported_bytes=median(ok("vmdriver", "bytes")), vm_runs=runs["vmdriver"], anchor_runs=runs["virsh"],
            speed=None if not r else 1 / r, goal=1 / target_ratio,
            note=fails + (f"; VMDriver's first error: {errors[0][:300]}" if errors else ""))] + more}


def case_migrate_idle(ctx):
    """An idle guest on shared storage, moved back and forth, VMDriver and virsh given the same
    parameters: the same flags (live where the testbed's QEMU moves TCG guests live, else warm
    on both; p2p, persistent, undefine the source, unsafe for the verified shared folder), the
    same bandwidth cap and the same downtime limit (VMDriver's plain policy: no convergence
    steps). virsh's downtime limit is set through python-libvirt before its run, untimed."""
    name = PREFIX + "mig-idle"
    bandwidth, downtime = 1024, 300
    pairs_n = ctx.reps(4, 10)

    def before(who, src, dst):
        if who == "virsh":
            lookup(uri_of(src), name).migrateSetMaxDowntime(downtime, 0)

    tb = Testbed(ctx)
    tb.up()
    tb.clean()
    try:
        disk = f"{SHARED}/{name}.qcow2"
        shutil.copy(FIXTURES + "/data.qcow2", disk)
        os.chmod(disk, 0o666)
        start_guest(name, "hosta", disk, serial_of(name))
        vm_args = ["--type", "hot" if tcg_live() else "warm", "--policy", "plain", "--bandwidth", str(bandwidth),
                   "--max-downtime", str(downtime)]
        runs = move_pairs(ctx, name, pairs_n, vm_args, ["--bandwidth", str(bandwidth)], before=before)
    finally:
        tb.clean()
    r, rs = pair_ratios(runs["vmdriver"], runs["virsh"])
    walls = {w: [x for x in values(runs[w]) if x != FAILED] for w in runs}
    spread = {w: (min(walls[w]), max(walls[w])) if walls[w] else (None, None) for w in runs}
    dts = {w: downtimes(runs[w]) for w in runs}
    # VMDriver's time outside libvirt's migration call: vmctl's wall minus the call's time as
    # vmctl measured it (process start, connections, planning and checks, clean-up).
    outside = [x["wall"] - x["call_s"] for x in runs["vmdriver"] if x.get("value") is not None and x.get("call_s")]
    calls = [x["call_s"] for x in runs["vmdriver"] if x.get("value") is not None and x.get("call_s")]
    fails = f"failed runs: VMDriver {failures(runs['vmdriver'])}/{pairs_n}, virsh {failures(runs['virsh'])}/{pairs_n}"
    ms = lambda v: "—" if v is None else f"{v:.0f} ms"  # noqa: E731
    rows = [
        row(f"hot migration, idle 256 MiB guest, shared storage, {pairs_n} pairs: wall (vmctl, process start included)",
            med(runs["vmdriver"]), med(runs["virsh"]), virsh_migrate_words() + f" --bandwidth {bandwidth} "
            f"(max downtime {downtime} ms)", r, "≤ 1.0× anchor", None if r is None else r <= 1.0,
            downtime_ms=median(dts["vmdriver"]), anchor_downtime_ms=median(dts["virsh"]),
            vm_runs=runs["vmdriver"], anchor_runs=runs["virsh"], speed=None if not r else 1 / r, goal=1.0,
            note=f"{fails}; spread VMDriver {spread['vmdriver'][0] or 0:.2f}–{spread['vmdriver'][1] or 0:.2f} s, "
                 f"virsh {spread['virsh'][0] or 0:.2f}–{spread['virsh'][1] or 0:.2f} s; pair ratios "
                 + " ".join("✘" if x in (FAILED, 0.0) else f"{x:.2f}" for x in rs)),
        row("idle migration downtime p50 / p90 (libvirt's measure)", median(dts["vmdriver"]),
            median(dts["virsh"]), "virsh, same parameters", None, "reported", None, unit="ms",
            note=f"p90 VMDriver {ms(percentile(dts['vmdriver'], 90))}, virsh {ms(percentile(dts['virsh'], 90))}"),
        row("VMDriver's time outside libvirt's migration call (vmctl's wall − the call): process start, "
            "connections, planning and checks, clean-up", median(outside), None, "—", None, "reported", None,
            vm_runs=outside, note=f"the call itself: median {median(calls) or 0:.2f} s; virsh's whole wall "
                                  f"{med(runs['virsh']) or 0:.2f} s"),
    ]
    return {"runs": runs, "ratios": rs, "outside_s": outside, "rows": rows}


def case_migrate_dirty(ctx):
    """A guest dirtying 128 MiB as fast as it can, a 32 MiB/s cap: VMDriver (its default
    converge policy) against the line an expert would type: `virsh migrate --live --p2p
    --auto-converge --auto-converge-initial 20 --auto-converge-increment 10 --timeout 20
    --timeout-suspend` at the same cap (no --timeout-postcopy: TCG guests never go post-copy).
    The same hard limit for both (a run past it is aborted: failed), at least three
    alternating pairs, and each side's guest checked after its move (its pages verified,
    heartbeat, no reboot)."""
    name = PREFIX + "mig-dirty"
    bandwidth, limit = 32, 180
    pairs_n = ctx.reps(1, 3)
    expert = ["--auto-converge", "--auto-converge-initial", "20", "--auto-converge-increment", "10",
              "--timeout", "20", "--timeout-suspend", "--bandwidth", str(bandwidth)]
    tb = Testbed(ctx)
    tb.up()
    tb.clean()
    try:
        disk = f"{SHARED}/{name}.qcow2"
        shutil.copy(FIXTURES + "/data.qcow2", disk)
        os.chmod(disk, 0o666)
        start_guest(name, "hosta", disk, serial_of(name), dirty_mib=128)
        time.sleep(2)  # the dirtier is running
        runs = move_pairs(ctx, name, pairs_n, ["--bandwidth", str(bandwidth), "--timeout", str(limit)], expert,
                          dirty=True, limit=limit, virsh_live=True, vm_timeout=limit + 30)
    finally:
        tb.clean()
    r, rs = pair_ratios(runs["vmdriver"], runs["virsh"])
    dts = {w: downtimes(runs[w]) for w in runs}
    errors = {w: [x["error"] for x in runs[w] if x.get("error")] for w in runs}
    faster = r is not None and r < 1
    lower = bool(dts["vmdriver"]) and (not dts["virsh"] or median(dts["vmdriver"]) < median(dts["virsh"]))
    note = f"failed runs: VMDriver {failures(runs['vmdriver'])}/{pairs_n}, virsh {failures(runs['virsh'])}/{pairs_n}"
    for w in ("vmdriver", "virsh"):
        if errors[w]:
            note += f"; {w}'s first failure: {errors[w][0][:250]}"
    return {"runs": runs, "ratios": rs, "bandwidth_MiBps": bandwidth, "limit_s": limit, "rows": [
        row(f"hot migration, guest dirtying 128 MiB faster than a {bandwidth} MiB/s cap: time to finish",
            med(runs["vmdriver"]), med(runs["virsh"]), "virsh migrate --live --p2p --auto-converge "
            "--auto-converge-initial 20 --auto-converge-increment 10 --timeout 20 --timeout-suspend", r,
            "faster than the expert line, lower downtime", faster and lower, downtime_ms=median(dts["vmdriver"]),
            anchor_downtime_ms=median(dts["virsh"]), vm_runs=runs["vmdriver"], anchor_runs=runs["virsh"],
            bytes=median([x["wire_bytes"] for x in runs["vmdriver"] if x.get("value") is not None]),
            anchor_bytes=median([x["wire_bytes"] for x in runs["virsh"] if x.get("value") is not None]),
            speed=None if not r else 1 / r, goal=1.0, note=note)]}


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
            lookup(uri_of(src), name).migrateSetMaxDowntime(downtime, 0)
            try:
                real = migrate_virsh(name, src, ["--bandwidth", str(bandwidth)], limit=180, live=True)
                real["finished"] = True
            except Failed as e:
                real = {"finished": False, "error": str(e)}
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
        refresh_pool(uri_of("hosta"), "images")
        serial = f"{SHARED}/{name}.serial"
        start_guest(name, "hosta", f"/var/lib/libvirt/images/{disk_name}", serial)
        return name

    def before(who, src, dst):
        # Each run finds no copy on the destination (virsh: the "images" pool lets libvirt make one).
        rm(f"{host_images(dst)}/{disk_name}")
        refresh_pool(uri_of(dst), "images")

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
            refresh_pool(uri_of(h), "images")
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
        refresh_pool(uri_of(dst), "images")

    def placed(name, runs):
        """The base placed by VMDriver: the copy the other host holds removed, VMDriver's
        record of earlier comparisons forgotten, then `--storage incremental` to that host
        copies the base first (the move that places it), and the move back is the first over
        that pair: the digests recorded from the copy answer, and neither base is read."""
        src = where(name)
        if src is None:
            return [row("incremental over a base VMDriver placed", None, None, "—", None, "reported", False,
                        note="the guest ran on neither host after the pairs")]
        dst = other(src)
        rm(f"{host_images(dst)}/{base_name}", f"{host_images(dst)}/{overlay_name}")
        refresh_pool(uri_of(dst), "images")
        caches.append(tempfile.mkdtemp(prefix="vmdriver-bench-cache-"))
        os.environ["VMDRIVER_CACHE_DIR"] = caches[-1]
        got = {}
        for step, (a, b) in (("placing", (src, dst)), ("first over it", (dst, src))):
            rm(f"{host_images(b)}/{overlay_name}")
            refresh_pool(uri_of(b), "images")
            try:
                got[step] = checked_move(name, a, lambda: migrate_vmctl(ctx, name, a, ["--storage", "incremental"]))
            except Failed as e:
                got[step] = {"value": None, "error": str(e)}
        anchor = med(runs["virsh"])
        first = got["first over it"]
        r = first["value"] / anchor if first.get("value") and anchor else None
        mib = lambda b: "—" if b is None else f"{b / MiB:.0f} MiB"  # noqa: E731
        copied = [x for x in got["placing"].get("steps") or [] if x.startswith("copied ") and base_name in x]
        return [
            row("incremental: the move that places the base (--storage incremental to a host without it: "
                "the 1 GiB base copied first, then the overlay)", got["placing"].get("value"), None, "—", None,
                "reported", None if got["placing"].get("value") else False,
                note=f"on the links {mib(got['placing'].get('wire_bytes'))}; "
                     + (copied[0] if copied else got["placing"].get("error", "no copy step")[:300])),
            row("incremental: first move over the base VMDriver placed (digests recorded from the copy: "
                "neither base read)", first.get("value"), anchor, "virsh migrate --copy-storage-inc (median above)",
                r, "≤ 1.1× anchor", None if r is None else r <= 1.1, bytes=first.get("wire_bytes"),
                anchor_bytes=median([x["wire_bytes"] for x in runs["virsh"] if x.get("value") is not None
                                     and x.get("wire_bytes") is not None]),
                speed=None if not r else 1 / r, goal=1 / 1.1,
                note=f"on the links {mib(first.get('wire_bytes'))}"
                     + (f"; {first['error'][:300]}" if first.get("error") else "")),
        ]

    saved_cache = os.environ.get("VMDRIVER_CACHE_DIR")
    # A cache of the case's own: nothing VMDriver recorded before counts.
    caches = [tempfile.mkdtemp(prefix="vmdriver-bench-cache-")]
    os.environ["VMDRIVER_CACHE_DIR"] = caches[0]
    try:
        res = migration_case(ctx, "hot migration, incremental storage of a linked clone (64 MiB overlay)", setup,
                             ["--storage", "incremental"], ["--copy-storage-inc"], ctx.reps(1, 3), before=before,
                             after=placed)
    finally:
        if saved_cache is None:
            os.environ.pop("VMDRIVER_CACHE_DIR", None)
        else:
            os.environ["VMDRIVER_CACHE_DIR"] = saved_cache
        for folder in caches:
            shutil.rmtree(folder, ignore_errors=True)
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


def case_evacuate(ctx):
    """Four idle guests on shared storage moved to the other host two at a time: `vmctl
    migrate A B C D --to HOST --max-parallel 2` against the same moves by virsh run two at a
    time by `xargs -P 2`; each round moves them all the other way; every guest checked."""
    names = [f"{PREFIX}evac-{k}" for k in range(4)]
    pairs_n = ctx.reps(1, 3)
    tb = Testbed(ctx)
    tb.up()
    tb.clean()

    def one(who, i):
        srcs = {where(n) for n in names}
        if len(srcs) != 1 or None in srcs:
            raise Failed(f"the guests are not all on one host: {sorted(map(str, srcs))}")
        src = srcs.pop()
        dst = other(src)
        marks = {n: serial_mark(n) for n in names}
        if who == "vmdriver":
            argv = [ctx.vmctl, "-c", uri_of(src), "migrate", *names, "--to", HOSTS[dst], "--max-parallel", "2",
                    "--json"]
            s, _, err, rc = run(argv, check=False, timeout=600)
            if rc != 0:
                raise Failed(f"vmctl migrate --to exited {rc}: {err.strip()[-400:]}")
        else:
            live = ["--live"] if tcg_live() else []
            argv = ["xargs", "-P", "2", "-n", "1", "virsh", "-q", "-c", uri_of(src), "migrate", *live, "--p2p",
                    "--unsafe", "--persistent", "--undefinesource", "--desturi", uri_of(dst), "--migrateuri",
                    f"tcp://{HOSTS[dst]}", "--domain"]
            t0 = time.monotonic()
            p = subprocess.run(argv, input="\n".join(names) + "\n", capture_output=True, text=True, timeout=600)
            s = time.monotonic() - t0
            if p.returncode != 0:
                raise Failed(f"xargs -P 2 virsh migrate exited {p.returncode}: {p.stderr.strip()[-400:]}")
        for n in names:
            check_guest(n, marks[n])
        return s

    try:
        for n in names:
            disk = f"{SHARED}/{n}.qcow2"
            shutil.copy(FIXTURES + "/data.qcow2", disk)
            os.chmod(disk, 0o666)
            define(uri_of("hosta"), n, disk, serial_of(n), SHARED)
            lookup(uri_of("hosta"), n).create()
        for n in names:
            wait_heartbeat(serial_of(n), timeout=120)
        runs = interleave(["vmdriver", "virsh"], pairs_n, one)
    finally:
        tb.clean()
    r, rs = pair_ratios(runs["vmdriver"], runs["virsh"])
    return {"runs": runs, "ratios": rs, "rows": [
        row("evacuation: 4 idle guests, two at a time (vmctl migrate A B C D --to HOST --max-parallel 2)",
            med(runs["vmdriver"]), med(runs["virsh"]), "xargs -P 2 virsh migrate" + ("" if tcg_live() else
                                                                                  " (warm: not live)"), r,
            "reported", None, vm_runs=runs["vmdriver"], anchor_runs=runs["virsh"], speed=None if not r else 1 / r,
            note=f"failed runs: VMDriver {failures(runs['vmdriver'])}/{pairs_n}, virsh {failures(runs['virsh'])}/{pairs_n}")]}


# --- the run ---------------------------------------------------------------------------------

CASES = [
    ("linked_clone", "Linked clone vs qemu-img create -b + virsh define", case_linked_clone, False),
    ("clone_latency", "Library-level linked clone latency", case_clone_latency, False),
    ("full_clone", "Full clone vs the machine's copy (cp, qemu-img convert -W, dd), reflink vs its floor", case_full_clone, False),
    ("fleet", "20 linked clones made, and made and started, vs xargs -P 4 qemu-img + virsh", case_fleet, False),
    ("open_list", "Open by name and list vs C API, python-libvirt, virsh", case_open_list, False),
    ("peak_rss", "Peak memory of vmctl during full clones", case_peak_rss, False),
    ("migrate_idle", "Hot migration, idle guest, shared storage", case_migrate_idle, True),
    ("migrate_dirty", "Hot migration, guest dirtying memory faster than the cap", case_migrate_dirty, True),
    ("forecast", "migrate --check's pre-copy prediction vs the real move", case_forecast, True),
    ("migrate_copy", "Hot migration with copied storage", case_migrate_copy, True),
    ("migrate_incremental", "Hot migration with incremental storage", case_migrate_incremental, True),
    ("evacuate", "Four VMs moved two at a time vs xargs -P 2 virsh migrate", case_evacuate, True),
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
    def version(n):
        return f"{n // 1_000_000}.{n // 1000 % 1000}.{n % 1000}"
    try:
        libvirt_v, qemu_v = version(lv(LOCAL).getLibVersion()), version(lv(LOCAL).getVersion())
    except Exception:  # noqa: BLE001
        libvirt_v = qemu_v = None
    return {
        "cpu": cpu, "cores": os.cpu_count(), "memory_bytes": mem, "kernel": platform.release(),
        "os": (cmd(["sh", "-c", ". /etc/os-release; echo $PRETTY_NAME"]) or ""),
        "libvirt": libvirt_v, "qemu": qemu_v,
        "qemu_img": (cmd(["qemu-img", "--version"]) or "").splitlines()[0],
        "virt_clone": cmd(["virt-clone", "--version"]),
        "swift": (cmd(["swift", "--version"]) or "").splitlines()[0] if shutil.which("swift") else None,
        "root_fs": cmd(["findmnt", "-no", "FSTYPE", "/var/lib"]) or cmd(["findmnt", "-no", "FSTYPE", "/"]),
        "accelerator": "TCG (domain type qemu)",
    }


def finite(x):
    """The results with each failed run's infinite measure written as "failed" (JSON has no infinity)."""
    if isinstance(x, float) and x == FAILED:
        return "failed"
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


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
    results = finite(results)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=False)
    import report
    table = report.markdown(results) + report.every_run(results)
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
