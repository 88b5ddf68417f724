/* The sweep runner. Every point ends with exactly one row in `points` and one label:
 * measured | sampled | analytic | refused | failed (an engine error, with its message in status).
 * Refusals happen before anything is allocated, from ops->plan (memory) or a time estimate. */
#include "sweep.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../engines/model/presets.h"
#include "../engines/model/quantize.h"
#include "build_info.h"
#include "estimate.h"
#include "probes.h"
#include "results/derive.h"
#include "results/point_record.h"
#include "results/point_store.h"
#include "roofs.h"
#include "stats.h"
#include "store.h"

static void default_close(cb_model *m) { cb_model_free(m); }
static const cb_model_source default_source = { cb_model_config, cb_model_open, default_close };

void cb_workload_hash(const char *text, char out[17]) {
    uint64_t h = 1469598103934665603ull;
    for (const unsigned char *p = (const unsigned char *)text; *p; p++) { h ^= *p; h *= 1099511628211ull; }
    snprintf(out, 17, "%016llx", (unsigned long long)h);
}

double cb_sampled_prefill_estimate(const double *d, const double *t, int k, int64_t n, double *fit_err) {
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    for (int i = 0; i < k; i++) { sx += d[i]; sy += t[i]; sxx += d[i] * d[i]; sxy += d[i] * t[i]; }
    double den = k * sxx - sx * sx;
    double b = den != 0 ? (k * sxy - sx * sy) / den : 0;
    double a = (sy - b * sx) / k;
    double worst = 0;
    for (int i = 0; i < k; i++) {
        double r = fabs(a + b * d[i] - t[i]) / (t[i] > 0 ? t[i] : 1);
        if (r > worst) worst = r;
    }
    if (fit_err) *fit_err = worst;
    double N = (double)n;
    return a * N + b * N * N / 2; /* integral of a + b*d over [0, N) */
}

/* ---- points ---- */
typedef struct {
    const cb_workload *w;
    const cb_sweep_opts *o;
    const cb_model_source *src;
    cb_config *cfgs; bool *cfg_ok; char (*cfg_err)[512];
    int64_t mem_budget;
    double time_budget_point;
    cb_counter_set *cs;
    const char **event_names; int n_events;
    /* the model currently open */
    int open_model; cb_model model; bool model_ok; char model_err[512];
    /* last timing per (engine, model, phase) for the time estimate */
    struct {
        const cb_engine_ops *ops; int model; cb_phase phase; int64_t ctx; double sec; bool sampled;
        int threads; cb_fill fill; double compute_s, compute_work, fill_s, fill_work, other_s;
    } last[256];
    int n_last;
    double best_rate[2]; /* highest FLOP/s [0] and byte/s [1] per thread seen in this run: first-point estimates */
    /* sampled-prefill validation per (engine, model) */
    struct { const cb_engine_ops *ops; int model; int64_t ctx; double measured, rel_err; bool done; } val[64];
    int n_val;
    double t_start;
    cb_roofs roofs; bool have_roofs; /* measured at the start of the run */
    char roofs_why[160];               /* why not, when not */
} sweep_ctx;

/* The slot remembering the last point of this engine/model/phase (for time estimates); -1 if full. */
static int last_slot(sweep_ctx *c, const cb_point_def *p) {
    for (int i = 0; i < c->n_last; i++)
        if (c->last[i].ops == p->ops && c->last[i].model == p->model && c->last[i].phase == p->phase) return i;
    if (c->n_last >= 256) return -1;
    int i = c->n_last++;
    c->last[i].ops = p->ops; c->last[i].model = p->model; c->last[i].phase = p->phase;
    c->last[i].ctx = 0; c->last[i].sec = -1; c->last[i].sampled = false;
    return i;
}

static void opts_for(const sweep_ctx *c, const cb_point_def *p, int64_t max_ctx, int batch, cb_engine_opts *eo) {
    cb_engine_opts_default(eo);
    eo->threads = p->threads;
    eo->mode = c->w->mode;
    eo->kv_dtype = c->w->kv_dtype;
    eo->max_context = max_ctx;
    eo->max_batch = batch;
    eo->prefill_chunk = c->w->prefill_chunk;
}

static int64_t extra_tokens(const sweep_ctx *c, cb_phase ph, int reps) {
    switch (ph) {
    case CB_PH_DECODE: case CB_PH_THROUGHPUT: return (int64_t)c->w->decode_tokens * reps;
    case CB_PH_PREFILL_CHUNK: return (int64_t)c->w->prefill_chunk * reps;
    default: return 0;
    }
}

static void fill_tokens(int32_t *t, int64_t n, int vocab, uint64_t seed) {
    cb_rng r = { seed };
    for (int64_t i = 0; i < n; i++) t[i] = (int32_t)(cb_rng_next(&r) % (uint64_t)(vocab > 0 ? vocab : 1));
}

/* Bring sequence seq to `depth` tokens: a real prefill in chunks, or a synthetic fill. */
static int fill_depth(const sweep_ctx *c, cb_engine *e, const cb_engine_ops *ops, int seq, int64_t depth, cb_fill fill,
                      int vocab, cb_err *err) {
    ops->reset(e, seq);
    if (depth == 0) return 0;
    if (fill == CB_FILL_SYNTHETIC) return ops->fill_synthetic(e, seq, depth, c->w->seed + (uint64_t)seq, err);
    int chunk = c->w->prefill_chunk;
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)chunk);
    if (!tok) { cb_err_set(err, "out of memory for %d tokens", chunk); return -1; }
    int rc = 0;
    for (int64_t done = 0; done < depth && rc == 0; done += chunk) {
        int n = (int)CB_MIN((int64_t)chunk, depth - done);
        fill_tokens(tok, n, vocab, c->w->seed + (uint64_t)done);
        rc = ops->prefill(e, seq, tok, n, NULL, false, err);
    }
    free(tok);
    return rc;
}

static void summarise(sweep_ctx *c, cb_point_result *r, uint64_t seed) {
    (void)c;
    cb_stats_compute(r->samples, r->n_samples, seed, &r->st);
    r->have_stats = true;
}

