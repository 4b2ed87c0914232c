/* The direct C-API anchor for "open by name" and "list": what VMDriver's host.open(name) and
 * host.list(all: true) do, as plain libvirt calls on one connection. Compiled by
 * scripts/bench.sh with gcc at bench time.
 *
 *   lookup URI open NAME COUNT   virDomainLookupByName + virDomainGetName + virDomainGetUUID
 *   lookup URI list COUNT        virConnectListAllDomains (all) + name and UUID of each
 *
 * Prints {"calls": COUNT, "seconds": S, "vms": N} on stdout. */
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void silent(void *opaque, virErrorPtr error) { (void)opaque; (void)error; }

static int open_once(virConnectPtr conn, const char *name) {
    unsigned char uuid[VIR_UUID_BUFLEN];
    virDomainPtr dom = virDomainLookupByName(conn, name);
    if (!dom) return -1;
    int ok = virDomainGetName(dom) != NULL && virDomainGetUUID(dom, uuid) == 0;
    virDomainFree(dom);
    return ok ? 0 : -1;
}

static int list_once(virConnectPtr conn) {
    virDomainPtr *doms = NULL;
    unsigned char uuid[VIR_UUID_BUFLEN];
    int n = virConnectListAllDomains(conn, &doms, 0);
    if (n < 0) return -1;
    for (int i = 0; i < n; i++) {
        if (virDomainGetName(doms[i]) == NULL || virDomainGetUUID(doms[i], uuid) != 0) n = -1;
        virDomainFree(doms[i]);
    }
    free(doms);
    return n;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: %s URI open NAME COUNT | URI list COUNT\n", argv[0]);
        return 4;
    }
    virSetErrorFunc(NULL, silent);
    virConnectPtr conn = virConnectOpen(argv[1]);
    if (!conn) {
        fprintf(stderr, "lookup: cannot connect to %s\n", argv[1]);
        return 2;
    }
    int listing = strcmp(argv[2], "list") == 0;
    if (!listing && argc < 5) return 4;
    long count = atol(listing ? argv[3] : argv[4]);
    int vms = 0;
    /* one untimed call, as the Swift and Python loops do */
    if ((listing ? (vms = list_once(conn)) : open_once(conn, argv[3])) < 0) {
        fprintf(stderr, "lookup: %s\n", virGetLastErrorMessage());
        return 2;
    }
    double start = now();
    for (long i = 0; i < count; i++) {
        int rc = listing ? (vms = list_once(conn)) : open_once(conn, argv[3]);
        if (rc < 0) {
            fprintf(stderr, "lookup: %s\n", virGetLastErrorMessage());
            return 2;
        }
    }
    double seconds = now() - start;
    virConnectClose(conn);
    printf("{\"calls\": %ld, \"seconds\": %.9f, \"vms\": %d}\n", count, seconds, vms);
    return 0;
}
