/* Fixture DB for the plot/report tests (see plot_fixture.h). Not a test file itself: no Test() here. */
#include "plot_fixture.h"

#include <dirent.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../harness/results/store.h"

char *cb_test_slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)len + 1);
    size_t got = fread(s, 1, (size_t)len, f);
    fclose(f);
    s[got] = 0;
    if (n) *n = got;
    return s;
}

int cb_test_fixture_db(const char *path, bool schema_only) {
    unlink(path);
    sqlite3 *db = NULL;
    cb_err err = {0};
    if (cb_store_open(path, &db, &err)) { /* the harness's schema, exactly as `ctxbench run` creates it */
        fprintf(stderr, "fixture DB %s: %s\n", path, err.msg);
        return -1;
    }
    int rc = 0;
    if (!schema_only) {
        char *sql = cb_test_slurp("tests/data/fixture.sql", NULL);
        if (!sql) {
            fprintf(stderr, "tests/data/fixture.sql: cannot read (run the tests from the repository root)\n");
            cb_store_close(db);
            return -1;
        }
        char *msg = NULL;
        if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
            fprintf(stderr, "tests/data/fixture.sql: %s\n", msg ? msg : sqlite3_errmsg(db));
            rc = -1;
        }
        sqlite3_free(msg);
        free(sql);
    }
    cb_store_close(db);
    return rc;
}

char *cb_test_tmpdir(void) {
    char *d = strdup("/tmp/ctxbench-plot-XXXXXX");
    if (!mkdtemp(d)) {
        free(d);
        return NULL;
    }
    return d;
}

void cb_test_rmdir(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    char p[4200];
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        DIR *sub = opendir(p);
        if (sub) { /* one level of sub-folders (plot output) */
            struct dirent *f;
            char q[8400];
            while ((f = readdir(sub)))
                if (strcmp(f->d_name, ".") && strcmp(f->d_name, "..")) snprintf(q, sizeof q, "%s/%s", p, f->d_name), unlink(q);
            closedir(sub);
            rmdir(p);
        } else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}
