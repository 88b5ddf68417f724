/* Shared by the fuzz targets: the input as a NUL-terminated string, or written to a file (the readers
 * under test take paths; the file lives in /dev/shm when it exists, so no disk is touched). */
#ifndef CB_FUZZ_IO_H
#define CB_FUZZ_IO_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static inline char *fuzz_text(const uint8_t *data, size_t size) {
    char *s = malloc(size + 1);
    if (!s) abort();
    memcpy(s, data, size);
    s[size] = 0;
    return s;
}

/* A per-process scratch directory, made once. */
static inline const char *fuzz_dir(void) {
    static char dir[256];
    if (!dir[0]) {
        struct stat sb;
        snprintf(dir, sizeof dir, "%s/ctxbench-fuzz-%d", stat("/dev/shm", &sb) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
        mkdir(dir, 0700);
    }
    return dir;
}

static inline void fuzz_write(const char *path, const uint8_t *data, size_t size) {
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
}

#endif
