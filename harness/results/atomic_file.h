/* Outputs that appear whole or not at all: written to a temporary file in the target's directory,
 * flushed to disk, then renamed over the target (docs/promises.md). A failure at any step leaves the
 * target as it was; the temporary file is removed. */
#ifndef CB_ATOMIC_FILE_H
#define CB_ATOMIC_FILE_H

#include <stdio.h>

#include "../../engines/common.h"

typedef struct {
    FILE *f;          /* write through this */
    char path[4096];  /* the target */
    char tmp[4096];   /* the temporary file, same directory */
} cb_atomic_file;

/* Create the temporary file for `path` and open it for writing (mode 0666 less the umask). */
int cb_atomic_open(cb_atomic_file *a, const char *path, cb_err *err);
/* Flush, fsync, close and rename over the target (then fsync the directory). On failure the target is
 * untouched and the temporary file removed. */
int cb_atomic_commit(cb_atomic_file *a, cb_err *err);
/* Close and remove the temporary file; the target is untouched. Safe to call after commit or twice. */
void cb_atomic_abort(cb_atomic_file *a);

/* For files another program writes (gnuplot, SQLite): a fresh empty temporary file next to `path`,
 * its name in tmp; then cb_atomic_rename(tmp, path) once the writer has finished. */
int cb_atomic_temp(const char *path, char *tmp, size_t n, cb_err *err);
int cb_atomic_rename(const char *tmp, const char *path, cb_err *err);

#endif
