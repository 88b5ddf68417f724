/* What every command's option loop shares: the messages for a bad or unknown option (naming the command,
 * the option and what was expected) and the parsers of values several commands take. Each returns 0, or
 * non-zero after printing "ctxbench CMD: ..." on stderr: the option messages return 2 (bad usage), the
 * value parsers 1 (the caller returns its command's exit status for a bad value). */
#ifndef CB_CLI_OPTIONS_H
#define CB_CLI_OPTIONS_H

#include <stdint.h>
#include <stdio.h>

#include "../../engines/engine.h"

/* An unknown option, or one missing its value: the message and the usage on stderr. */
int cb_cli_unknown_option(const char *cmd, const char *arg, void (*usage)(FILE *));
/* A positional argument the command does not take. */
int cb_cli_unexpected_argument(const char *cmd, const char *arg);

/* --weights-dtype, --kv-dtype: bf16 | f16 | f32 | fp8 | int8. */
int cb_cli_weights_dtype(const char *cmd, const char *v, cb_dtype *out);
int cb_cli_kv_dtype(const char *cmd, const char *v, cb_dtype *out);
/* --mode: exact | fast. */
int cb_cli_mode(const char *cmd, const char *v, cb_mode *out);
/* An integer option in [lo, hi], the whole value a number. */
int cb_cli_int(const char *cmd, const char *flag, const char *v, int64_t lo, int64_t hi, int64_t *out);

#endif