/* The bandwidth probe next to a bandwidth-bound point (decode, throughput), when the workload asks for it;
 * 0 when it does not or the probe cannot run (the point is still measured; the status says why). */
#define PROBE_SECONDS 0.15
static void status_note(cb_point_result *r, const char *note) {
    if (strstr(r->status, note)) return;
    size_t n = strlen(r->status);
    snprintf(r->status + n, sizeof r->status - n, "%s%s", n ? "; " : "ok; ", note);
}
static double probe(const sweep_ctx *c, const cb_point_def *p, cb_point_result *r) {
    if (!c->w->bandwidth_probe || (p->phase != CB_PH_DECODE && p->phase != CB_PH_THROUGHPUT)) return 0;
    const double need = 3.0 * 128 * 1048576;
    if (r->have_plan && c->mem_budget > 0 && (double)r->plan.total + need > (double)c->mem_budget) {
        char note[200];
        snprintf(note, sizeof note, "no bandwidth probe: plan %zu + probe %.0f bytes > memory budget %lld", r->plan.total,
                 need, (long long)c->mem_budget);
        status_note(r, note);
        return 0;
    }
    cb_err e = { 0 };
    /* the probe's 384 MiB must not show in the point's peak RSS and page faults: note the peak before it,
     * reset it after (the arrays are unmapped by then), and count its faults apart */
    r->rss_peak_pre_probe = CB_MAX(r->rss_peak_pre_probe, cb_mem_peak_rss_bytes());
    int64_t mn0 = 0, mj0 = 0, mn1 = 0, mj1 = 0;
    cb_mem_page_faults(&mn0, &mj0);
    double g = cb_roofs_triad_probe(p->threads, PROBE_SECONDS, &e);
    cb_mem_page_faults(&mn1, &mj1);
    r->probe_minor += mn1 - mn0, r->probe_major += mj1 - mj0;
    cb_mem_reset_peak();
    if (g > 0) return g;
    status_note(r, e.msg);
    return 0;
}

/* Run the timed part of one point. Engine e is created for the point. */
static int time_point(sweep_ctx *c, const cb_point_def *p, cb_engine *e, cb_point_result *r, cb_err *err) {
    const cb_workload *w = c->w;
    const cb_engine_ops *ops = p->ops;
    int vocab = c->model.cfg.vocab;
    int reps = w->repetitions, total = w->warmups + reps;
    r->samples = calloc((size_t)reps + (size_t)w->sample_depths * (size_t)reps + 1, sizeof(double));
    float *logits = malloc(sizeof(float) * (size_t)vocab * (size_t)CB_MAX(r->batch, 1));
    int64_t tok_n = CB_MAX(CB_MAX(p->ctx, (int64_t)w->prefill_chunk), (int64_t)CB_MAX(r->batch, 1));
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)tok_n);
    int *seqs = malloc(sizeof(int) * (size_t)CB_MAX(r->batch, 1));
    int rc = -1;
    if (!r->samples || !logits || !tok || !seqs) { cb_err_set(err, "out of memory for the point's buffers"); goto out; }
    for (int i = 0; i < CB_MAX(r->batch, 1); i++) seqs[i] = i;
    volatile bool counting = false;
    switch (p->phase) {
    case CB_PH_PREFILL:
        fill_tokens(tok, p->ctx, vocab, w->seed);
        r->unit = "seconds";
        for (int i = 0; i < total; i++) {
            ops->reset(e, 0);
            if (i == w->warmups && c->cs) { cb_counters_start(c->cs); counting = true; }
            double t0 = cb_now_seconds();
            if (ops->prefill(e, 0, tok, (int)p->ctx, logits, false, err)) goto out;
            double dt = cb_now_seconds() - t0;
            r->timed_seconds += dt;
            if (i >= w->warmups) r->samples[r->n_samples++] = dt;
        }
        break;
    case CB_PH_PREFILL_CHUNK: case CB_PH_DECODE: {
        bool chunk = p->phase == CB_PH_PREFILL_CHUNK;
        int n = chunk ? w->prefill_chunk : w->decode_tokens;
        r->unit = chunk ? "seconds" : "seconds_per_token";
        /* synthetic: refill every repetition so each starts at depth N exactly; real: fill once, and
         * repetitions start at N + i*n (the drift is recorded in status). */
        double f0 = cb_now_seconds();
        if (fill_depth(c, e, ops, 0, p->ctx, r->fill, vocab, err)) goto out;
        r->fill_seconds += cb_now_seconds() - f0;
        if (!chunk) r->triad_before = probe(c, p, r);
        for (int i = 0; i < total; i++) {
            f0 = cb_now_seconds();
            if (i > 0 && r->fill == CB_FILL_SYNTHETIC && fill_depth(c, e, ops, 0, p->ctx, r->fill, vocab, err)) goto out;
            r->fill_seconds += cb_now_seconds() - f0;
            fill_tokens(tok, n, vocab, w->seed + 7 + (uint64_t)i);
            if (i == w->warmups && c->cs) { cb_counters_start(c->cs); counting = true; }
            double t0 = cb_now_seconds();
            if (chunk) {
                if (ops->prefill(e, 0, tok, n, logits, false, err)) goto out;
            } else {
                for (int g = 0; g < n; g++)
                    if (ops->decode(e, 1, seqs, &tok[g], logits, err)) goto out;
            }
            double dt = cb_now_seconds() - t0;
            r->timed_seconds += dt;
            if (i >= w->warmups) r->samples[r->n_samples++] = chunk ? dt : dt / n;
        }
        if (!chunk) r->triad_after = probe(c, p, r);
        if (r->fill == CB_FILL_REAL)
        {
            char note[80];
            snprintf(note, sizeof note, "real fill: repetition i starts at depth N + i*%d", n);
            status_note(r, note);
        }
        break;
    }
    case CB_PH_THROUGHPUT: {
        int B = r->batch, G = w->decode_tokens;
        r->unit = "seconds_per_step";
        double f0 = cb_now_seconds();
        for (int s = 0; s < B; s++)
            if (fill_depth(c, e, ops, s, p->ctx, r->fill, vocab, err)) goto out;
        r->fill_seconds += cb_now_seconds() - f0;
        r->triad_before = probe(c, p, r);
        for (int i = 0; i < total; i++) {
            fill_tokens(tok, B, vocab, w->seed + 11 + (uint64_t)i);
            if (i == w->warmups && c->cs) { cb_counters_start(c->cs); counting = true; }
            double t0 = cb_now_seconds();
            for (int g = 0; g < G; g++)
                if (ops->decode(e, B, seqs, tok, logits, err)) goto out;
            double dt = cb_now_seconds() - t0;
            r->timed_seconds += dt;
            if (i >= w->warmups) r->samples[r->n_samples++] = dt / G;
        }
        r->triad_after = probe(c, p, r);
        break;
    }
    default: cb_err_set(err, "phase %s is not timed", cb_phase_name(p->phase)); goto out;
    }
    rc = 0;
