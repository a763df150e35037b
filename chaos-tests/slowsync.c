/*
 * A slow disk for the chaos suite (chaos-tests/README.md, `disk_slow`, `disk_stall`): loaded
 * into every process of a run with LD_PRELOAD, it delays fsync, fdatasync and sync_file_range
 * on files under a path listed in the control file named by $MAGNUM_SLOW_SYNC, one
 * "PATH-PREFIX DELAY-MS" per line, read at each call. The kernel here has no device-mapper
 * delay target and no sch_netem, and a FUSE passthrough would slow every read and write; the
 * process cannot tell this from a device whose flushes are slow.
 *
 * Build: gcc -shared -fPIC -O2 -o slowsync.so slowsync.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* The delay for a sync of `fd`: the largest of the lines whose prefix starts its path. */
static long delay_ms(int fd) {
    const char *ctl = getenv("MAGNUM_SLOW_SYNC");
    if (ctl == NULL || *ctl == '\0') {
        return 0;
    }
    char link[64];
    char path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n <= 0) {
        return 0;
    }
    path[n] = '\0';
    FILE *f = fopen(ctl, "re");
    if (f == NULL) {
        return 0;
    }
    char prefix[4096];
    long ms = 0;
    long best = 0;
    while (fscanf(f, "%4095s %ld", prefix, &ms) == 2) {
        if (strncmp(path, prefix, strlen(prefix)) == 0 && ms > best) {
            best = ms;
        }
    }
    fclose(f);
    return best;
}

static void hold(int fd) {
    int saved = errno;
    long ms = delay_ms(fd);
    if (ms > 0) {
        struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
        while (nanosleep(&t, &t) == -1 && errno == EINTR) {
        }
    }
    errno = saved;
}

int fsync(int fd) {
    static int (*real)(int);
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    }
    hold(fd);
    return real(fd);
}

int fdatasync(int fd) {
    static int (*real)(int);
    if (real == NULL) {
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    }
    hold(fd);
    return real(fd);
}

int sync_file_range(int fd, off_t offset, off_t nbytes, unsigned int flags) {
    static int (*real)(int, off_t, off_t, unsigned int);
    if (real == NULL) {
        real = (int (*)(int, off_t, off_t, unsigned int))dlsym(RTLD_NEXT, "sync_file_range");
    }
    hold(fd);
    return real(fd, offset, nbytes, flags);
}
