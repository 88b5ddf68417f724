/* `ctxbench run WORKLOAD`: a workload file -> a sweep -> rows in the results database. */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "cli_options.h"
#include "../measure/sweep.h"
#include "../measure/workload.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ctxbench run WORKLOAD [--db PATH] [--resume] [--shard I/N] [--quiet] [--threads N]\n"
            "                    [--memory-budget BYTES|PCT%%] [--time-budget SECONDS] [--weights-dtype D]\n"
            "                    [--mode exact|fast] [--kv-dtype D]\n\n"
            "Run the sweep a workload file describes (workloads/quick, workloads/claims, workloads/full; see\n"
            "docs/usage.md) and store every point, labelled measured | sampled | analytic | refused | failed.\n"
            "  --db PATH             results database (default results/ctxbench.db; created if missing)\n"
            "  --resume              skip points already stored for the same workload text and commit; failed\n"
            "                        points and points refused for time are run again (and replace their row)\n"
            "  --shard I/N           run only points with index %% N == I (0 <= I < N), for job arrays\n"
            "  --quiet               no progress line on stderr\n"
            "  --threads N           override the workload's thread list\n"
            "  --memory-budget B     bytes (16G) or percent of MemAvailable (85%%); overrides the workload\n"
            "  --time-budget S       per-point time budget in seconds (30, 5m, 1h); overrides the workload\n"
            "  --mode exact|fast     overrides the workload's mode\n"
            "  --weights-dtype D     bf16 | f16 | f32 | fp8 | int8: overrides the workload's weight_dtype. fp8/int8:\n"
            "                        linear projections in 8 bits with per-row scales (presets generated so,\n"
            "                        checkpoints quantised at load; docs/quantization.md)\n"
            "  --kv-dtype D          bf16 | f16 | f32 | fp8 | int8: overrides the workload's kv_dtype (fp8/int8: codes\n"
            "                        with one scale per token and KV head; docs/quantization.md)\n");
}

#define MAX_SHARDS 1000000

/* "I/N", both plain decimal integers, 0 <= I < N <= MAX_SHARDS; nothing after N. */
static int parse_shard(const char *s, int *i, int *n) {
    char *end;
    errno = 0;
    long a = strtol(s, &end, 10);
    if (end == s || *end != '/' || !isdigit((unsigned char)s[0])) return -1;
    const char *t = end + 1;
    long b = strtol(t, &end, 10);
    if (end == t || *end || !isdigit((unsigned char)t[0]) || errno || b < 1 || b > MAX_SHARDS || a < 0 || a >= b) return -1;
    *i = (int)a, *n = (int)b;
    return 0;
}

static int run(int argc, char **argv) {
    static const struct option opts[] = {
        { "help", no_argument, NULL, 'h' },           { "db", required_argument, NULL, 'd' },
        { "resume", no_argument, NULL, 'r' },         { "shard", required_argument, NULL, 's' },
        { "quiet", no_argument, NULL, 'q' },          { "threads", required_argument, NULL, 't' },
        { "memory-budget", required_argument, NULL, 'm' }, { "time-budget", required_argument, NULL, 'T' },
        { "weights-dtype", required_argument, NULL, 'w' }, { "mode", required_argument, NULL, 'M' },
        { "kv-dtype", required_argument, NULL, 'k' },
        { NULL, 0, NULL, 0 }
    };
    cb_sweep_opts o = { 0 };
    cb_dtype wdt = CB_DTYPE_COUNT, kv = CB_DTYPE_COUNT; /* none given */
    int mode = -1;
    o.db_path = "results/ctxbench.db";
    o.shard_n = 1;
    optind = 1; opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'h': usage(stdout); return 0;
        case 'd': o.db_path = optarg; break;
        case 'r': o.resume = true; break;
        case 'q': o.quiet = true; break;
        case 's':
            if (parse_shard(optarg, &o.shard_i, &o.shard_n)) {
                fprintf(stderr, "ctxbench run: bad --shard '%s' (expected I/N with 0 <= I < N <= %d)\n", optarg, MAX_SHARDS);
                return 1;
            }
            break;
        case 't': {
            errno = 0;
            long t = strtol(optarg, &end, 10);
            if (*end || end == optarg || errno || t < 1 || t > CB_WL_MAX_THREADS) {
                fprintf(stderr, "ctxbench run: bad --threads '%s' (expected an integer in [1, %d])\n", optarg, CB_WL_MAX_THREADS);
                return 1;
            }
            o.threads_override = (int)t;
            break;
        }
        case 'm':
            if (cb_parse_memory_budget(optarg, &o.memory_budget_fraction, &o.memory_budget_bytes)) {
                fprintf(stderr, "ctxbench run: bad --memory-budget '%s' (expected bytes in [1, 2^60] like 16G, or a percentage "
                        "in (0, 100]%% like 85%%)\n", optarg);
                return 1;
            }
            break;
        case 'w':
            if (cb_cli_weights_dtype("run", optarg, &wdt)) return 2;
            break;
        case 'k':
            if (cb_cli_kv_dtype("run", optarg, &kv)) return 2;
            break;
        case 'M': {
            cb_mode m;
            if (cb_cli_mode("run", optarg, &m)) return 2;
            mode = (int)m;
            break;
        }
        case 'T':
            if (cb_parse_seconds(optarg, &o.time_budget_point) || o.time_budget_point <= 0) {
                fprintf(stderr, "ctxbench run: bad --time-budget '%s' (expected seconds in (0, %.0f], e.g. 30, 5m, 1h)\n", optarg,
                        CB_WL_MAX_SECONDS);
                return 1;
            }
            break;
        default: return cb_cli_unknown_option("run", argv[optind - 1], usage);
        }
    }
    if (optind != argc - 1) { usage(stderr); return 2; }
    cb_workload w;
    char *text = NULL;
    cb_err err = { "" };
    if (cb_workload_load(argv[optind], &w, &text, &err)) { fprintf(stderr, "ctxbench run: %s\n", err.msg); return 1; }
    o.workload_text = text;
    if (wdt != CB_DTYPE_COUNT) w.weight_dtype = wdt; /* recorded in points.weight_dtype and the point key */
    if (mode >= 0) w.mode = (cb_mode)mode;
    if (kv != CB_DTYPE_COUNT) w.kv_dtype = kv; /* recorded in points.kv_dtype and the point key */
    /* results/ by default: create the directory of the database when it is missing */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", o.db_path);
    char *slash = strrchr(dir, '/');
    if (slash) { *slash = 0; mkdir(dir, 0777); }
    cb_sweep_result r;
    int rc = cb_sweep_run(&w, &o, &r, &err);
    free(text);
    if (rc) { fprintf(stderr, "ctxbench run: %s\n", err.msg); return 1; }
    printf("run %lld: %d points (%d measured, %d sampled, %d analytic, %d refused, %d failed, %d already done) -> %s\n",
           (long long)r.run_id, r.total, r.measured, r.sampled, r.analytic, r.refused, r.failed, r.skipped_resume, o.db_path);
    return r.failed ? 3 : 0;
}

static const cb_command cmd_run = { "run", "run a workload (sweep) into the results database", run };
CB_REGISTER_COMMAND(cmd_run)