out:
    if (counting) {
        r->n_counters = c->n_events;
        r->counters = calloc((size_t)c->n_events + 1, sizeof *r->counters);
        cb_counters_stop(c->cs, r->counters);
    }
    free(logits); free(tok); free(seqs);
    return rc;
}

/* Sampled prefill of p->ctx: k chunk timings at depths spread over [0, ctx - c], integrated. */
static int sample_prefill(sweep_ctx *c, const cb_point_def *p, cb_engine *e, int64_t n, cb_point_result *r, double *est_out,
                          double *est_lo, double *est_hi, cb_err *err) {
    const cb_workload *w = c->w;
    int k = w->sample_depths, chunk = w->prefill_chunk, vocab = c->model.cfg.vocab;
    double d[64] = { 0 }, t[64] = { 0 }, tlo[64] = { 0 }, thi[64] = { 0 }; /* zeroed: -O3 cannot see k >= 1 */
    int32_t *tok = malloc(sizeof(int32_t) * (size_t)chunk);
    double *reps = malloc(sizeof(double) * (size_t)w->repetitions);
    int rc = -1;
    if (!tok || !reps) { cb_err_set(err, "out of memory"); goto out; }
    for (int j = 0; j < k; j++) {
        int64_t depth = (int64_t)((double)(n - chunk) * j / (k - 1));
        depth -= depth % 64;
        d[j] = (double)depth + chunk / 2.0; /* the chunk's mid-point depth */
        int m = 0;
        for (int i = 0; i < w->warmups + w->repetitions; i++) {
            if (fill_depth(c, e, p->ops, 0, depth, CB_FILL_SYNTHETIC, vocab, err)) goto out;
            fill_tokens(tok, chunk, vocab, w->seed + 13 + (uint64_t)i);
            double t0 = cb_now_seconds();
            if (p->ops->prefill(e, 0, tok, chunk, NULL, false, err)) goto out;
            double dt = cb_now_seconds() - t0;
            if (i >= w->warmups) reps[m++] = dt;
        }
        cb_stats s;
        cb_stats_compute(reps, m, w->seed + (uint64_t)j, &s);
        t[j] = s.median / chunk; tlo[j] = s.ci_lo / chunk; thi[j] = s.ci_hi / chunk;
        if (r) r->samples[r->n_samples++] = s.median;
    }
    double fe;
    double est = cb_sampled_prefill_estimate(d, t, k, n, &fe);
    *est_lo = cb_sampled_prefill_estimate(d, tlo, k, n, NULL);
    *est_hi = cb_sampled_prefill_estimate(d, thi, k, n, NULL);
    if (r) { r->samples_k = k; r->fit_error = fe; r->have_fit = true; }
    *est_out = est;
    rc = 0;
out:
    free(tok); free(reps);
    return rc;
}

/* The largest measured prefill per engine/model: where the sampling method is validated. */
static void remember_measured_prefill(sweep_ctx *c, const cb_point_def *p, double seconds) {
    int i;
    for (i = 0; i < c->n_val; i++) if (c->val[i].ops == p->ops && c->val[i].model == p->model) break;
    if (i == c->n_val) {
        if (c->n_val >= 64) return;
        c->n_val++;
    } else if (c->val[i].ctx >= p->ctx) return;
    c->val[i].ops = p->ops; c->val[i].model = p->model; c->val[i].ctx = p->ctx;
    c->val[i].measured = seconds; c->val[i].done = false;
}

static int ensure_model(sweep_ctx *c, int mi) {
    if (c->open_model == mi) return c->model_ok ? 0 : -1;
    if (c->open_model >= 0 && c->model_ok) c->src->close(&c->model);
    memset(&c->model, 0, sizeof c->model);
    c->open_model = mi;
    cb_err err = { "" };
    c->model_ok = c->src->open(c->w->models[mi], c->w->seed, c->w->weight_dtype, &c->model, &err) == 0;
    snprintf(c->model_err, sizeof c->model_err, "%s", err.msg);
    return c->model_ok ? 0 : -1;
}

/* The point's compute work (FLOPs of every timed call, warm-ups included; for decode, which is bound by
 * memory traffic, bytes of weights, cache and state read) and depth-fill work (FLOPs of a real prefill, or
 * bytes of cache and state written by synthetic fills), for the time estimates. Returns whether the
 * compute work is in bytes. */
static bool point_work(const sweep_ctx *c, const cb_point_def *p, const cb_point_result *r, const cb_config *cfg,
                       bool sampled, double *compute, double *fill) {
    const cb_workload *w = c->w;
    double total = (double)(w->warmups + w->repetitions), B = CB_MAX(r->batch, 1), G = w->decode_tokens;
    double cache = (double)(r->plan.kv_cache + r->plan.ssm_state + r->plan.conv_state);
    *fill = 0;
    switch (p->phase) {
    case CB_PH_PREFILL:
        *compute = sampled ? w->sample_depths * total * cb_est_flops(cfg, w->prefill_chunk, p->ctx / 2, 1)
                           : total * cb_est_flops(cfg, p->ctx, 0, 1);
        if (sampled) *fill = w->sample_depths * total * cache / 2;
        return false;
    case CB_PH_PREFILL_CHUNK: *compute = total * cb_est_flops(cfg, w->prefill_chunk, p->ctx, 1); break;
    case CB_PH_DECODE: case CB_PH_THROUGHPUT: *compute = total * G * ((double)r->plan.weights + cache); break;
    default: *compute = 0; return false;
    }
    if (r->fill == CB_FILL_REAL) *fill = B * cb_est_flops(cfg, p->ctx, 0, 0);
    else *fill = (p->phase == CB_PH_THROUGHPUT ? 1 : total) * cache;
    return p->phase == CB_PH_DECODE || p->phase == CB_PH_THROUGHPUT;
}

