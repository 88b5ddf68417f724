/* The results database (SQLite, WAL). Schema in docs/schema.md; version in PRAGMA user_version. */
#ifndef CB_STORE_H
#define CB_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "../../engines/common.h"
#include "columns.h" /* CB_SCHEMA_VERSION */

/* Open (creating or migrating to CB_SCHEMA_VERSION) the database at path. */
int cb_store_open(const char *path, sqlite3 **db, cb_err *err);
/* Apply migrations from the DB's user_version up to CB_SCHEMA_VERSION. */
int cb_store_migrate(sqlite3 *db, cb_err *err);
void cb_store_close(sqlite3 *db);
/* Run SQL with no result rows; err names the statement on failure. */
int cb_store_exec(sqlite3 *db, const char *sql, cb_err *err);
/* Open an existing database for reading (plot, report, merge's inputs): read-only, never created (a
 * missing path is an error), journal mode untouched; a newer schema is refused. The current views are
 * installed as TEMP views; an older schema is copied into memory and migrated there (the file is not
 * changed). A WAL database in a directory this user cannot write is read when no -wal file is pending. */
int cb_store_open_read(const char *path, sqlite3 **db, cb_err *err);
/* runs.workload_hash, the key of --resume and of merge's twin runs: FNV-1a 64 of the workload text, as 16
 * hex digits. */
void cb_workload_hash(const char *text, char out[17]);
/* The CREATE statements of schema version 1 (later versions are migrations on top of it; tests build
 * a version-1 database from it to check the migration). sqlite3_malloc'd: sqlite3_free it. */
char *cb_store_schema_v1_sql(void);

#endif
