/* The commands' option parser (cli_options.h). */
#include "cli_options.h"

#include "../../engines/kernels/gemm8.h" /* cb_dtype_is_q8 */

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define MAX_OPTS 32

int cb_cli_unexpected_argument(const char *cmd, const char *arg) {
    fprintf(stderr, "ctxbench %s: unexpected argument '%s'\n", cmd, arg);
    return 2;
}

static bool whole_int(const char *v, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || errno || x < lo || x > hi) return false;
    *out = x;
    return true;
}

static bool whole_real(const char *v, double lo, double hi, double *out) {
    char *end;
    double x = strtod(v, &end);
    if (!*v || *end || !(x >= lo && x <= hi)) return false;
    *out = x;
    return true;
}

static const char dtypes[] = "bf16, f16, f32, fp8 or int8";

/* One value: 0, or 1 after the message naming the option and what was expected. */
static int parse_value(const char *cmd, const cb_cli_opt *o, const char *v) {
    char flag[80];
    snprintf(flag, sizeof flag, "--%s", o->name);
    int64_t i;
    cb_dtype d;
    switch (o->kind) {
    case CB_OPT_FLAG: *(bool *)o->dest = true; return 0;
    case CB_OPT_TEXT: *(const char **)o->dest = v; return 0;
    case CB_OPT_INT:
    case CB_OPT_I64:
        if (!whole_int(v, o->lo, o->hi, &i)) break;
        if (o->kind == CB_OPT_INT) *(int *)o->dest = (int)i;
        else *(int64_t *)o->dest = i;
        return 0;
    case CB_OPT_REAL:
        if (!whole_real(v, (double)o->lo, (double)o->hi, (double *)o->dest)) break;
        return 0;
    case CB_OPT_MODE:
        if (strcmp(v, "exact") && strcmp(v, "fast")) {
            fprintf(stderr, "ctxbench %s: bad %s '%s' (expected exact or fast)\n", cmd, flag, v);
            return 1;
        }
        *(cb_mode *)o->dest = v[0] == 'f' ? CB_MODE_FAST : CB_MODE_EXACT;
        return 0;
    case CB_OPT_WEIGHTS_DTYPE:
    case CB_OPT_KV_DTYPE:
    case CB_OPT_Q8_DTYPE: {
        bool ok = o->kind == CB_OPT_WEIGHTS_DTYPE ? !cb_weights_dtype_parse(v, &d)
                : o->kind == CB_OPT_KV_DTYPE      ? !cb_kv_dtype_parse(v, &d)
                                                  : !cb_dtype_parse(v, &d) && cb_dtype_is_q8(d);
        if (!ok) {
            fprintf(stderr, "ctxbench %s: bad %s '%s' (expected %s)\n", cmd, flag, v,
                    o->kind == CB_OPT_Q8_DTYPE ? "fp8 or int8" : dtypes);
            return 1;
        }
        *(cb_dtype *)o->dest = d;
        return 0;
    }
    case CB_OPT_CHOICE: {
        for (int k = 0; o->choices[k]; k++)
            if (!strcmp(v, o->choices[k])) { *(int *)o->dest = k; return 0; }
        fprintf(stderr, "ctxbench %s: bad %s '%s' (expected ", cmd, flag, v);
        for (int k = 0; o->choices[k]; k++)
            fprintf(stderr, "%s%s", k ? o->choices[k + 1] ? ", " : " or " : "", o->choices[k]);
        fprintf(stderr, ")\n");
        return 1;
    }
    case CB_OPT_CUSTOM: return o->parse(cmd, flag, v, o->dest) ? 1 : 0;
    }
    /* INT, I64, REAL out of range or not a number */
    fprintf(stderr, "ctxbench %s: bad %s '%s' (expected %s in [%lld, %lld])\n", cmd, flag, v,
            o->kind == CB_OPT_REAL ? "a number" : "an integer", (long long)o->lo, (long long)o->hi);
    return 1;
}

int cb_cli_parse(const char *cmd, int argc, char **argv, const cb_cli_opt *opts, void (*usage)(FILE *), int *first) {
    struct option lo[MAX_OPTS + 2];
    int n = 0;
    for (; opts[n].name; n++) {
        if (n == MAX_OPTS) { fprintf(stderr, "ctxbench %s: more than %d options\n", cmd, MAX_OPTS); return 2; }
        lo[n] = (struct option){ opts[n].name, opts[n].kind == CB_OPT_FLAG ? no_argument : required_argument, NULL, 256 + n };
    }
    lo[n] = (struct option){ "help", no_argument, NULL, 'h' };
    lo[n + 1] = (struct option){ NULL, 0, NULL, 0 };
    optind = 0; /* a full re-initialisation: commands run in-process more than once (tests) */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (c == 'h') { usage(stdout); return 0; }
        if (c < 256 || c >= 256 + n) {
            fprintf(stderr, "ctxbench %s: unknown or incomplete option '%s'\n", cmd, argv[optind - 1]);
            usage(stderr);
            return 2;
        }
        const cb_cli_opt *o = &opts[c - 256];
        if (parse_value(cmd, o, optarg)) return 1;
        if (o->given) *o->given = true;
    }
    *first = optind;
    return CB_CLI_GO;
}