/* `memory_check: allocate`: a memory point also creates the engine over the preset's shapes (weights
 * bound to untouched zero pages, engines/model/presets.h), so the KV cache, state and scratch the engine
 * really allocates sit beside the plan (memory rows, source `engine`) at any scale — when those
 * non-weight bytes fit the memory budget. docs/methodology.md, "Memory". */
static void memory_check(sweep_ctx *c, const cb_point_def *p, const cb_engine_opts *eo, cb_point_result *r) {
    const char *name = c->w->models[p->model];
    cb_config probe_cfg;
    cb_err err = { "" };
    size_t need = r->plan.total - r->plan.weights;
    if (cb_preset_config(name, &probe_cfg, &err)) {
        snprintf(r->status, sizeof r->status, "ok; no allocation check (memory_check needs a preset, %.200s is not)", name);
        return;
    }
    if ((int64_t)need > c->mem_budget) {
        snprintf(r->status, sizeof r->status, "ok; no allocation check: KV + state + scratch %zu bytes > memory budget %lld",
                 need, (long long)c->mem_budget);
        return;
    }
    cb_model m;
    if (cb_preset_create_shapes(name, c->w->weight_dtype, &m, &err)) {
        snprintf(r->status, sizeof r->status, "allocation check failed: %.480s", err.msg);
        return;
    }
    int64_t min0, maj0, min1, maj1;
    cb_mem_reset_peak();
    cb_mem_page_faults(&min0, &maj0);
    double t0 = cb_now_seconds();
    cb_engine *e = NULL;
    if (p->ops->create(&m, eo, &e, &err)) {
        snprintf(r->status, sizeof r->status, "allocation check failed: create: %.460s", err.msg);
        cb_model_free(&m);
        return;
    }
    p->ops->memory(e, &r->engine);
    cb_model_weight_split(&m, &r->wengine);
    r->have_engine = true;
    p->ops->destroy(e);
    cb_mem_page_faults(&min1, &maj1);
    r->peak_rss = cb_mem_peak_rss_bytes();
    r->minor = min1 - min0, r->major = maj1 - maj0;
    r->seconds_total = cb_now_seconds() - t0;
    cb_model_free(&m);
    bool same = r->engine.kv_cache == r->plan.kv_cache && r->engine.ssm_state == r->plan.ssm_state &&
                r->engine.conv_state == r->plan.conv_state;
    snprintf(r->status, sizeof r->status, "ok; engine created over the preset's shapes (weights mapped, not loaded): "
             "KV + state allocated %s the plan", same ? "equal" : "DIFFER FROM");
}

