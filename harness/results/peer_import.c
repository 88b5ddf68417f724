/* llama-bench tests -> points (peer_import.h). The mapping (docs/peers.md): a pp test of n_prompt tokens
 * at depth d is prefill_chunk@d (seconds per chunk), a tg test of n_gen tokens at depth d is decode@d
 * (seconds per token = sample / n_gen); batch 1, fill real (llama-bench prefills the depth), mode
 * `native` (the tool's own arithmetic), label measured, source peer. */
#include "peer_import.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engines/model/presets.h"
#include "point_store.h"
#include "../stats/stats.h"
#include "store.h"

#define PEER_ENGINE "llama.cpp"
#define PEER_MODE "native"
#define PEER_STATS_SEED 1 /* the bootstrap seed of a workload's default `seed` */

static bool file_is(const char *model_filename, const char *name) {
    char stem[512];
    cb_lb_model_stem(model_filename, stem, sizeof stem);
    const char *base = strrchr(model_filename, '/');
    return !strcmp(model_filename, name) || !strcmp(base ? base + 1 : model_filename, name) || !strcmp(stem, name);
}

static int known_model(const char *path, const cb_lb_record *r, const char *model, cb_err *err) {
    cb_config cfg;
    cb_err e = { "" };
    if (!cb_model_config(model, &cfg, &e)) return 0;
    cb_err_set(err, "%s:%d: --as %s for %s: %s", path, r->line, model, r->model_filename, e.msg);
    return -1;
}

int cb_peer_match_model(const char *path, const cb_lb_record *r, const cb_peer_match *m, char *model, size_t n,
                        const char **how, cb_err *err) {
    for (int i = 0; i < m->n_as; i++)
        if (file_is(r->model_filename, m->as_file[i])) {
            *how = "--as";
            snprintf(model, n, "%s", m->as_model[i]);
            return known_model(path, r, model, err);
        }
    if (m->as_all) {
        *how = "--as";
        snprintf(model, n, "%s", m->as_all);
        return known_model(path, r, model, err);
    }
    char stem[512], cands[512] = "";
    cb_lb_model_stem(r->model_filename, stem, sizeof stem);
    const char *by_params = NULL, *named = NULL;
    int n_params = 0;
    int64_t named_params = 0;
    for (int i = 0; i < cb_preset_count(); i++) {
        cb_config cfg;
        cb_err e = { "" };
        const char *name = cb_preset_name(i);
        if (cb_preset_config(name, &cfg, &e)) continue;
        int64_t p = cb_config_param_count(&cfg);
        bool same = fabs((double)p - (double)r->model_n_params) <= 0.005 * (double)r->model_n_params;
        if (!strcmp(name, stem)) named = name, named_params = p;
        if (!same) continue;
        if (!strcmp(name, stem) || !by_params) by_params = name;
        size_t l = strlen(cands);
        snprintf(cands + l, sizeof cands - l, "%s%s", n_params++ ? ", " : "", name);
    }
    if (named && by_params == named) { *how = "name and parameters"; snprintf(model, n, "%s", named); return 0; }
    if (named) {
        cb_err_set(err, "%s:%d: model %s is named like preset %s (%lld parameters) but has %lld parameters; pass "
                   "--as %s=MODEL", path, r->line, r->model_filename, named, (long long)named_params,
                   (long long)r->model_n_params, r->model_filename);
        return -1;
    }
    if (n_params == 1) { *how = "parameters"; snprintf(model, n, "%s", by_params); return 0; }
    if (n_params > 1) {
        cb_err_set(err, "%s:%d: model %s (%lld parameters) is ambiguous: presets %s have that many; pass --as %s=MODEL",
                   path, r->line, r->model_filename, (long long)r->model_n_params, cands, r->model_filename);
        return -1;
    }
    cb_err_set(err, "%s:%d: model %s (%lld parameters): no preset has that many parameters (ctxbench models lists "
               "them); pass --as %s=MODEL for a checkpoint directory or preset", path, r->line, r->model_filename,
               (long long)r->model_n_params, r->model_filename);
    return -1;
}

