#!/usr/bin/python3
"""The python-libvirt anchor for "open by name" and "list" (scripts/bench.sh runs it with
Debian's /usr/bin/python3, which has python3-libvirt).

  lookup.py URI open NAME COUNT   lookupByName + name() + UUID() per call
  lookup.py URI list COUNT        listAllDomains(0) + name() and UUID() of each

Prints {"calls": COUNT, "seconds": S, "vms": N} on stdout, like bench/c/lookup.c."""
import json
import sys
import time

import libvirt

libvirt.registerErrorHandler(lambda ctx, err: None, None)


def main():
    uri, mode = sys.argv[1], sys.argv[2]
    conn = libvirt.open(uri)
    vms = 0
    if mode == "open":
        name, count = sys.argv[3], int(sys.argv[4])

        def once():
            dom = conn.lookupByName(name)
            dom.name()
            dom.UUID()
            return 1
    else:
        count = int(sys.argv[3])

        def once():
            doms = conn.listAllDomains(0)
            for dom in doms:
                dom.name()
                dom.UUID()
            return len(doms)

    vms = once()
    start = time.monotonic()
    for _ in range(count):
        vms = once()
    seconds = time.monotonic() - start
    conn.close()
    print(json.dumps({"calls": count, "seconds": seconds, "vms": vms}))


main()