static void run_point(sweep_ctx *c, const cb_point_def *p, cb_point_result *r) {
    const cb_workload *w = c->w;
    cb_err err = { "" };
    snprintf(r->status, sizeof r->status, "ok");
    r->batch = p->batch;
    if (p->error) { r->label = CB_LABEL_FAILED; snprintf(r->status, sizeof r->status, "%s", p->error); return; }
    const cb_config *cfg = &c->cfgs[p->model];
    bool sampled = p->phase == CB_PH_PREFILL && p->ctx > w->max_measured_prefill;
    r->fill = w->fill == CB_FILL_AUTO ? (p->ctx > w->max_measured_prefill ? CB_FILL_SYNTHETIC : CB_FILL_REAL) : w->fill;
    if (p->phase == CB_PH_PREFILL) r->fill = sampled ? CB_FILL_SYNTHETIC : CB_FILL_REAL;
    int reps = w->warmups + w->repetitions;
    cb_engine_opts eo;
    /* throughput with batch 0: the largest batch whose plan fits the memory budget */
    if (p->phase == CB_PH_THROUGHPUT && p->batch == 0) {
        int lo = 0, hi = 1;
        for (;;) {
            opts_for(c, p, p->ctx + extra_tokens(c, p->phase, reps), hi, &eo);
            cb_memory_report m;
            p->ops->plan(cfg, &eo, eo.max_context, hi, &m);
            if (m.total > (size_t)c->mem_budget || hi >= 4096) break;
            lo = hi; hi *= 2;
        }
        while (hi - lo > 1) {
            int mid = (lo + hi) / 2;
            opts_for(c, p, p->ctx + extra_tokens(c, p->phase, reps), mid, &eo);
            cb_memory_report m;
            p->ops->plan(cfg, &eo, eo.max_context, mid, &m);
            if (m.total <= (size_t)c->mem_budget) lo = mid; else hi = mid;
        }
        r->batch = CB_MAX(lo, 1);
    }
    int B = CB_MAX(r->batch, 1);
    int64_t max_ctx = sampled ? p->ctx : p->ctx + extra_tokens(c, p->phase, reps);
    if (p->phase == CB_PH_MEMORY) max_ctx = p->ctx;
    opts_for(c, p, max_ctx, B, &eo);
    p->ops->plan(cfg, &eo, max_ctx, B, &r->plan);
    cb_config_weight_split(cfg, &r->wplan);
    r->have_plan = true;
    if (p->phase == CB_PH_MEMORY) {
        r->label = CB_LABEL_ANALYTIC, r->unit = "bytes";
        if (w->memory_check) memory_check(c, p, &eo, r);
        return;
    }
    if (r->plan.total > (size_t)c->mem_budget) {
        r->label = CB_LABEL_REFUSED;
        r->refused_bytes = (int64_t)r->plan.total; /* saturated at CB_BYTES_MAX: never negative */
        snprintf(r->status, sizeof r->status, "plan needs %s%zu bytes > memory budget %lld bytes",
                 r->plan.total == CB_BYTES_MAX ? "more than " : "", r->plan.total, (long long)c->mem_budget);
        return;
    }
    /* time estimate from the previous point of the same engine/model/phase */
    int li = last_slot(c, p);
    double spent = cb_now_seconds() - c->t_start;
    if (w->time_budget_run > 0 && spent >= w->time_budget_run) {
        r->label = CB_LABEL_REFUSED; /* no estimate needed: nothing is left of the run budget */
        snprintf(r->status, sizeof r->status, "run time budget %.0f s spent (%.0f s elapsed)", w->time_budget_run, spent);
        return;
    }
    double work_c, work_f;
    bool bytes_bound = point_work(c, p, r, cfg, sampled, &work_c, &work_f);
    double est = 0;
    bool have_est = false;
    if (li >= 0 && c->last[li].sec > 0 && c->last[li].ctx > 0) {
        have_est = true;
        if (sampled && !c->last[li].sampled) {
            /* from a whole prefill: its per-token cost x k chunks of c tokens, x (warm-ups + repetitions),
             * x the depth ratio (attention chunks cost more deeper), x 2 for the one-off validation */
            double prev = c->last[li].sec, ratio = (double)p->ctx / (double)c->last[li].ctx;
            double per_token = prev / ((double)reps * (double)c->last[li].ctx);
            est = per_token * w->prefill_chunk * w->sample_depths * reps * ratio * 2;
        } else {
            /* compute scales with FLOPs, fills with their work; a real fill after a synthetic one (or the
             * reverse) is converted through the previous point's compute rate (FLOPs) or 2 GB/s per thread */
            double fill_s = c->last[li].fill_s, fill_work = c->last[li].fill_work;
            if (c->last[li].fill != r->fill) {
                if (r->fill == CB_FILL_REAL && c->last[li].compute_work > 0) {
                    fill_s = c->last[li].compute_s; fill_work = c->last[li].compute_work;
                } else {
                    fill_s = 1; fill_work = 2e9 * c->last[li].threads;
                }
            }
            est = cb_est_seconds(c->last[li].compute_s, c->last[li].compute_work, fill_s, fill_work,
                                 c->last[li].other_s, c->last[li].threads, work_c, work_f, p->threads);
        }
    } else if (c->best_rate[bytes_bound] > 0 && work_c > 0) {
        /* first point of its series: an optimistic estimate from the fastest rate seen in this run */
        double rate = c->best_rate[bytes_bound] * p->threads;
        est = work_c / rate + (r->fill == CB_FILL_REAL ? work_f / rate : work_f / (2e9 * p->threads));
        have_est = true;
    }
    if (have_est) {
        r->estimated_seconds = est;
        double elapsed = cb_now_seconds() - c->t_start;
        bool over_point = c->time_budget_point > 0 && est > c->time_budget_point;
        bool over_run = w->time_budget_run > 0 && elapsed + est > w->time_budget_run;
        if (over_point || over_run) {
            r->label = CB_LABEL_REFUSED;
            r->refused_seconds = est;
            snprintf(r->status, sizeof r->status, "estimated %.1f s > %s time budget %.1f s", est,
                     over_point ? "point" : "run", over_point ? c->time_budget_point : w->time_budget_run - elapsed);
            return;
        }
    }
    if (ensure_model(c, p->model)) {
        r->label = CB_LABEL_FAILED;
        snprintf(r->status, sizeof r->status, "model %.200s: %.290s", w->models[p->model], c->model_err);
        return;
    }
    int64_t min0, maj0, min1, maj1;
    cb_mem_reset_peak();
    cb_mem_page_faults(&min0, &maj0);
    cb_engine *e = NULL;
    double t0 = cb_now_seconds();
    if (p->ops->create(&c->model, &eo, &e, &err)) {
        r->label = CB_LABEL_FAILED;
        snprintf(r->status, sizeof r->status, "create: %.480s", err.msg);
        return;
    }
    p->ops->memory(e, &r->engine);
    cb_model_weight_split(&c->model, &r->wengine);
    r->have_engine = true;
    int rc;
    if (sampled) {
        double est = 0, lo, hi;
        r->unit = "seconds";
        r->samples = calloc((size_t)w->sample_depths + 1, sizeof(double));
        rc = r->samples ? sample_prefill(c, p, e, p->ctx, r, &est, &lo, &hi, &err) : -1;
        if (rc == 0) {
            memset(&r->st, 0, sizeof r->st);
            r->st.n = r->n_samples; r->st.median = est; r->st.q1 = r->st.q3 = est;
            r->st.ci_lo = lo; r->st.ci_hi = hi;
            r->have_stats = true;
            r->label = CB_LABEL_SAMPLED;
            r->tokens_per_s = cb_tokens_per_s(p->phase, p->ctx, w->prefill_chunk, B, est);
            /* validation: the same method at the largest measured prefill of this engine/model */
            for (int i = 0; i < c->n_val; i++)
                if (c->val[i].ops == p->ops && c->val[i].model == p->model) {
                    if (!c->val[i].done) {
                        double vest, vlo, vhi;
                        cb_err verr = { "" };
                        if (sample_prefill(c, p, e, c->val[i].ctx, NULL, &vest, &vlo, &vhi, &verr) == 0)
                            c->val[i].rel_err = (vest - c->val[i].measured) / c->val[i].measured;
                        else c->val[i].rel_err = NAN;
                        c->val[i].done = true;
                    }
                    if (!isnan(c->val[i].rel_err)) {
                        r->validation = c->val[i].rel_err; r->have_validation = true;
                        snprintf(r->status, sizeof r->status, "ok; sampled method vs measured prefill at %lld: %+.1f%%",
                                 (long long)c->val[i].ctx, 100 * c->val[i].rel_err);
                    }
                }
        }
    } else {
        rc = time_point(c, p, e, r, &err);
        if (rc == 0) {
            summarise(c, r, w->seed);
            r->label = CB_LABEL_MEASURED;
            double m = r->st.median;
            r->tokens_per_s = cb_tokens_per_s(p->phase, p->ctx, w->prefill_chunk, B, m);
            if (p->phase == CB_PH_PREFILL && p->ctx >= 2 * (int64_t)w->prefill_chunk) remember_measured_prefill(c, p, m);
        }
    }
    r->seconds_total = cb_now_seconds() - t0;
    if (rc) { r->label = CB_LABEL_FAILED; snprintf(r->status, sizeof r->status, "%.500s", err.msg); }
    else if (li >= 0) { /* whole point, fill included */
        c->last[li].sec = r->seconds_total; c->last[li].ctx = p->ctx; c->last[li].sampled = sampled;
        c->last[li].threads = p->threads; c->last[li].fill = r->fill;
        c->last[li].compute_work = work_c; c->last[li].fill_work = work_f;
        if (sampled) { /* sample_prefill times fills and chunks together */
            c->last[li].compute_s = r->seconds_total; c->last[li].fill_s = 0; c->last[li].other_s = 0;
        } else {
            c->last[li].compute_s = r->timed_seconds; c->last[li].fill_s = r->fill_seconds;
            c->last[li].other_s = CB_MAX(0.0, r->seconds_total - r->timed_seconds - r->fill_seconds);
            if (r->timed_seconds > 0 && p->threads > 0)
                c->best_rate[bytes_bound] = CB_MAX(c->best_rate[bytes_bound], work_c / r->timed_seconds / p->threads);
        }
    }
    p->ops->destroy(e);
    r->peak_rss = CB_MAX(cb_mem_peak_rss_bytes(), r->rss_peak_pre_probe);
    cb_mem_page_faults(&min1, &maj1);
    r->minor = min1 - min0 - r->probe_minor; r->major = maj1 - maj0 - r->probe_major;
}

