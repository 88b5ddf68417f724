/* Output files written atomically: into a temp file beside the target, renamed over it once complete, so
 * a reader never sees half a file and a failed write leaves the old one. */
#ifndef CB_ATOMIC_FILE_H
#define CB_ATOMIC_FILE_H

#include <stdio.h>

#include "../engines/common.h"

typedef struct {
    FILE *f;
    char path[4096], tmp[4120];
} cb_atomic_file;

/* Open `path` for writing (a temp file in the same directory). err names the path. */
int cb_atomic_open(cb_atomic_file *a, const char *path, cb_err *err);
/* Flush, fsync and rename over the target; on any failure the temp file is removed and err says why. */
int cb_atomic_commit(cb_atomic_file *a, cb_err *err);
/* Give up: close and remove the temp file; the target is untouched. */
void cb_atomic_abort(cb_atomic_file *a);

#endif