/* One test, matched: everything its points row, samples and peer_tests row are made of. */
typedef struct {
    char model[512], arch[16], wdtype[32], kvdtype[40], key[768];
    const char *how;
    cb_point_def def;
    cb_point_result res;
} peer_point;

static int build_point(const char *path, const cb_lb_record *r, const cb_peer_match *m, peer_point *pp, cb_err *err) {
    memset(pp, 0, sizeof *pp);
    if (cb_peer_match_model(path, r, m, pp->model, sizeof pp->model, &pp->how, err)) return -1;
    cb_config cfg;
    if (cb_model_config(pp->model, &cfg, err)) return -1;
    snprintf(pp->arch, sizeof pp->arch, "%s", cb_arch_name(cfg.arch));
    cb_lb_weight_dtype(r->model_type, pp->wdtype, sizeof pp->wdtype);
    if (!strcmp(r->type_k, r->type_v)) snprintf(pp->kvdtype, sizeof pp->kvdtype, "%s", r->type_k);
    else snprintf(pp->kvdtype, sizeof pp->kvdtype, "%s/%s", r->type_k, r->type_v);
    const bool pp_test = r->n_prompt > 0;
    pp->def = (cb_point_def){ .phase = pp_test ? CB_PH_PREFILL_CHUNK : CB_PH_DECODE, .ctx = r->n_depth,
                              .threads = r->n_threads, .batch = 1 };
    cb_point_result *res = &pp->res;
    res->label = CB_LABEL_MEASURED;
    res->unit = pp_test ? "seconds" : "seconds_per_token";
    res->fill = CB_FILL_REAL;
    res->batch = 1;
    const double per = 1e-9 / (pp_test ? 1 : r->n_gen); /* ns per test -> the unit */
    char test[48];
    snprintf(test, sizeof test, "%s%d @ d%d", pp_test ? "pp" : "tg", pp_test ? r->n_prompt : r->n_gen, r->n_depth);
    if (r->samples_ns) {
        res->samples = malloc(sizeof(double) * (size_t)r->n_samples);
        if (!res->samples) { cb_err_set(err, "out of memory"); return -1; }
        for (int i = 0; i < r->n_samples; i++) res->samples[i] = r->samples_ns[i] * per;
        res->n_samples = r->n_samples;
        cb_stats_compute(res->samples, res->n_samples, PEER_STATS_SEED, &res->st);
        snprintf(res->status, sizeof res->status, "ok; llama-bench %s (%.200s:%d), %.100s matched by %s; fa %d, ctk %s, ctv %s",
                 test, path, r->line, r->model_filename, pp->how, r->flash_attn, r->type_k, r->type_v);
    } else {
        /* llama-bench's CSV has mean and stddev only: the median column holds the mean, no CI */
        res->st = (cb_stats){ .n = 0, .median = r->avg_ns * per, .q1 = NAN, .q3 = NAN, .ci_lo = NAN, .ci_hi = NAN,
                              .mean = r->avg_ns * per, .stddev = r->stddev_ns * per, .cv = r->stddev_ns / r->avg_ns };
        res->st.noisy = res->st.cv > CB_STATS_NOISY_CV;
        snprintf(res->status, sizeof res->status, "ok; llama-bench %s (%.200s:%d, CSV: no samples, median = the tool's mean, "
                 "no CI), %.100s matched by %s; fa %d, ctk %s, ctv %s", test, path, r->line, r->model_filename, pp->how,
                 r->flash_attn, r->type_k, r->type_v);
    }
    res->have_stats = true;
    res->tokens_per_s = (pp_test ? r->n_prompt : 1) / res->st.median;
    snprintf(pp->key, sizeof pp->key, "%s|%s|%s|%d|1|%d|%s|%s|%s|real", PEER_ENGINE, pp->model,
             cb_phase_name(pp->def.phase), r->n_depth, r->n_threads, PEER_MODE, pp->wdtype, pp->kvdtype);
    return 0;
}

