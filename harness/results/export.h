/* Exporting a table of the results database: the points in llama-bench's terms, or any view of views.c,
 * as Markdown, CSV, JSON or JSON lines (llama-bench's and hyperfine's export formats). docs/usage.md. */
#ifndef CB_EXPORT_H
#define CB_EXPORT_H

#include <sqlite3.h>
#include <stdio.h>

#include "../../engines/common.h"

typedef enum { CB_EXPORT_MD, CB_EXPORT_CSV, CB_EXPORT_JSON, CB_EXPORT_JSONL } cb_export_format;
/* "md", "csv", "json", "jsonl" in cb_export_format's order, then NULL. */
extern const char *const cb_export_format_names[];

/* The SELECT of table `name` ("points" or a view's name), sqlite3_malloc'd; NULL with err listing the
 * names when there is no such table. */
char *cb_export_sql(const char *name, cb_err *err);
/* Run sql on db and write its rows to out: NULL is empty in md / csv, null in json; md and csv start with
 * the column names. */
int cb_export_write(sqlite3 *db, const char *sql, cb_export_format fmt, FILE *out, cb_err *err);

#endif