/* ---- storing ---- */
static int bind_text(sqlite3_stmt *s, int i, const char *v) { return sqlite3_bind_text(s, i, v, -1, SQLITE_TRANSIENT); }

/* The peaks a point's % figures are against: the workload's when given, else the roofs measured at the
 * point's thread count (1 thread: the 1-thread roofs; more: those of the run's thread count). 0 = none. */
static void peaks_for(const sweep_ctx *c, int threads, double *gflops, double *gbps) {
    const cb_workload *w = c->w;
    bool one = threads == 1 && c->have_roofs;
    *gflops = w->peak_gflops > 0 ? w->peak_gflops : !c->have_roofs ? 0 : one ? c->roofs.fma_gflops_1t : c->roofs.fma_gflops;
    *gbps = w->peak_gbps > 0 ? w->peak_gbps : !c->have_roofs ? 0 : one ? c->roofs.triad_gbps_1t : c->roofs.triad_gbps;
}

static int64_t insert_run(sqlite3 *db, const sweep_ctx *c, const cb_sweep_opts *o, const cb_machine *m,
                          const char *hash, int64_t budget, double tbp, cb_err *err) {
    const cb_workload *w = c->w;
    const char *sql = "INSERT INTO runs (started_utc, workload_name, workload_text, workload_hash, shard, git_commit,"
                      " compiler, cflags, cpu_model, cpu_flags, cores_online, threads_used, pinning, mem_total_bytes,"
                      " mem_available_bytes, kernel_path, papi_version, papi_components, os, hostname,"
                      " memory_budget_bytes, time_budget_point, time_budget_run, peak_gflops, peak_gbps, peak_source,"
                      " roof_threads, roof_fma_gflops_1t, roof_fma_gflops, roof_triad_gbps_1t, roof_triad_gbps,"
                      " roof_label, roof_note)"
                      " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
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
    peaks_for(c, c->roofs.threads, &pg, &pb); /* the run's thread count */
    if (pg > 0) sqlite3_bind_double(s, i++, pg); else sqlite3_bind_null(s, i++);
    if (pb > 0) sqlite3_bind_double(s, i++, pb); else sqlite3_bind_null(s, i++);
    char src[160];
    snprintf(src, sizeof src, "%s; %s", w->peak_gflops > 0 ? "gflops: workload" : c->have_roofs ? "gflops: measured roof" : "gflops: none",
             w->peak_gbps > 0 ? "gbps: workload" : c->have_roofs ? "gbps: measured roof (triad)" : "gbps: none");
    bind_text(s, i++, src);
    if (c->have_roofs) {
        sqlite3_bind_int(s, i++, c->roofs.threads);
        sqlite3_bind_double(s, i++, c->roofs.fma_gflops_1t); sqlite3_bind_double(s, i++, c->roofs.fma_gflops);
        sqlite3_bind_double(s, i++, c->roofs.triad_gbps_1t); sqlite3_bind_double(s, i++, c->roofs.triad_gbps);
        bind_text(s, i++, "measured");
        char note[160];
        snprintf(note, sizeof note, "%s FMA loop (12 chains, register-resident); triad 3 x 128 MiB; best of repetitions; %.2f s",
                 c->roofs.loop, c->roofs.seconds);
        bind_text(s, i++, note);
    } else {
        for (int k = 0; k < 6; k++) sqlite3_bind_null(s, i++);
        bind_text(s, i++, c->roofs_why);
    }
    int rc = sqlite3_step(s);
    sqlite3_finalize(s);
    if (rc != SQLITE_DONE) { cb_err_set(err, "sqlite: %s", sqlite3_errmsg(db)); return -1; }
    return sqlite3_last_insert_rowid(db);
}

static void point_key(const sweep_ctx *c, const cb_point_def *p, char *out, size_t n) {
    const cb_workload *w = c->w;
    snprintf(out, n, "%s|%s|%s|%lld|%d|%d|%s|%s|%s|%s", p->ops ? p->ops->name : "none", w->models[p->model],
             cb_phase_name(p->phase), (long long)p->ctx, p->batch, p->threads, w->mode == CB_MODE_FAST ? "fast" : "exact",
             cb_dtype_name(w->weight_dtype), cb_dtype_name(w->kv_dtype), cb_fill_name(w->fill));
}

