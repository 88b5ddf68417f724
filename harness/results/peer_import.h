/* Measurements of other tools as points of the results database (`ctxbench import`): llama.cpp's
 * llama-bench tests become points of engine "llama.cpp", source "peer", with their samples, so the
 * statistics and views that apply to ctxbench's points apply to them. docs/peers.md. */
#ifndef CB_PEER_IMPORT_H
#define CB_PEER_IMPORT_H

#include <sqlite3.h>

#include "llama_bench.h"

#define CB_PEER_MAX_AS 32

typedef struct {
    const char *as_all;                 /* --as MODEL: every test of the file is this model */
    const char *as_file[CB_PEER_MAX_AS]; /* --as FILE=MODEL: tests of model file FILE (name or its stem) */
    const char *as_model[CB_PEER_MAX_AS];
    int n_as;
} cb_peer_match;

typedef struct {
    long long run_id;
    int points, prefill_chunk, decode;
} cb_peer_import_result;

/* The ctxbench model a test's model file stands for: --as when given; else the preset whose parameter
 * count equals model_n_params (within 0.5 %), disambiguated by the file's name. `how` says which
 * ("name and parameters", "parameters", "--as"). Errors name the file, line and model and say to pass
 * --as when the file's model is ambiguous or unknown. */
int cb_peer_match_model(const char *path, const cb_lb_record *r, const cb_peer_match *m, char *model, size_t n,
                        const char **how, cb_err *err);

/* Parse `path` (llama_bench.h), match every test and store them in one run of `db` in one transaction
 * (nothing stored on error). A file already imported (same text) is refused, naming its run. */
int cb_peer_import_llama_bench(sqlite3 *db, const char *path, const cb_peer_match *m, cb_peer_import_result *out,
                               cb_err *err);

#endif
