/* `ctxbench run WORKLOAD`: a workload file -> a sweep -> rows in the results database. */
#include <ctype.h>
#include <errno.h>
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

/* --shard "I/N", both plain decimal integers, 0 <= I < N <= MAX_SHARDS; nothing after N. */
static int parse_shard(const char *cmd, const char *flag, const char *s, void *dest) {
    cb_sweep_opts *o = dest;
    char *end;
    errno = 0;
    long a = strtol(s, &end, 10), b = 0;
    const char *t = end + 1;
    bool ok = end != s && *end == '/' && isdigit((unsigned char)s[0]);
    if (ok) b = strtol(t, &end, 10);
    if (!ok || end == t || *end || !isdigit((unsigned char)t[0]) || errno || b < 1 || b > MAX_SHARDS || a < 0 || a >= b) {
        fprintf(stderr, "ctxbench %s: bad %s '%s' (expected I/N with 0 <= I < N <= %d)\n", cmd, flag, s, MAX_SHARDS);
        return -1;
    }
    o->shard_i = (int)a, o->shard_n = (int)b;
    return 0;
}

static int parse_memory_budget(const char *cmd, const char *flag, const char *v, void *dest) {
    cb_sweep_opts *o = dest;
    if (!cb_parse_memory_budget(v, &o->memory_budget_fraction, &o->memory_budget_bytes)) return 0;
    fprintf(stderr, "ctxbench %s: bad %s '%s' (expected bytes in [1, 2^60] like 16G, or a percentage in (0, 100]%% "
            "like 85%%)\n", cmd, flag, v);
    return -1;
}

static int parse_time_budget(const char *cmd, const char *flag, const char *v, void *dest) {
    double *t = dest;
    if (!cb_parse_seconds(v, t) && *t > 0) return 0;
    fprintf(stderr, "ctxbench %s: bad %s '%s' (expected seconds in (0, %.0f], e.g. 30, 5m, 1h)\n", cmd, flag, v,
            CB_WL_MAX_SECONDS);
    return -1;
}

static int run(int argc, char **argv) {
    cb_sweep_opts o = { .db_path = "results/ctxbench.db", .shard_n = 1 };
    cb_dtype wdt = CB_DTYPE_COUNT, kv = CB_DTYPE_COUNT; /* none given */
    cb_mode mode = CB_MODE_EXACT;
    bool mode_given = false;
    const cb_cli_opt opts[] = {
        CB_OPT("db", CB_OPT_TEXT, &o.db_path),
        CB_OPT("resume", CB_OPT_FLAG, &o.resume),
        CB_OPT("shard", CB_OPT_CUSTOM, &o, .parse = parse_shard),
        CB_OPT("quiet", CB_OPT_FLAG, &o.quiet),
        CB_OPT("threads", CB_OPT_INT, &o.threads_override, .lo = 1, .hi = CB_WL_MAX_THREADS),
        CB_OPT("memory-budget", CB_OPT_CUSTOM, &o, .parse = parse_memory_budget),
        CB_OPT("time-budget", CB_OPT_CUSTOM, &o.time_budget_point, .parse = parse_time_budget),
        CB_OPT("weights-dtype", CB_OPT_WEIGHTS_DTYPE, &wdt),
        CB_OPT("mode", CB_OPT_MODE, &mode, .given = &mode_given),
        CB_OPT("kv-dtype", CB_OPT_KV_DTYPE, &kv),
        CB_OPT_END,
    };
    int first, st = cb_cli_parse("run", argc, argv, opts, usage, &first);
    if (st != CB_CLI_GO) return st;
    if (first != argc - 1) { usage(stderr); return 2; }
    cb_workload w;
    char *text = NULL;
    cb_err err = { "" };
    if (cb_workload_load(argv[first], &w, &text, &err)) { fprintf(stderr, "ctxbench run: %s\n", err.msg); return 1; }
    o.workload_text = text;
    if (wdt != CB_DTYPE_COUNT) w.weight_dtype = wdt; /* recorded in points.weight_dtype and the point key */
    if (mode_given) w.mode = mode;
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
