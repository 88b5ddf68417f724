/* Atomic output files (atomic_file.h): mkstemp beside the target, fsync, rename. */
#include "atomic_file.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int cb_atomic_open(cb_atomic_file *a, const char *path, cb_err *err) {
    memset(a, 0, sizeof *a);
    if (snprintf(a->path, sizeof a->path, "%s", path) >= (int)sizeof a->path) {
        cb_err_set(err, "%.200s...: path too long", path);
        return -1;
    }
    snprintf(a->tmp, sizeof a->tmp, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(a->tmp);
    if (fd < 0) {
        cb_err_set(err, "%s: cannot create a temp file beside it: %s", path, strerror(errno));
        return -1;
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600; an output is read by others like any file we write */
    if (!(a->f = fdopen(fd, "w"))) {
        cb_err_set(err, "%s: %s", path, strerror(errno));
        close(fd), unlink(a->tmp);
        return -1;
    }
    return 0;
}

int cb_atomic_commit(cb_atomic_file *a, cb_err *err) {
    int rc = 0;
    if (fflush(a->f) || ferror(a->f) || fsync(fileno(a->f))) {
        cb_err_set(err, "%s: write failed: %s", a->path, strerror(errno));
        rc = -1;
    }
    if (fclose(a->f) && !rc) cb_err_set(err, "%s: close failed: %s", a->path, strerror(errno)), rc = -1;
    a->f = NULL;
    if (!rc && rename(a->tmp, a->path)) cb_err_set(err, "%s: cannot rename %s over it: %s", a->path, a->tmp, strerror(errno)), rc = -1;
    if (rc) unlink(a->tmp);
    return rc;
}

void cb_atomic_abort(cb_atomic_file *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    unlink(a->tmp);
}
