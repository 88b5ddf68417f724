/* Shared option parsing of the commands (cli_options.h). */
#include "cli_options.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int cb_cli_unknown_option(const char *cmd, const char *arg, void (*usage)(FILE *)) {
    fprintf(stderr, "ctxbench %s: unknown or incomplete option '%s'\n", cmd, arg);
    if (usage) usage(stderr);
    return 2;
}

int cb_cli_unexpected_argument(const char *cmd, const char *arg) {
    fprintf(stderr, "ctxbench %s: unexpected argument '%s'\n", cmd, arg);
    return 2;
}

int cb_cli_weights_dtype(const char *cmd, const char *v, cb_dtype *out) {
    if (!cb_weights_dtype_parse(v, out)) return 0;
    fprintf(stderr, "ctxbench %s: bad --weights-dtype '%s' (expected bf16, f16, f32, fp8 or int8)\n", cmd, v);
    return 1;
}

int cb_cli_kv_dtype(const char *cmd, const char *v, cb_dtype *out) {
    if (!cb_kv_dtype_parse(v, out)) return 0;
    fprintf(stderr, "ctxbench %s: bad --kv-dtype '%s' (expected bf16, f16, f32, fp8 or int8)\n", cmd, v);
    return 1;
}

int cb_cli_mode(const char *cmd, const char *v, cb_mode *out) {
    if (!strcmp(v, "exact") || !strcmp(v, "fast")) {
        *out = v[0] == 'f' ? CB_MODE_FAST : CB_MODE_EXACT;
        return 0;
    }
    fprintf(stderr, "ctxbench %s: bad --mode '%s' (expected exact or fast)\n", cmd, v);
    return 1;
}

int cb_cli_int(const char *cmd, const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out) {
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*v && !*end && !errno && x >= lo && x <= hi) {
        *out = x;
        return 0;
    }
    fprintf(stderr, "ctxbench %s: bad %s '%s' (expected an integer in [%lld, %lld])\n", cmd, flag, v, (long long)lo,
            (long long)hi);
    return 1;
}
