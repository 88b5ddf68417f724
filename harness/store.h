/* The results database (SQLite, WAL). Schema in docs/schema.md; version in PRAGMA user_version. */
#ifndef CB_STORE_H
#define CB_STORE_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "../engines/common.h"

#define CB_SCHEMA_VERSION 5

/* Open (creating or migrating to CB_SCHEMA_VERSION) the database at path. */
int cb_store_open(const char *path, sqlite3 **db, cb_err *err);
/* Apply migrations from the DB's user_version up to CB_SCHEMA_VERSION. */
int cb_store_migrate(sqlite3 *db, cb_err *err);
void cb_store_close(sqlite3 *db);
/* Run SQL with no result rows; err names the statement on failure. */
int cb_store_exec(sqlite3 *db, const char *sql, cb_err *err);
/* The CREATE statements of schema version 1 (later versions are migrations on top of it; tests build
 * a version-1 database from it to check the migration). */
const char *cb_store_schema_sql(void);

#endif
