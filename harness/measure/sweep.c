/* The sweep: a workload -> points, each planned (sweep_plan.c), decided (sweep_decide.c: failed,
 * analytic, refused, or measured), measured (sweep_measure.c) and stored in its own transaction
 * (sweep_store.c), with progress on stderr (sweep_progress.c). Every point ends with exactly one row in
 * `points` and one label: measured | sampled | analytic | refused | failed (an engine error, with its
 * message in status). Refusals happen before anything is allocated. */
#include "sweep.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engines/model/presets.h"
#include "../results/point_store.h"
#include "../results/store.h"
#include "machine.h"
#include "memprobe.h"
#include "sweep_progress.h"
#include "sweep_store.h"

static void default_close(cb_model *m) { cb_model_free(m); }
static const cb_model_source default_source = { cb_model_config, cb_model_open, default_close };

/* The memory budget points are planned against: the options' override, else the workload's, in bytes or
 * as a fraction of MemAvailable now. */
static int64_t memory_budget(const cb_workload *w, const cb_sweep_opts *o) {
    int64_t avail = cb_mem_available_bytes();
    double frac = w->memory_budget_fraction;
    int64_t bytes = w->memory_budget_bytes;
    if (o->memory_budget_bytes > 0 || o->memory_budget_fraction > 0) { frac = o->memory_budget_fraction; bytes = o->memory_budget_bytes; }
    return bytes > 0 ? bytes : (int64_t)(frac * (double)CB_MAX(avail, 0)); /* 0: everything refused */
}

/* PAPI and the event set of the run; NULL when PAPI is unavailable (the run goes on without counters). */
static cb_counter_set *open_counters(const cb_workload *w, bool quiet, int *n_events) {
    static const char *names[CB_WL_MAX_LIST + 16];
    char why[256] = "";
    *n_events = 0;
    if (cb_papi_init(why, sizeof why) != 0) {
        if (!quiet) fprintf(stderr, "ctxbench: PAPI unavailable (%s): no counters this run\n", why);
        return NULL;
    }
    if (w->n_events) for (int i = 0; i < w->n_events; i++) names[(*n_events)++] = w->events[i];
    else *n_events = cb_counters_default_names(names, CB_WL_MAX_LIST + 16);
    return cb_counters_open(names, *n_events);
}

static void count_label(cb_sweep_result *res, cb_label l) {
    switch (l) {
    case CB_LABEL_MEASURED: res->measured++; break;
    case CB_LABEL_SAMPLED: res->sampled++; break;
    case CB_LABEL_ANALYTIC: res->analytic++; break;
    case CB_LABEL_REFUSED: res->refused++; break;
    default: res->failed++;
    }
}

/* plan -> decide -> measure -> store, for each point of this shard. */
static int sweep_points(const cb_workload *w, const cb_sweep_opts *o, const cb_sweep_plan *plan, cb_decider *dec,
                        cb_measurer *meas, cb_sweep_store *st, const char *hash, const char *commit,
                        cb_sweep_result *res, cb_err *err) {
    int shard_n = o->shard_n > 0 ? o->shard_n : 1;
    cb_progress pr = { .quiet = o->quiet, .t_start = dec->t_start };
    for (int i = 0; i < plan->np; i++) pr.total += i % shard_n == o->shard_i;
    res->total = pr.total;
    for (int i = 0; i < plan->np; i++) {
        if (i % shard_n != o->shard_i) continue;
        const cb_point_def *p = &plan->pts[i];
        char key[768];
        cb_sweep_point_key(w, p, key, sizeof key);
        if (o->resume && cb_store_point_done(st->db, hash, commit, key)) { pr.done++; res->skipped_resume++; continue; }
        cb_point_result r = { 0 };
        cb_measure_order order;
        if (cb_decide(dec, p, &r, &order)) {
            cb_measure_point(meas, p, &order, &r);
            if (r.label != CB_LABEL_FAILED) cb_decide_learn(dec, p, &r, &order);
        } else if (r.label == CB_LABEL_ANALYTIC && w->memory_check) {
            cb_measure_memory_check(meas, p, &order, &r);
        }
        int rc = cb_sweep_store_point(st, p, key, &r, err);
        if (!rc) res->run++, count_label(res, r.label), cb_progress_point(&pr, w, p, &r);
        cb_point_result_free(&r);
        if (rc) return -1;
    }
    return 0;
}

int cb_sweep_run(const cb_workload *w, const cb_sweep_opts *o, cb_sweep_result *res, cb_err *err) {
    memset(res, 0, sizeof *res);
    double t_start = cb_now_seconds();
    const cb_model_source *src = o->source ? o->source : &default_source;
    int64_t mem_budget = memory_budget(w, o);
    double time_budget_point = o->time_budget_point > 0 ? o->time_budget_point : w->time_budget_point;
    cb_sweep_plan plan;
    if (cb_sweep_plan_build(w, o, src, o->quiet ? NULL : stderr, &plan, err)) return -1;
    sqlite3 *db;
    if (cb_store_open(o->db_path, &db, err)) { cb_sweep_plan_free(&plan); return -1; }
    cb_machine m;
    cb_machine_collect(&m, plan.np ? plan.pts[0].threads : 0);
    /* the roofs, once per run, at the largest thread count of its points (and at 1 thread) */
    int thr_max = 1;
    for (int i = 0; i < plan.np; i++) thr_max = CB_MAX(thr_max, plan.pts[i].threads);
    cb_sweep_roofs roofs;
    cb_sweep_roofs_measure(thr_max, o->roofs_seconds, mem_budget, &roofs);
    cb_progress pr = { .quiet = o->quiet || o->roofs_seconds < 0 };
    cb_progress_roofs(&pr, &roofs);
    const char *commit = o->commit_override ? o->commit_override : m.git_commit;
    char hash[17];
    cb_workload_hash(o->workload_text ? o->workload_text : "", hash);
    cb_sweep_store st = { .db = db, .w = w, .plan = &plan, .roofs = &roofs, .resume_hash = o->resume ? hash : NULL,
                          .resume_commit = commit };
    int rc = cb_sweep_store_run(&st, o, &m, hash, mem_budget, time_budget_point, err);
    res->run_id = st.run_id;
    if (!rc) {
        int n_events;
        cb_counter_set *cs = open_counters(w, o->quiet, &n_events);
        cb_decider dec;
        cb_decider_init(&dec, w, &plan, mem_budget, time_budget_point, t_start);
        cb_measurer meas;
        cb_measurer_init(&meas, w, src, mem_budget, cs, n_events);
        rc = sweep_points(w, o, &plan, &dec, &meas, &st, hash, commit, res, err);
        if (!rc) cb_sweep_store_finish(&st);
        cb_measurer_close(&meas);
        if (cs) cb_counters_close(cs);
    }
    cb_store_close(db);
    cb_sweep_plan_free(&plan);
    return rc;
}
