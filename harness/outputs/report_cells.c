/* The claims report's cells (report_cells.h). */
#include "report_cells.h"

#include <stdio.h>

sqlite3_stmt *cb_report_query(sqlite3 *db, const char *sql) {
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) return NULL;
    return st;
}

const char *cb_report_text(sqlite3_stmt *st, int col, const char *null_text) {
    const unsigned char *t = sqlite3_column_text(st, col);
    return t ? (const char *)t : null_text;
}

bool cb_report_ci(sqlite3_stmt *st, int lo, int hi, char *out, size_t n) {
    bool both = sqlite3_column_type(st, lo) != SQLITE_NULL && sqlite3_column_type(st, hi) != SQLITE_NULL;
    if (both) snprintf(out, n, "[%.2f, %.2f]", sqlite3_column_double(st, lo), sqlite3_column_double(st, hi));
    else snprintf(out, n, "—");
    return both;
}
