/* Exporting a table of the results database (export.h). */
#include "export.h"

#include <jansson.h>
#include <math.h>
#include <string.h>

#include "views.h"

const char *const cb_export_format_names[] = { "md", "csv", "json", "jsonl", NULL };

/* The points in llama-bench's terms: `test` is its pp/tg name (pp512 = a prefill of 512 tokens from
 * empty; pp512 @ d4096 = a 512-token chunk at depth 4096; tg @ d4096 = decode at depth 4096; tg x8 = a
 * batched step of 8 sequences), t/s with its 95% CI bounds from latency_by_context. */
static const char points_sql[] =
    "SELECT p.id AS point_id, p.source, p.engine, p.model, p.arch, p.phase,\n"
    "  CASE p.phase WHEN 'prefill' THEN 'pp' || p.context\n"
    "    WHEN 'prefill_chunk' THEN 'pp' || CAST(round(p.tokens_per_s * p.median) AS INTEGER) || ' @ d' || p.context\n"
    "    WHEN 'decode' THEN 'tg @ d' || p.context WHEN 'throughput' THEN 'tg x' || p.batch || ' @ d' || p.context\n"
    "    ELSE p.phase || ' ' || p.context END AS test,\n"
    "  p.context, p.batch, p.threads, p.mode, p.weight_dtype, p.kv_dtype, p.label, p.n_samples, p.median, p.ci_lo,\n"
    "  p.ci_hi, p.unit, p.tokens_per_s, v.tokens_per_s_lo, v.tokens_per_s_hi, p.status\n"
    "FROM points p LEFT JOIN latency_by_context v ON v.point_id = p.id ORDER BY p.id";

static void md_cell(FILE *o, sqlite3_stmt *st, int i) {
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL: break;
    case SQLITE_INTEGER: fprintf(o, "%lld", (long long)sqlite3_column_int64(st, i)); break;
    case SQLITE_FLOAT: fprintf(o, "%.4g", sqlite3_column_double(st, i)); break;
    default:
        for (const unsigned char *t = sqlite3_column_text(st, i); t && *t; t++) {
            if (*t == '|') fputc('\\', o);
            fputc(*t == '\n' ? ' ' : *t, o);
        }
    }
}

static void csv_cell(FILE *o, sqlite3_stmt *st, int i) {
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL: break;
    case SQLITE_INTEGER: fprintf(o, "%lld", (long long)sqlite3_column_int64(st, i)); break;
    case SQLITE_FLOAT: fprintf(o, "%.10g", sqlite3_column_double(st, i)); break;
    default: {
        const char *t = (const char *)sqlite3_column_text(st, i);
        if (!t) break;
        if (!strpbrk(t, ",\"\r\n")) { fputs(t, o); break; }
        fputc('"', o);
        for (; *t; t++) { if (*t == '"') fputc('"', o); fputc(*t, o); }
        fputc('"', o);
    }
    }
}

static json_t *json_cell(sqlite3_stmt *st, int i) {
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_NULL: return json_null();
    case SQLITE_INTEGER: return json_integer(sqlite3_column_int64(st, i));
    case SQLITE_FLOAT: {
        double x = sqlite3_column_double(st, i);
        return isfinite(x) ? json_real(x) : json_null();
    }
    default: return json_string((const char *)sqlite3_column_text(st, i));
    }
}

int cb_export_write(sqlite3 *db, const char *sql, cb_export_format fmt, FILE *o, cb_err *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        cb_err_set(err, "query failed: %s", sqlite3_errmsg(db));
        return -1;
    }
    const int nc = sqlite3_column_count(st);
    if (fmt == CB_EXPORT_MD || fmt == CB_EXPORT_CSV) {
        for (int i = 0; i < nc; i++) {
            if (fmt == CB_EXPORT_MD) fprintf(o, "| %s ", sqlite3_column_name(st, i));
            else fprintf(o, "%s%s", i ? "," : "", sqlite3_column_name(st, i));
        }
        fputs(fmt == CB_EXPORT_MD ? "|\n" : "\n", o);
        if (fmt == CB_EXPORT_MD) { for (int i = 0; i < nc; i++) fputs("|---", o); fputs("|\n", o); }
    }
    json_t *all = fmt == CB_EXPORT_JSON ? json_array() : NULL;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (fmt == CB_EXPORT_MD) {
            for (int i = 0; i < nc; i++) fputs("| ", o), md_cell(o, st, i), fputc(' ', o);
            fputs("|\n", o);
        } else if (fmt == CB_EXPORT_CSV) {
            for (int i = 0; i < nc; i++) { if (i) fputc(',', o); csv_cell(o, st, i); }
            fputc('\n', o);
        } else {
            json_t *obj = json_object();
            for (int i = 0; i < nc; i++) json_object_set_new(obj, sqlite3_column_name(st, i), json_cell(st, i));
            if (all) json_array_append_new(all, obj);
            else { json_dumpf(obj, o, JSON_COMPACT | JSON_PRESERVE_ORDER); fputc('\n', o); json_decref(obj); }
        }
    }
    if (all) { json_dumpf(all, o, JSON_INDENT(1) | JSON_PRESERVE_ORDER); fputc('\n', o); json_decref(all); }
    if (rc != SQLITE_DONE) cb_err_set(err, "query failed: %s", sqlite3_errmsg(db));
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

char *cb_export_sql(const char *name, cb_err *err) {
    if (!strcmp(name, "points")) return sqlite3_mprintf("%s", points_sql);
    int n;
    const cb_view *v = cb_views(&n);
    for (int i = 0; i < n; i++)
        if (!strcmp(v[i].name, name)) return sqlite3_mprintf("SELECT * FROM %s", v[i].name);
    char names[1024] = "points";
    for (int i = 0; i < n; i++) {
        size_t l = strlen(names);
        snprintf(names + l, sizeof names - l, ", %s", v[i].name);
    }
    cb_err_set(err, "unknown table '%s' (expected one of %s)", name, names);
    return NULL;
}