static void bind_text(sqlite3_stmt *s, int i, const char *v) {
    if (v && *v) sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT); else sqlite3_bind_null(s, i);
}
static void bind_opt_int(sqlite3_stmt *s, int i, int64_t v) {
    if (v >= 0) sqlite3_bind_int64(s, i, v); else sqlite3_bind_null(s, i);
}

static int insert_run(sqlite3 *db, const char *path, const cb_lb_file *f, const char *hash, int64_t *run_id, cb_err *err) {
    const char *first = f->rec[0].test_time, *last = first;
    for (int i = 0; i < f->n; i++) {
        if (strcmp(f->rec[i].test_time, first) < 0) first = f->rec[i].test_time;
        if (strcmp(f->rec[i].test_time, last) > 0) last = f->rec[i].test_time;
    }
    char name[600];
    const char *base = strrchr(path, '/');
    snprintf(name, sizeof name, "llama-bench import: %s", base ? base + 1 : path);
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "INSERT INTO runs (started_utc, finished_utc, workload_name, workload_text, workload_hash,"
                               " shard, git_commit, compiler, cpu_model, threads_used, peak_source) VALUES"
                               " (?, ?, ?, ?, ?, '0/1', ?, ?, ?, ?, 'none (imported)')", -1, &s, NULL) != SQLITE_OK) {
        cb_err_set(err, "sqlite: %s", sqlite3_errmsg(db));
        return -1;
    }
    char compiler[96];
    snprintf(compiler, sizeof compiler, "llama-bench build %lld", (long long)f->rec[0].build_number);
    bind_text(s, 1, first), bind_text(s, 2, last), bind_text(s, 3, name), bind_text(s, 4, f->text);
    bind_text(s, 5, hash), bind_text(s, 6, f->rec[0].build_commit);
    bind_text(s, 7, f->rec[0].build_number >= 0 ? compiler : NULL), bind_text(s, 8, f->rec[0].cpu_info);
    sqlite3_bind_int(s, 9, f->rec[0].n_threads);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
    if (rc) cb_err_set(err, "sqlite: %s", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    *run_id = sqlite3_last_insert_rowid(db);
    return rc;
}

static int insert_peer_test(sqlite3 *db, int64_t pid, const char *path, const cb_lb_record *r, const char *how,
                            cb_err *err) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "INSERT INTO peer_tests (point_id, tool, build_commit, build_number, model_file, model_type,"
                               " model_params, model_bytes, matched_by, n_prompt, n_gen, n_depth, n_batch, n_ubatch,"
                               " n_threads, flash_attn, type_k, type_v, cpu_info, backends, test_time, avg_ns, stddev_ns,"
                               " source_file, source_line) VALUES (?, 'llama-bench', ?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,"
                               "?,?,?,?)", -1, &s, NULL) != SQLITE_OK) {
        cb_err_set(err, "sqlite: %s", sqlite3_errmsg(db));
        return -1;
    }
    int i = 1;
    sqlite3_bind_int64(s, i++, pid);
    bind_text(s, i++, r->build_commit), bind_opt_int(s, i++, r->build_number);
    bind_text(s, i++, r->model_filename), bind_text(s, i++, r->model_type);
    sqlite3_bind_int64(s, i++, r->model_n_params), bind_opt_int(s, i++, r->model_size);
    bind_text(s, i++, how);
    sqlite3_bind_int(s, i++, r->n_prompt), sqlite3_bind_int(s, i++, r->n_gen), sqlite3_bind_int(s, i++, r->n_depth);
    bind_opt_int(s, i++, r->n_batch), bind_opt_int(s, i++, r->n_ubatch);
    sqlite3_bind_int(s, i++, r->n_threads), sqlite3_bind_int(s, i++, r->flash_attn);
    bind_text(s, i++, r->type_k), bind_text(s, i++, r->type_v), bind_text(s, i++, r->cpu_info);
    bind_text(s, i++, r->backends), bind_text(s, i++, r->test_time);
    sqlite3_bind_double(s, i++, r->avg_ns), sqlite3_bind_double(s, i++, r->stddev_ns);
    bind_text(s, i++, path), sqlite3_bind_int(s, i++, r->line);
    int rc = sqlite3_step(s) == SQLITE_DONE ? 0 : -1;
    if (rc) cb_err_set(err, "sqlite: %s", sqlite3_errmsg(db));
    sqlite3_finalize(s);
    return rc;
}

