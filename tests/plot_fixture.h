/* Shared by the plot and report tests: build a results DB from tests/data/fixture.sql (or schema only). */
#ifndef CB_TEST_PLOT_FIXTURE_H
#define CB_TEST_PLOT_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

/* Create path with the harness schema (cb_store_open) and, unless schema_only, the rows of tests/data/fixture.sql.
 * Returns 0 or -1 (message on stderr). */
int cb_test_fixture_db(const char *path, bool schema_only);
/* mkdtemp under /tmp; returns a malloc'd path. */
char *cb_test_tmpdir(void);
/* rm -r of a test folder made by cb_test_tmpdir (files one level deep). */
void cb_test_rmdir(const char *dir);
/* Read a whole file (malloc'd, NUL-terminated); *n gets its size. NULL when unreadable. */
char *cb_test_slurp(const char *path, size_t *n);

#endif
