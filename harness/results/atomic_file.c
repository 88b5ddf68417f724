/* Atomic outputs: temp file in the same directory + fsync + rename (see atomic_file.h). */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static mode_t file_mode(void) {
    mode_t m = umask(0);
    umask(m);
    return 0666 & ~m;
}

int cb_atomic_temp(const char *path, char *tmp, size_t n, cb_err *err) {
    char dir[4096], base[4096];
    snprintf(dir, sizeof dir, "%s", path);
    snprintf(base, sizeof base, "%s", path);
    int w = snprintf(tmp, n, "%s/.%s.tmp-XXXXXX", dirname(dir), basename(base));
    if (w < 0 || (size_t)w >= n) { cb_err_set(err, "%s: path too long", path); return -1; }
    int fd = mkstemp(tmp);
    if (fd < 0) { cb_err_set(err, "%s: cannot create a file in its directory: %s", path, strerror(errno)); return -1; }
    if (fchmod(fd, file_mode())) { /* mkstemp gives 0600; outputs get the usual mode */
        cb_err_set(err, "%s: %s", tmp, strerror(errno));
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    return 0;
}

static int sync_path(const char *p, int flags, cb_err *err) {
    int fd = open(p, flags | O_CLOEXEC);
    if (fd < 0) { cb_err_set(err, "%s: %s", p, strerror(errno)); return -1; }
    int rc = fsync(fd);
    if (rc && errno == EINVAL) rc = 0; /* a directory or file system without fsync: nothing to flush */
    if (rc) cb_err_set(err, "%s: fsync: %s", p, strerror(errno));
    close(fd);
    return rc ? -1 : 0;
}

int cb_atomic_rename(const char *tmp, const char *path, cb_err *err) {
    if (sync_path(tmp, O_RDONLY, err)) { unlink(tmp); return -1; }
    if (rename(tmp, path)) {
        cb_err_set(err, "%s: cannot replace it: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    return sync_path(dirname(dir), O_RDONLY | O_DIRECTORY, err);
}

int cb_atomic_open(cb_atomic_file *a, const char *path, cb_err *err) {
    memset(a, 0, sizeof *a);
    snprintf(a->path, sizeof a->path, "%s", path);
    if (cb_atomic_temp(path, a->tmp, sizeof a->tmp, err)) return -1;
    a->f = fopen(a->tmp, "w");
    if (!a->f) {
        cb_err_set(err, "%s: %s", a->tmp, strerror(errno));
        unlink(a->tmp);
        a->tmp[0] = 0;
        return -1;
    }
    return 0;
}

int cb_atomic_commit(cb_atomic_file *a, cb_err *err) {
    if (!a->f) { cb_err_set(err, "%s: not open", a->path); return -1; }
    bool bad = ferror(a->f) != 0;
    bad |= fflush(a->f) != 0;
    int e = errno;
    bad |= fclose(a->f) != 0;
    a->f = NULL;
    if (bad) {
        cb_err_set(err, "%s: write failed: %s", a->path, strerror(e ? e : EIO));
        unlink(a->tmp);
        a->tmp[0] = 0;
        return -1;
    }
    int rc = cb_atomic_rename(a->tmp, a->path, err);
    a->tmp[0] = 0;
    return rc;
}

void cb_atomic_abort(cb_atomic_file *a) {
    if (a->f) fclose(a->f);
    a->f = NULL;
    if (a->tmp[0]) unlink(a->tmp);
    a->tmp[0] = 0;
}
