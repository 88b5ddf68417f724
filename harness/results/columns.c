/* The `points` column table as data, and the SQL generated from it (see columns.h). */
#include "columns.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CB_COLUMN_ENTRY(name, decl, since, kind, has, value, doc) {#name, decl, since, CB_COL_##kind, doc},
const cb_column cb_point_columns[] = { CB_POINT_COLUMNS(CB_COLUMN_ENTRY) };
#undef CB_COLUMN_ENTRY
#define CB_COLUMN_VERSION_CHECK(name, decl, since, kind, has, value, doc) \
    _Static_assert((since) >= 1 && (since) <= CB_SCHEMA_VERSION, "column " #name ": since outside 1..CB_SCHEMA_VERSION");
CB_POINT_COLUMNS(CB_COLUMN_VERSION_CHECK)
#undef CB_COLUMN_VERSION_CHECK
const int cb_point_column_count = (int)(sizeof cb_point_columns / sizeof cb_point_columns[0]);

void cb_point_result_free(cb_point_result *r) { free(r->samples); free(r->counters); }

/* A growing string on open_memstream; NULL on failure. */
typedef struct { char *s; size_t n; FILE *f; } sql_buf;
static bool buf_open(sql_buf *b) { b->s = NULL, b->n = 0; return (b->f = open_memstream(&b->s, &b->n)) != NULL; }
static char *buf_close(sql_buf *b) {
    if (fclose(b->f) != 0) { free(b->s); return NULL; }
    return b->s;
}

char *cb_points_create_sql(void) {
    sql_buf b;
    if (!buf_open(&b)) return NULL;
    fputs("CREATE TABLE points (\n", b.f);
    bool first = true;
    for (int i = 0; i < cb_point_column_count; i++) {
        if (cb_point_columns[i].since != 1) continue;
        fprintf(b.f, "%s  %s %s", first ? "" : ",\n", cb_point_columns[i].name, cb_point_columns[i].decl);
        first = false;
    }
    fputs("\n);\nCREATE INDEX points_key ON points(point_key);\n", b.f);
    return buf_close(&b);
}

/* CB_POINT_BACKFILL as data, by column index (a name that is no column does not compile); the terminator
 * keeps the array non-empty while the table is. */
#define CB_COLUMN_INDEX(name, decl, since, kind, has, value, doc) CB_COLUMN_INDEX_##name,
enum { CB_POINT_COLUMNS(CB_COLUMN_INDEX) };
#undef CB_COLUMN_INDEX
#define CB_BACKFILL_ENTRY(name, expr) { CB_COLUMN_INDEX_##name, expr },
static const struct { int column; const char *expr; } backfills[] = { CB_POINT_BACKFILL(CB_BACKFILL_ENTRY) { -1, NULL } };
#undef CB_BACKFILL_ENTRY

char *cb_points_add_columns_sql(int version) {
    sql_buf b;
    if (!buf_open(&b)) return NULL;
    for (int i = 0; i < cb_point_column_count; i++) {
        const cb_column *c = &cb_point_columns[i];
        if (c->since != version) continue;
        fprintf(b.f, "ALTER TABLE points ADD COLUMN %s %s;\n", c->name, c->decl);
        for (int k = 0; backfills[k].expr; k++)
            if (backfills[k].column == i) fprintf(b.f, "UPDATE points SET %s = %s;\n", c->name, backfills[k].expr);
    }
    return buf_close(&b);
}

char *cb_points_insert_sql(void) {
    sql_buf b;
    if (!buf_open(&b)) return NULL;
    fputs("INSERT INTO points (", b.f);
    int n = 0;
    for (int i = 0; i < cb_point_column_count; i++)
        if (cb_point_columns[i].kind != CB_COL_KEY) fprintf(b.f, "%s%s", n++ ? ", " : "", cb_point_columns[i].name);
    fputs(") VALUES (", b.f);
    for (int i = 0; i < n; i++) fputs(i ? ", ?" : "?", b.f);
    fputc(')', b.f);
    return buf_close(&b);
}

char *cb_points_column_list(const char *prefix) {
    sql_buf b;
    if (!buf_open(&b)) return NULL;
    int n = 0;
    for (int i = 0; i < cb_point_column_count; i++) {
        const cb_column *c = &cb_point_columns[i];
        if (c->kind == CB_COL_KEY || !strcmp(c->name, "run_id")) continue;
        fprintf(b.f, "%s%s%s", n++ ? ", " : "", prefix, c->name);
    }
    return buf_close(&b);
}
