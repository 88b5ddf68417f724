/* The one option parser of the commands: each command lists its options as a table (name, kind, where
 * the value goes) and cb_cli_parse reads argv against it, with the messages every command shares. Exit
 * statuses follow docs/promises.md: 1 for a bad value (the message names the command, the option and
 * what was expected), 2 for an unknown or incomplete option. */
#ifndef CB_CLI_OPTIONS_H
#define CB_CLI_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../../engines/engine.h"

typedef enum {
    CB_OPT_FLAG,          /* bool *: true when given (no value) */
    CB_OPT_TEXT,          /* const char **: the value as written */
    CB_OPT_INT,           /* int *: an integer in [lo, hi] */
    CB_OPT_I64,           /* int64_t *: an integer in [lo, hi] */
    CB_OPT_REAL,          /* double *: a number in [lo, hi] */
    CB_OPT_MODE,          /* cb_mode *: exact | fast */
    CB_OPT_WEIGHTS_DTYPE, /* cb_dtype *: bf16 | f16 | f32 | fp8 | int8 */
    CB_OPT_KV_DTYPE,      /* cb_dtype *: bf16 | f16 | f32 | fp8 | int8 */
    CB_OPT_Q8_DTYPE,      /* cb_dtype *: fp8 | int8 */
    CB_OPT_CHOICE,        /* int *: the index of the value in `choices` (NULL-terminated) */
    CB_OPT_CUSTOM,        /* parse(cmd, flag, value, dest): 0, or non-zero after printing its message */
} cb_opt_kind;

typedef struct {
    const char *name; /* "db" for --db; NULL ends the table */
    cb_opt_kind kind;
    void *dest;
    int64_t lo, hi;                  /* INT, I64, REAL */
    const char *const *choices;      /* CHOICE */
    int (*parse)(const char *cmd, const char *flag, const char *v, void *dest); /* CUSTOM */
    bool *given;                     /* optional: set when the option appears */
} cb_cli_opt;

/* A table row: CB_OPT("db", CB_OPT_TEXT, &db), CB_OPT("batch", CB_OPT_INT, &b, .lo = 1, .hi = 64); the table
 * ends with CB_OPT_END. */
#define CB_OPT(opt_name, opt_kind, opt_dest, ...) { .name = (opt_name), .kind = (opt_kind), .dest = (opt_dest), __VA_ARGS__ }
#define CB_OPT_END { .name = NULL }

/* cb_cli_parse's answer when the command goes on. */
#define CB_CLI_GO (-1)

/* Read argv[1..argc) against opts (options may stand anywhere; --help and -h print usage on stdout).
 * Returns CB_CLI_GO with the positional arguments left in argv[*first..argc), in order; else the
 * command's exit status: 0 after --help, 1 after a bad value, 2 for an unknown or incomplete option
 * (its message and the usage on stderr). */
int cb_cli_parse(const char *cmd, int argc, char **argv, const cb_cli_opt *opts, void (*usage)(FILE *), int *first);

/* A positional argument the command does not take. */
int cb_cli_unexpected_argument(const char *cmd, const char *arg);

#endif