static int store_point(sqlite3 *db, sweep_ctx *c, int64_t run_id, const cb_point_def *p, const char *key,
                       const cb_point_result *r, cb_err *err) {
    const cb_workload *w = c->w;
    cb_point_record rec = {
        .run_id = run_id, .key = key, .engine = p->ops ? p->ops->name : "none", .model = w->models[p->model],
        .arch = c->cfg_ok[p->model] ? cb_arch_name(c->cfgs[p->model].arch) : "unknown",
        .mode = w->mode == CB_MODE_FAST ? "fast" : "exact", .weight_dtype = cb_dtype_name(w->weight_dtype),
        .kv_dtype = cb_dtype_name(w->kv_dtype), .def = p, .r = r,
    };
    if (c->cfg_ok[p->model]) {
        rec.params_total = cb_config_param_count(&c->cfgs[p->model]);
        rec.params_active = cb_config_active_param_count(&c->cfgs[p->model]);
    }
    double pk_gf, pk_gb;
    peaks_for(c, p->threads, &pk_gf, &pk_gb);
    cb_point_rates_compute(r, p->phase, w->decode_tokens, pk_gf, pk_gb, &rec.rates);
    return cb_store_insert_point(db, &rec, err);
}


/* The sweep's points, at most: models x engines x phases x contexts x threads (x batches for
 * throughput). Lists of up to CB_WL_MAX_LIST entries make the product reach 5 x 64^5, so it is counted
 * in 64 bits and refused past CB_SWEEP_MAX_POINTS (docs/promises.md). */
static int count_points(const cb_workload *w, const cb_sweep_opts *o, int64_t *out, cb_err *err) {
    int64_t per_ctx = 0;
    for (int ph = 0; ph < w->n_phases; ph++) per_ctx += w->phases[ph] == CB_PH_THROUGHPUT ? w->n_batches : 1;
    int64_t n_thr = o->threads_override > 0 ? 1 : w->n_threads;
    int64_t n = (int64_t)w->n_models * CB_MAX(w->n_engines, 1) * w->n_contexts * n_thr * per_ctx;
    if (n > CB_SWEEP_MAX_POINTS) {
        cb_err_set(err, "workload '%s': %lld points (%d models x %d engines x %d contexts x %lld threads x %lld "
                   "phase/batch combinations) exceed the limit of %d points per sweep; split it into several workloads",
                   w->name, (long long)n, w->n_models, CB_MAX(w->n_engines, 1), w->n_contexts, (long long)n_thr,
                   (long long)per_ctx, CB_SWEEP_MAX_POINTS);
        return -1;
    }
    *out = n;
    return 0;
}

