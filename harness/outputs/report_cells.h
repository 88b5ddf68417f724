/* The cells the claims report prints from the views (report.c, report_peer.c): a query, a text cell, a
 * 95% CI cell. */
#ifndef CB_REPORT_CELLS_H
#define CB_REPORT_CELLS_H

#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>

/* The prepared statement, or NULL (sqlite3_errmsg(db) says why). */
sqlite3_stmt *cb_report_query(sqlite3 *db, const char *sql);
/* Column `col` as text, `null_text` when it is NULL. */
const char *cb_report_text(sqlite3_stmt *st, int col, const char *null_text);
/* "[lo, hi]" from columns lo and hi (2 decimals), or "—" when either is NULL; returns whether both were set. */
bool cb_report_ci(sqlite3_stmt *st, int lo, int hi, char *out, size_t n);

#endif
