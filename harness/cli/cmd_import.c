/* `ctxbench import llama-bench FILE`: another tool's measurements into the results database (peer_import.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_options.h"
#include "../results/peer_import.h"
#include "../results/store.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctxbench import llama-bench FILE [--db PATH] [--as MODEL | --as FILE.gguf=MODEL ...]\n\n"
               "Store llama.cpp's llama-bench output (-o jsonl, -o json or -o csv) as points of engine llama.cpp,\n"
               "source peer, label measured: a pp test of n_prompt tokens at depth d becomes prefill_chunk@d, a tg\n"
               "test decode@d (seconds per token); threads, KV types, flash-attn, build commit, model file and\n"
               "parameters are kept (table peer_tests), and the samples (jsonl/json: samples_ns) get the same\n"
               "median and bootstrap CI as ctxbench's points. Each model file is matched to a preset by its\n"
               "parameter count and name; an ambiguous or unknown one is an error until --as names it.\n"
               "  --db PATH            results database (default results/ctxbench.db; created if missing)\n"
               "  --as MODEL           every test of FILE is MODEL (a preset or checkpoint directory)\n"
               "  --as FILE.gguf=MODEL tests of that model file (name, basename or stem) are MODEL; repeatable\n"
               "docs/peers.md says how the numbers compare with ctxbench's.\n");
}

/* --as MODEL (every test), or --as FILE=MODEL (repeatable). */
static int parse_as(const char *cmd, const char *flag, const char *v, void *dest) {
    cb_peer_match *m = dest;
    char *eq = strchr(v, '=');
    if (!eq) { m->as_all = v; return 0; }
    if (m->n_as == CB_PEER_MAX_AS || eq == v || !eq[1]) {
        fprintf(stderr, "ctxbench %s: bad %s '%s' (expected MODEL or FILE=MODEL, at most %d)\n", cmd, flag, v, CB_PEER_MAX_AS);
        return -1;
    }
    *eq = 0; /* v is argv's own string */
    m->as_file[m->n_as] = v, m->as_model[m->n_as++] = eq + 1;
    return 0;
}

static int run(int argc, char **argv) {
    const char *db_path = "results/ctxbench.db";
    cb_peer_match m = { 0 };
    const cb_cli_opt opts[] = { CB_OPT("db", CB_OPT_TEXT, &db_path), CB_OPT("as", CB_OPT_CUSTOM, &m, .parse = parse_as), CB_OPT_END };
    int first, st = cb_cli_parse("import", argc, argv, opts, usage, &first);
    if (st != CB_CLI_GO) return st;
    if (first + 2 != argc) { usage(stderr); return 2; }
    if (strcmp(argv[first], "llama-bench")) {
        fprintf(stderr, "ctxbench import: unknown tool '%s' (expected llama-bench)\n", argv[first]);
        return 2;
    }
    const char *file = argv[first + 1];
    sqlite3 *db;
    cb_err err = { "" };
    if (cb_store_open(db_path, &db, &err)) { fprintf(stderr, "ctxbench import: %s\n", err.msg); return 1; }
    cb_peer_import_result r;
    int rc = cb_peer_import_llama_bench(db, file, &m, &r, &err);
    cb_store_close(db);
    if (rc) { fprintf(stderr, "ctxbench import: %s\n", err.msg); return 1; }
    printf("import: %s -> run %lld of %s: %d llama.cpp points (%d prefill_chunk, %d decode), label measured, source peer\n",
           file, r.run_id, db_path, r.points, r.prefill_chunk, r.decode);
    return 0;
}

static const cb_command cmd_import = { "import", "import another tool's measurements (llama-bench) as peer points", run };
CB_REGISTER_COMMAND(cmd_import)
