/* `ctxbench merge OUT.db IN.db...`: the options, then the results layer's merge (results/merge.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_options.h"
#include "../results/merge.h"

static void usage(FILE *f) {
    fprintf(f, "usage: ctxbench merge OUT.db IN.db...\n\n"
               "Append every run of each IN.db (with its points, samples, memory and counters rows, and its\n"
               "ppl_runs / ppl_buckets) to OUT.db, creating OUT.db if missing. Ids are renumbered. IN.db is\n"
               "opened read-only and never changes. A run already in OUT.db (same start time, host, workload,\n"
               "commit, shard and point count) is skipped with a note, so merging the same input twice is a\n"
               "no-op. Each input is merged in one transaction; a new OUT.db appears only once every input is in.\n");
}

static void note(void *ctx, const char *msg) { (void)ctx; fprintf(stderr, "ctxbench merge: note: %s\n", msg); }
static void merged(void *ctx, const char *in, int64_t runs) {
    (void)ctx;
    printf("merged %s: %lld run(s) added\n", in, (long long)runs);
}

static int run(int argc, char **argv) {
    const cb_cli_opt opts[] = { CB_OPT_END };
    int first, st = cb_cli_parse("merge", argc, argv, opts, usage, &first);
    if (st != CB_CLI_GO) return st;
    if (argc - first < 2) { usage(stderr); return 2; }
    cb_err err = { "" };
    const cb_merge_report rep = { note, merged, NULL };
    if (cb_merge_databases(argv[first], argv + first + 1, argc - first - 1, &rep, &err)) {
        fprintf(stderr, "ctxbench merge: %s\n", err.msg);
        return 1;
    }
    printf("merged %d database(s) into %s\n", argc - first - 1, argv[first]);
    return 0;
}

static const cb_command cmd_merge = { "merge", "merge result databases (machines, shards) into one", run };
CB_REGISTER_COMMAND(cmd_merge)