static int already_imported(sqlite3 *db, const char *path, const char *hash, cb_err *err) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "SELECT id FROM runs WHERE workload_hash = ? AND workload_name LIKE 'llama-bench import:%'",
                           -1, &s, NULL) != SQLITE_OK)
        return 0;
    bind_text(s, 1, hash);
    int found = sqlite3_step(s) == SQLITE_ROW;
    if (found) cb_err_set(err, "%s: already imported (run %lld of this database)", path, (long long)sqlite3_column_int64(s, 0));
    sqlite3_finalize(s);
    return found ? -1 : 0;
}

/* The point just stored (the insert also writes samples rows, so last_insert_rowid is not it). */
static int64_t last_point(sqlite3 *db, int64_t run_id) {
    sqlite3_stmt *s;
    int64_t id = 0;
    if (sqlite3_prepare_v2(db, "SELECT MAX(id) FROM points WHERE run_id = ?", -1, &s, NULL) != SQLITE_OK) return 0;
    sqlite3_bind_int64(s, 1, run_id);
    if (sqlite3_step(s) == SQLITE_ROW) id = sqlite3_column_int64(s, 0);
    sqlite3_finalize(s);
    return id;
}

/* Undo a partly stored import (a write failed after the checks): its peer_tests, samples, points, run. */
static void remove_run(sqlite3 *db, int64_t run_id) {
    char *sql = sqlite3_mprintf(
        "DELETE FROM peer_tests WHERE point_id IN (SELECT id FROM points WHERE run_id = %lld);"
        "DELETE FROM samples WHERE point_id IN (SELECT id FROM points WHERE run_id = %lld);"
        "DELETE FROM points WHERE run_id = %lld; DELETE FROM runs WHERE id = %lld;",
        (long long)run_id, (long long)run_id, (long long)run_id, (long long)run_id);
    if (sql) cb_store_exec(db, sql, NULL);
    sqlite3_free(sql);
}

int cb_peer_import_llama_bench(sqlite3 *db, const char *path, const cb_peer_match *m, cb_peer_import_result *out,
                               cb_err *err) {
    memset(out, 0, sizeof *out);
    cb_lb_file f;
    if (cb_lb_parse_file(path, &f, err)) return -1;
    peer_point *pts = calloc((size_t)f.n, sizeof *pts);
    int rc = pts ? 0 : -1;
    if (!pts) cb_err_set(err, "out of memory");
    /* every test matched before anything is written */
    for (int i = 0; i < f.n && !rc; i++) rc = build_point(path, &f.rec[i], m, &pts[i], err);
    char hash[17];
    cb_workload_hash(f.text, hash);
    if (!rc) rc = already_imported(db, path, hash, err);
    int64_t run_id = 0;
    if (!rc) rc = insert_run(db, path, &f, hash, &run_id, err);
    for (int i = 0; i < f.n && !rc; i++) {
        cb_point_record rec = { .run_id = run_id, .key = pts[i].key, .engine = PEER_ENGINE, .model = pts[i].model,
                                .arch = pts[i].arch, .mode = PEER_MODE, .weight_dtype = pts[i].wdtype,
                                .kv_dtype = pts[i].kvdtype, .source = "peer", .def = &pts[i].def, .r = &pts[i].res,
                                .rates = { NAN, NAN, NAN, NAN, NAN, NAN } };
        rc = cb_store_insert_point(db, &rec, err);
        if (!rc) rc = insert_peer_test(db, last_point(db, run_id), path, &f.rec[i], pts[i].how, err);
        if (!rc) out->points++, pts[i].def.phase == CB_PH_DECODE ? out->decode++ : out->prefill_chunk++;
    }
    if (rc && run_id) remove_run(db, run_id);
    if (!rc) out->run_id = run_id;
    for (int i = 0; pts && i < f.n; i++) free(pts[i].res.samples);
    free(pts);
    cb_lb_free(&f);
    return rc;
}
