/*
 * VMDriver memory-dirtying workload (for migration tests).
 *
 *   dirty MIB [RATE]
 *
 * Allocates MIB MiB and rewrites all of it in passes, forever. With RATE > 0 it writes
 * at most RATE MiB per second (it sleeps between 1 MiB chunks); 0 or absent: flat out. In pass P (P = 1, 2, ...)
 * word i (8 bytes) becomes  i ^ (P * 0x9E3779B97F4A7C15). Before a word is rewritten
 * it is checked against the previous pass's value, so a page that a migration
 * transferred wrongly (stale or lost) is caught on the next pass.
 *
 * Output (stdout, one line each, about once per second and on every corruption):
 *   VMDRIVER-DIRTY start mib=N rate=R
 *   VMDRIVER-DIRTY pass=P ok
 *   VMDRIVER-DIRTY pass=P CORRUPT at offset X (N bad words, expected E got G)
 * "pass=P" names the pass whose check ran (it verified pass P-1's pattern).
 *
 * Build: gcc -static -O2 -o dirty dirty.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAGIC 0x9E3779B97F4A7C15ULL

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void say(const char *line)
{
    /* write(2) on fd 1: no stdio buffering, one line per call */
    size_t n = strlen(line);
    while (n > 0) {
        ssize_t w = write(1, line, n);
        if (w <= 0)
            return;
        line += w;
        n -= (size_t)w;
    }
}

int main(int argc, char **argv)
{
    char line[256];
    if (argc != 2 && argc != 3) {
        fprintf(stderr, "usage: dirty MIB [RATE_MIB_PER_S]\n");
        return 2;
    }
    char *end;
    unsigned long mib = strtoul(argv[1], &end, 10);
    if (*end != '\0' || mib == 0 || mib > (1UL << 20)) {
        fprintf(stderr, "dirty: bad size '%s'\n", argv[1]);
        return 2;
    }
    unsigned long rate = 0;
    if (argc == 3) {
        rate = strtoul(argv[2], &end, 10);
        if (*end != '\0') {
            fprintf(stderr, "dirty: bad rate '%s'\n", argv[2]);
            return 2;
        }
    }
    size_t words = (size_t)mib * 1024 * 1024 / 8;
    const size_t chunk = 1024 * 1024 / 8; /* words per MiB */
    volatile uint64_t *mem = malloc(words * 8);
    if (mem == NULL) {
        snprintf(line, sizeof line, "VMDRIVER-DIRTY cannot allocate %lu MiB\n", mib);
        say(line);
        return 1;
    }
    snprintf(line, sizeof line, "VMDRIVER-DIRTY start mib=%lu rate=%lu\n", mib, rate);
    say(line);

    double last = now(), t0 = last, written = 0; /* MiB written since t0 */
    for (uint64_t pass = 1;; pass++) {
        uint64_t key = pass * MAGIC, prev = (pass - 1) * MAGIC;
        size_t bad = 0, first = 0;
        uint64_t want = 0, got = 0;
        for (size_t i = 0; i < words; i++) {
            if (pass > 1) {
                uint64_t v = mem[i];
                if (v != ((uint64_t)i ^ prev)) {
                    if (bad++ == 0) {
                        first = i;
                        want = (uint64_t)i ^ prev;
                        got = v;
                    }
                }
            }
            mem[i] = (uint64_t)i ^ key;
            if (rate > 0 && (i + 1) % chunk == 0) {
                written += 1;
                double ahead = t0 + written / (double)rate - now();
                if (ahead > 0) {
                    struct timespec ts = {(time_t)ahead, (long)((ahead - (time_t)ahead) * 1e9)};
                    nanosleep(&ts, NULL);
                }
            }
        }
        double t = now();
        if (bad > 0) {
            snprintf(line, sizeof line,
                     "VMDRIVER-DIRTY pass=%llu CORRUPT at offset %zu (%zu bad words, expected %016llx got %016llx)\n",
                     (unsigned long long)pass, first * 8, bad, (unsigned long long)want,
                     (unsigned long long)got);
            say(line);
            last = t;
        } else if (pass >= 2 && (t - last >= 1.0 || pass == 2)) {
            snprintf(line, sizeof line, "VMDRIVER-DIRTY pass=%llu ok\n", (unsigned long long)pass);
            say(line);
            last = t;
        }
    }
}
