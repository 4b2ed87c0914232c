/*
 * VMDriver disk-sequence writer (for migration tests).
 *
 *   seqwrite FILE RATE
 *
 * Appends numbered records to FILE, RATE records per second (1..1000), each written and
 * fsync'd before the next: record N is the 32-byte line
 *     "seq NNNNNNNNNN KKKKKKKKKKKKKKKK\n"
 * with N in decimal (10 digits) and K = N * 0x9E3779B97F4A7C15 in hex (16 digits), so a record
 * that changed or moved is caught, not only a missing one. Numbering goes on from the last
 * whole record already in FILE (a reboot continues the sequence). After each fsync that
 * completes a second's worth of records it prints, on stdout:
 *     VMDRIVER-SEQ N
 * meaning records 1..N are on the disk. A host reads FILE back from the image and checks
 * 1..M in order, each valid, with M >= the last N printed before it read the image.
 *
 * Build: gcc -static -O2 -o seqwrite seqwrite.c
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAGIC UINT64_C(0x9E3779B97F4A7C15)
#define RECORD 32

static void say(const char *line)
{
    size_t n = strlen(line);
    while (n > 0) {
        ssize_t w = write(1, line, n);
        if (w <= 0)
            return;
        line += w;
        n -= (size_t)w;
    }
}

static int format(char *out, uint64_t n)
{
    return snprintf(out, RECORD + 1, "seq %010" PRIu64 " %016" PRIx64 "\n", n, (uint64_t)(n * MAGIC));
}

int main(int argc, char **argv)
{
    char line[128], record[RECORD + 1];
    if (argc != 3) {
        fprintf(stderr, "usage: seqwrite FILE RATE\n");
        return 2;
    }
    char *end;
    long rate = strtol(argv[2], &end, 10);
    if (*end != '\0' || rate < 1 || rate > 1000) {
        fprintf(stderr, "seqwrite: bad rate '%s'\n", argv[2]);
        return 2;
    }
    int fd = open(argv[1], O_RDWR | O_CREAT, 0644);
    if (fd < 0) {
        snprintf(line, sizeof line, "VMDRIVER-SEQ cannot open %s\n", argv[1]);
        say(line);
        return 1;
    }
    /* Go on after the last whole, valid record; a torn tail is cut off. */
    struct stat st;
    fstat(fd, &st);
    uint64_t n = 0;
    off_t whole = st.st_size / RECORD;
    while (whole > 0) {
        char got[RECORD + 1] = {0};
        if (pread(fd, got, RECORD, (whole - 1) * RECORD) == RECORD) {
            uint64_t last = strtoull(got + 4, NULL, 10);
            format(record, last);
            if (memcmp(got, record, RECORD) == 0) {
                n = last;
                break;
            }
        }
        whole--;
    }
    if (ftruncate(fd, (off_t)n * RECORD) != 0 || lseek(fd, (off_t)n * RECORD, SEEK_SET) < 0) {
        say("VMDRIVER-SEQ cannot truncate\n");
        return 1;
    }
    snprintf(line, sizeof line, "VMDRIVER-SEQ start at=%" PRIu64 " rate=%ld\n", n + 1, rate);
    say(line);

    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    long step = 1000000000L / rate;
    for (;;) {
        n++;
        format(record, n);
        if (write(fd, record, RECORD) != RECORD || fsync(fd) != 0) {
            snprintf(line, sizeof line, "VMDRIVER-SEQ write failed at=%" PRIu64 "\n", n);
            say(line);
            return 1;
        }
        if (n % (uint64_t)rate == 0) {
            snprintf(line, sizeof line, "VMDRIVER-SEQ %" PRIu64 "\n", n);
            say(line);
        }
        next.tv_nsec += step;
        while (next.tv_nsec >= 1000000000L) {
            next.tv_nsec -= 1000000000L;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
}
