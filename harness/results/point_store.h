/* Writing points: one `points` row (from the column table, columns.h) with its samples, memory and
 * counters rows, in one transaction, so a killed run keeps every finished point. */
#ifndef CB_POINT_STORE_H
#define CB_POINT_STORE_H

#include <sqlite3.h>
#include <stdbool.h>

#include "point_record.h"

/* With rec->resume_hash set, the key's earlier failed / time-refused rows (and their samples, memory and
 * counters) are deleted in the same transaction: one row per point key after a resume. */
int cb_store_insert_point(sqlite3 *db, const cb_point_record *rec, cb_err *err);

/* Whether a run of the same workload text (hash) and build (commit) already stored point `key` with an
 * outcome a new try would not change (--resume): measured, sampled, analytic, or refused for memory.
 * Failed points and points refused for time are not done: a resume tries them again (docs/promises.md). */
bool cb_store_point_done(sqlite3 *db, const char *hash, const char *commit, const char *key);

#endif
