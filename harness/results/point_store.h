/* Writing points: one `points` row (from the column table, columns.h) with its samples, memory and
 * counters rows, in one transaction, so a killed run keeps every finished point. */
#ifndef CB_POINT_STORE_H
#define CB_POINT_STORE_H

#include <sqlite3.h>
#include <stdbool.h>

#include "point_record.h"

int cb_store_insert_point(sqlite3 *db, const cb_point_record *rec, cb_err *err);

/* Whether a run of the same workload text (hash) and build (commit) already stored point `key` (--resume). */
bool cb_store_point_done(sqlite3 *db, const char *hash, const char *commit, const char *key);

#endif