int cb_sweep_run(const cb_workload *w, const cb_sweep_opts *o, cb_sweep_result *res, cb_err *err) {
    memset(res, 0, sizeof *res);
    sweep_ctx c = { 0 };
    c.w = w; c.o = o; c.src = o->source ? o->source : &default_source;
    c.open_model = -1;
    c.t_start = cb_now_seconds();
    int shard_n = o->shard_n > 0 ? o->shard_n : 1;
    int64_t avail = cb_mem_available_bytes();
    double frac = w->memory_budget_fraction;
    int64_t bytes = w->memory_budget_bytes;
    if (o->memory_budget_bytes > 0 || o->memory_budget_fraction > 0) { frac = o->memory_budget_fraction; bytes = o->memory_budget_bytes; }
    c.mem_budget = bytes > 0 ? bytes : (int64_t)(frac * (double)CB_MAX(avail, 0)); /* 0: everything refused */
    c.time_budget_point = o->time_budget_point > 0 ? o->time_budget_point : w->time_budget_point;

    c.cfgs = calloc((size_t)w->n_models, sizeof *c.cfgs);
    c.cfg_ok = calloc((size_t)w->n_models, sizeof *c.cfg_ok);
    c.cfg_err = calloc((size_t)w->n_models, sizeof *c.cfg_err);
    int64_t max_points = 0;
    if (count_points(w, o, &max_points, err)) { free(c.cfgs); free(c.cfg_ok); free(c.cfg_err); return -1; }
    cb_point_def *pts = calloc((size_t)max_points + 1, sizeof *pts);
    if (!c.cfgs || !c.cfg_ok || !c.cfg_err || !pts) { cb_err_set(err, "out of memory"); return -1; }
    int np = 0;
    int n_thr = o->threads_override > 0 ? 1 : w->n_threads;
    for (int mi = 0; mi < w->n_models; mi++) {
        cb_err e = { "" };
        c.cfg_ok[mi] = c.src->config(w->models[mi], &c.cfgs[mi], &e) == 0;
        if (c.cfg_ok[mi]) cb_config_for_weights(w->models[mi], w->weight_dtype, &c.cfgs[mi]); /* 8-bit plans */
        snprintf(c.cfg_err[mi], sizeof c.cfg_err[mi], "model %.200s: %.290s", w->models[mi], e.msg);
        int ne = w->n_engines ? w->n_engines : 1;
        for (int ei = 0; ei < ne; ei++) {
            const cb_engine_ops *ops = NULL;
            const char *perr = NULL;
            if (!c.cfg_ok[mi]) perr = c.cfg_err[mi];
            else if (w->n_engines == 0) {
                ops = cb_engine_for_config(&c.cfgs[mi]);
                if (!ops) perr = "no engine registered for this model_type";
            } else {
                ops = cb_engine_find(w->engines[ei]);
                if (!ops) { cb_err_set(err, "unknown engine '%s'", w->engines[ei]); return -1; }
                if (!ops->supports(&c.cfgs[mi])) {
                    if (!o->quiet) fprintf(stderr, "ctxbench: note: engine %s does not run %s (model_type %s); no points\n",
                                           ops->name, w->models[mi], c.cfgs[mi].model_type_str);
                    continue;
                }
            }
            for (int ph = 0; ph < w->n_phases; ph++)
                for (int ci = 0; ci < w->n_contexts; ci++)
                    for (int ti = 0; ti < n_thr; ti++) {
                        int nb = w->phases[ph] == CB_PH_THROUGHPUT ? w->n_batches : 1;
                        for (int bi = 0; bi < nb; bi++) {
                            cb_point_def *p = &pts[np++];
                            p->ops = ops; p->model = mi; p->phase = w->phases[ph]; p->ctx = w->contexts[ci];
                            p->threads = o->threads_override > 0 ? o->threads_override : w->threads[ti];
                            if (p->threads <= 0) p->threads = omp_get_max_threads(); /* record what "all" meant */
                            p->batch = w->phases[ph] == CB_PH_THROUGHPUT ? w->batches[bi] : 1;
                            p->error = perr;
                        }
                    }
        }
    }

    sqlite3 *db;
    if (cb_store_open(o->db_path, &db, err)) return -1;
    cb_machine m;
    int thr0 = np ? pts[0].threads : 0;
    cb_machine_collect(&m, thr0);
    /* the roofs, once per run, at the largest thread count of its points (and at 1 thread) */
    int thr_max = 1;
    for (int i = 0; i < np; i++) thr_max = CB_MAX(thr_max, pts[i].threads);
    c.roofs.threads = thr_max;
    snprintf(c.roofs_why, sizeof c.roofs_why, "not measured (roofs_seconds < 0)");
    if (o->roofs_seconds >= 0) {
        cb_err rerr = { "" };
        c.have_roofs = cb_roofs_measure(thr_max, o->roofs_seconds > 0 ? o->roofs_seconds : 1.5, &c.roofs, &rerr) == 0;
        if (!c.have_roofs) snprintf(c.roofs_why, sizeof c.roofs_why, "not measured: %.140s", rerr.msg);
        if (!o->quiet) {
            if (c.have_roofs)
                fprintf(stderr, "ctxbench: roofs (measured, %.1f s): FMA %.0f GFLOP/s 1 thread, %.0f GFLOP/s %d threads; "
                        "triad %.1f GB/s 1 thread, %.1f GB/s %d threads\n", c.roofs.seconds, c.roofs.fma_gflops_1t,
                        c.roofs.fma_gflops, thr_max, c.roofs.triad_gbps_1t, c.roofs.triad_gbps, thr_max);
            else fprintf(stderr, "ctxbench: roofs %s\n", c.roofs_why);
        }
    }
    const char *commit = o->commit_override ? o->commit_override : m.git_commit;
    char hash[17];
    cb_workload_hash(o->workload_text ? o->workload_text : "", hash);
    res->run_id = insert_run(db, &c, o, &m, hash, c.mem_budget, c.time_budget_point, err);
    if (res->run_id < 0) { cb_store_close(db); return -1; }

    char why[256] = "";
    static const char *names[CB_WL_MAX_LIST + 16];
    int n_ev = 0;
    if (cb_papi_init(why, sizeof why) == 0) {
        if (w->n_events) for (int i = 0; i < w->n_events; i++) names[n_ev++] = w->events[i];
        else n_ev = cb_counters_default_names(names, CB_WL_MAX_LIST + 16);
        c.cs = cb_counters_open(names, n_ev);
        c.n_events = n_ev;
    } else if (!o->quiet) fprintf(stderr, "ctxbench: PAPI unavailable (%s): no counters this run\n", why);

    int mine = 0;
    for (int i = 0; i < np; i++) if (i % shard_n == o->shard_i) mine++;
    res->total = mine;
    int done = 0;
    for (int i = 0; i < np; i++) {
        if (i % shard_n != o->shard_i) continue;
        cb_point_def *p = &pts[i];
        char key[768];
        point_key(&c, p, key, sizeof key);
        done++;
        if (o->resume && cb_store_point_done(db, hash, commit, key)) { res->skipped_resume++; continue; }
        cb_point_result r = { 0 };
        run_point(&c, p, &r);
        if (store_point(db, &c, res->run_id, p, key, &r, err)) { cb_point_result_free(&r); cb_store_close(db); return -1; }
        res->run++;
        switch (r.label) {
        case CB_LABEL_MEASURED: res->measured++; break;
        case CB_LABEL_SAMPLED: res->sampled++; break;
        case CB_LABEL_ANALYTIC: res->analytic++; break;
        case CB_LABEL_REFUSED: res->refused++; break;
        default: res->failed++;
        }
        if (!o->quiet) {
            char estbuf[32];
            double el = cb_now_seconds() - c.t_start;
            double eta = done < mine ? el / done * (mine - done) : 0;
            fprintf(stderr, "[%d/%d] %-11s %-18s %s@%lld%s%s  %-8s %s%.4g  elapsed %.0fs  ETA %.0fs\n", done, mine,
                    p->ops ? p->ops->name : "-", w->models[p->model], cb_phase_name(p->phase), (long long)p->ctx,
                    p->phase == CB_PH_THROUGHPUT ? "x" : "", "", cb_label_name(r.label), r.have_stats ? "median " : r.have_plan ? "plan bytes " : "",
                    r.have_stats ? r.st.median : (double)r.plan.total, el, eta);
            if (r.label == CB_LABEL_FAILED || r.label == CB_LABEL_REFUSED) fprintf(stderr, "    %s\n", r.status);
            else if (r.have_stats)
                fprintf(stderr, "    point took %.1f s (estimated %s)\n", r.seconds_total,
                        r.estimated_seconds > 0 ? (snprintf(estbuf, sizeof estbuf, "%.1f s", r.estimated_seconds), estbuf) : "- : first of its kind");
        }
        cb_point_result_free(&r);
    }
    sqlite3_stmt *s;
    if (sqlite3_prepare_v2(db, "UPDATE runs SET finished_utc = strftime('%Y-%m-%dT%H:%M:%SZ','now') WHERE id = ?", -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(s, 1, res->run_id);
        sqlite3_step(s);
        sqlite3_finalize(s);
    }
    if (c.cs) cb_counters_close(c.cs);
    if (c.open_model >= 0 && c.model_ok) c.src->close(&c.model);
    cb_store_close(db);
    free(pts); free(c.cfgs); free(c.cfg_ok); free(c.cfg_err);
    return 0;
}
