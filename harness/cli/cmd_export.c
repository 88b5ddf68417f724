/* `ctxbench export`: the options, then the results layer's export (results/export.h) to stdout or a file
 * written atomically. docs/usage.md. */
#include <stdio.h>
#include <string.h>

#include "../results/atomic_file.h"
#include "cli.h"
#include "cli_options.h"
#include "../results/export.h"
#include "../results/views.h"
#include "../results/store.h"

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

static int run(int argc, char **argv) {
    const char *db_path = "results/ctxbench.db", *query = "points", *out = NULL;
    int fmt = CB_EXPORT_MD;
    const cb_cli_opt opts[] = {
        CB_OPT("db", CB_OPT_TEXT, &db_path), CB_OPT("format", CB_OPT_CHOICE, &fmt, .choices = cb_export_format_names),
        CB_OPT("query", CB_OPT_TEXT, &query), CB_OPT("out", CB_OPT_TEXT, &out), CB_OPT_END,
    };
    int first, st = cb_cli_parse("export", argc, argv, opts, usage, &first);
    if (st != CB_CLI_GO) return st;
    if (first != argc) { usage(stderr); return 2; }
    cb_err err = { "" };
    char *sql = cb_export_sql(query, &err);
    if (!sql) { fprintf(stderr, "ctxbench export: --query: %s\n", err.msg); return 1; }
    sqlite3 *db;
    if (cb_store_open_read(db_path, &db, &err)) {
        fprintf(stderr, "ctxbench export: %s\n", err.msg);
        sqlite3_free(sql);
        return 1;
    }
    cb_atomic_file af;
    int rc = out ? cb_atomic_open(&af, out, &err) : 0;
    if (!rc) rc = cb_export_write(db, sql, (cb_export_format)fmt, out ? af.f : stdout, &err);
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
