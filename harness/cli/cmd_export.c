/* `ctxbench export`: the points, or any view of results/views.c, as a Markdown, CSV, JSON or JSON-lines table
 * (llama-bench's and hyperfine's export formats), to stdout or a file written atomically. docs/usage.md. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "../results/atomic_file.h"
#include "cli.h"
#include "cli_options.h"
#include "../results/views.h"
#include "../results/store.h"

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

typedef enum { FMT_MD, FMT_CSV, FMT_JSON, FMT_JSONL } fmt_t;

static void usage(FILE *f) {
    fprintf(f, "usage: ctxbench export [--db PATH] [--format md|csv|json|jsonl] [--query NAME] [--out FILE]\n\n"
               "Print a table of the results database: --query points (default: every point, with llama-bench's test\n"
               "names pp512 / pp512 @ d4096 / tg @ d4096 and tokens/s with its 95%% CI) or any view:");
    int n;
    const cb_view *v = cb_views(&n);
    for (int i = 0; i < n; i++) fprintf(f, "%s %s", i ? "," : "", v[i].name);
    fprintf(f, "\n(docs/schema.md lists their columns).\n"
               "  --db PATH      results database (default results/ctxbench.db)\n"
               "  --format F     md (default: a Markdown table), csv (RFC 4180, header line), json (an array of\n"
               "                 objects), jsonl (one object per line); NULL is empty in md/csv, null in json\n"
               "  --out FILE     write FILE atomically (temp file + rename) instead of stdout\n");
}

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

static int write_table(sqlite3 *db, const char *sql, fmt_t fmt, FILE *o, cb_err *err) {
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        cb_err_set(err, "query failed: %s", sqlite3_errmsg(db));
        return -1;
    }
    const int nc = sqlite3_column_count(st);
    if (fmt == FMT_MD || fmt == FMT_CSV) {
        for (int i = 0; i < nc; i++) {
            if (fmt == FMT_MD) fprintf(o, "| %s ", sqlite3_column_name(st, i));
            else fprintf(o, "%s%s", i ? "," : "", sqlite3_column_name(st, i));
        }
        fputs(fmt == FMT_MD ? "|\n" : "\n", o);
        if (fmt == FMT_MD) { for (int i = 0; i < nc; i++) fputs("|---", o); fputs("|\n", o); }
    }
    json_t *all = fmt == FMT_JSON ? json_array() : NULL;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (fmt == FMT_MD) {
            for (int i = 0; i < nc; i++) fputs("| ", o), md_cell(o, st, i), fputc(' ', o);
            fputs("|\n", o);
        } else if (fmt == FMT_CSV) {
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

/* The SQL of --query NAME, or NULL (err lists the names). */
static char *query_sql(const char *name, cb_err *err) {
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
    cb_err_set(err, "unknown --query '%s' (expected one of %s)", name, names);
    return NULL;
}

static int run(int argc, char **argv) {
    static const char *const formats[] = { "md", "csv", "json", "jsonl", NULL }; /* in fmt_t's order */
    const char *db_path = "results/ctxbench.db", *query = "points", *out = NULL;
    int fmt = FMT_MD;
    const cb_cli_opt opts[] = {
        CB_OPT("db", CB_OPT_TEXT, &db_path), CB_OPT("format", CB_OPT_CHOICE, &fmt, .choices = formats),
        CB_OPT("query", CB_OPT_TEXT, &query), CB_OPT("out", CB_OPT_TEXT, &out), CB_OPT_END,
    };
    int first, st = cb_cli_parse("export", argc, argv, opts, usage, &first);
    if (st != CB_CLI_GO) return st;
    if (first != argc) { usage(stderr); return 2; }
    cb_err err = { "" };
    char *sql = query_sql(query, &err);
    if (!sql) { fprintf(stderr, "ctxbench export: %s\n", err.msg); return 1; }
    sqlite3 *db;
    if (cb_store_open_read(db_path, &db, &err)) {
        fprintf(stderr, "ctxbench export: %s\n", err.msg);
        sqlite3_free(sql);
        return 1;
    }
    cb_atomic_file af;
    int rc = out ? cb_atomic_open(&af, out, &err) : 0;
    if (!rc) rc = write_table(db, sql, (fmt_t)fmt, out ? af.f : stdout, &err);
    if (out && !rc) rc = cb_atomic_commit(&af, &err);
    else if (out && af.f) cb_atomic_abort(&af);
    sqlite3_free(sql);
    sqlite3_close(db);
    if (rc) { fprintf(stderr, "ctxbench export: %s: %s\n", db_path, err.msg); return 1; }
    if (out) fprintf(stderr, "ctxbench export: %s -> %s\n", query, out);
    return 0;
}

static const cb_command cmd_export = { "export", "print points or a view as a Markdown / CSV / JSON / JSONL table", run };
CB_REGISTER_COMMAND(cmd_export)
