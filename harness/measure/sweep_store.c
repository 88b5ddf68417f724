/* Sweep step 4: storing the run and its points (sweep_store.h). */
#include "sweep_store.h"

#include <stdio.h>

#include "../results/derive.h"
#include "../results/point_store.h"

static int bind_text(sqlite3_stmt *s, int i, const char *v) { return sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT); }

/* The peaks a point's % figures are against: the workload's when given, else the roofs measured at the
 * point's thread count (1 thread: the 1-thread roofs; more: those of the run's thread count). Compute: the
 * roof of the unit that did the work — the AMX tile peak for prefill phases when the amx path ran their
 * bf16 GEMMs (docs/performance.md "AMX tiles"), the FMA peak otherwise. 0 = none. */
static bool on_tiles(const cb_sweep_store *c, cb_phase phase) {
    return c->roofs->have && c->roofs->roofs.amx_gflops > 0 && c->w->weight_dtype == CB_BF16 &&
           (phase == CB_PH_PREFILL || phase == CB_PH_PREFILL_CHUNK);
}
static void peaks_for(const cb_sweep_store *c, int threads, cb_phase phase, double *gflops, double *gbps) {
    const cb_workload *w = c->w;
    const cb_roofs *rf = &c->roofs->roofs;
    bool one = threads == 1 && c->roofs->have, amx = on_tiles(c, phase);
    double fma = one ? rf->fma_gflops_1t : rf->fma_gflops, tiles = one ? rf->amx_gflops_1t : rf->amx_gflops;
    *gflops = w->peak_gflops > 0 ? w->peak_gflops : !c->roofs->have ? 0 : amx ? tiles : fma;
    *gbps = w->peak_gbps > 0 ? w->peak_gbps : !c->roofs->have ? 0 : one ? c->roofs->roofs.triad_gbps_1t : c->roofs->roofs.triad_gbps;
}

static int64_t insert_run(sqlite3 *db, const cb_sweep_store *c, const cb_sweep_opts *o, const cb_machine *m,
                          const char *hash, int64_t budget, double tbp, cb_err *err) {
    const cb_workload *w = c->w;
    const char *sql = "INSERT INTO runs (started_utc, workload_name, workload_text, workload_hash, shard, git_commit,"
                      " compiler, cflags, cpu_model, cpu_flags, cores_online, threads_used, pinning, mem_total_bytes,"
                      " mem_available_bytes, kernel_path, papi_version, papi_components, os, hostname,"
                      " memory_budget_bytes, time_budget_point, time_budget_run, peak_gflops, peak_gbps, peak_source,"
                      " roof_threads, roof_fma_gflops_1t, roof_fma_gflops, roof_triad_gbps_1t, roof_triad_gbps,"
                      " roof_label, roof_note, roof_amx_gflops_1t, roof_amx_gflops, decode_prefetch, gemv_order)"
                      " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK) { cb_err_set(err, "sqlite: %s", sqlite3_errmsg(db)); return -1; }
    char shard[32];
    snprintf(shard, sizeof shard, "%d/%d", o->shard_i, o->shard_n);
    int i = 1;
    bind_text(s, i++, m->date_utc); bind_text(s, i++, w->name); bind_text(s, i++, o->workload_text ? o->workload_text : "");
    bind_text(s, i++, hash); bind_text(s, i++, shard);
    bind_text(s, i++, o->commit_override ? o->commit_override : m->git_commit);
    bind_text(s, i++, m->compiler); bind_text(s, i++, m->cflags); bind_text(s, i++, m->cpu_model);
    bind_text(s, i++, m->cpu_flags); sqlite3_bind_int(s, i++, m->cores_online); sqlite3_bind_int(s, i++, m->threads_used);
    bind_text(s, i++, m->pinning); sqlite3_bind_int64(s, i++, m->mem_total_bytes);
    sqlite3_bind_int64(s, i++, m->mem_available_bytes); bind_text(s, i++, m->kernel_path);
    bind_text(s, i++, m->papi_version); bind_text(s, i++, m->papi_components); bind_text(s, i++, m->os);
    bind_text(s, i++, m->hostname); sqlite3_bind_int64(s, i++, budget); sqlite3_bind_double(s, i++, tbp);
    sqlite3_bind_double(s, i++, w->time_budget_run);
    double pg, pb;
    peaks_for(c, c->roofs->roofs.threads, CB_PH_DECODE, &pg, &pb); /* the run's thread count, FMA peak */
    if (pg > 0) sqlite3_bind_double(s, i++, pg); else sqlite3_bind_null(s, i++);
    if (pb > 0) sqlite3_bind_double(s, i++, pb); else sqlite3_bind_null(s, i++);
    char src[160];
    snprintf(src, sizeof src, "%s; %s", w->peak_gflops > 0 ? "gflops: workload" : c->roofs->have ? "gflops: measured roof" : "gflops: none",
             w->peak_gbps > 0 ? "gbps: workload" : c->roofs->have ? "gbps: measured roof (triad)" : "gbps: none");
    bind_text(s, i++, src);
    if (c->roofs->have) {
        sqlite3_bind_int(s, i++, c->roofs->roofs.threads);
        sqlite3_bind_double(s, i++, c->roofs->roofs.fma_gflops_1t); sqlite3_bind_double(s, i++, c->roofs->roofs.fma_gflops);
        sqlite3_bind_double(s, i++, c->roofs->roofs.triad_gbps_1t); sqlite3_bind_double(s, i++, c->roofs->roofs.triad_gbps);
        bind_text(s, i++, "measured");
        char note[160];
        snprintf(note, sizeof note, "%s FMA loop (12 chains, register-resident)%s; triad 3 x 128 MiB; best of repetitions; %.2f s",
                 c->roofs->roofs.loop, c->roofs->roofs.amx_gflops > 0 ? "; AMX-BF16 loop (4 tile chains)" : "",
                 c->roofs->roofs.seconds);
        bind_text(s, i++, note);
    } else {
        for (int k = 0; k < 6; k++) sqlite3_bind_null(s, i++);
        bind_text(s, i++, c->roofs->why);
    }
    if (c->roofs->have && c->roofs->roofs.amx_gflops > 0) {
        sqlite3_bind_double(s, i++, c->roofs->roofs.amx_gflops_1t);
        sqlite3_bind_double(s, i++, c->roofs->roofs.amx_gflops);
    } else {
        sqlite3_bind_null(s, i++);
        sqlite3_bind_null(s, i++);
    }
    if (m->decode_prefetch[0]) bind_text(s, i++, m->decode_prefetch); else sqlite3_bind_null(s, i++);
    if (m->gemv_order[0]) bind_text(s, i++, m->gemv_order); else sqlite3_bind_null(s, i++);
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) { cb_err_set(err, "sqlite: %s", sqlite3_errmsg(db)); return -1; }
    return sqlite3_last_insert_rowid(db);
}

int cb_sweep_store_run(cb_sweep_store *s, const cb_sweep_opts *o, const cb_machine *m, const char *hash,
                       int64_t mem_budget, double time_budget_point, cb_err *err) {
    s->run_id = insert_run(s->db, s, o, m, hash, mem_budget, time_budget_point, err);
    return s->run_id < 0 ? -1 : 0;
}

int cb_sweep_store_point(cb_sweep_store *c, const cb_point_def *p, const char *key, const cb_point_result *r, cb_err *err) {
    const cb_workload *w = c->w;
    cb_point_record rec = {
        .run_id = c->run_id, .key = key, .engine = p->ops ? p->ops->name : "none", .model = w->models[p->model],
        .arch = cb_sweep_point_arch(c->plan, p), .mode = w->mode == CB_MODE_FAST ? "fast" : "exact",
        .weight_dtype = cb_dtype_name(w->weight_dtype), .kv_dtype = cb_dtype_name(w->kv_dtype), .def = p, .r = r,
        .resume_hash = c->resume_hash, .resume_commit = c->resume_commit,
    };
    if (c->plan->cfg_ok[p->model]) { /* total vs active: a mixture of experts reads part of its weights */
        rec.params_total = cb_config_param_count(&c->plan->cfgs[p->model]);
        rec.params_active = cb_config_active_param_count(&c->plan->cfgs[p->model]);
    }
    double pk_gf, pk_gb;
    peaks_for(c, p->threads, p->phase, &pk_gf, &pk_gb);
    cb_point_rates_compute(r, p->phase, w->decode_tokens, pk_gf, pk_gb, &rec.rates);
    return cb_store_insert_point(c->db, &rec, err);
}

void cb_sweep_store_finish(cb_sweep_store *c) {
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(c->db, "UPDATE runs SET finished_utc = strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE id = ?", -1,
                           &s, NULL) != SQLITE_OK)
        return;
    sqlite3_bind_int64(s, 1, c->run_id);
    sqlite3_step(s);
    sqlite3_finalize(s);
}
