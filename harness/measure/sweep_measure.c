/* Sweep step 3: timing a point (sweep_measure.h). Every timing rule is docs/methodology.md's. */
#include "sweep_measure.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../engines/model/presets.h"
#include "../../engines/model/quantize.h"
#include "../results/derive.h"
#include "memprobe.h"

void cb_measurer_init(cb_measurer *m, const cb_workload *w, const cb_model_source *src, int64_t mem_budget,
                      cb_counter_set *cs, int n_events) {
    memset(m, 0, sizeof *m);
    m->w = w, m->src = src, m->mem_budget = mem_budget, m->cs = cs, m->n_events = n_events;
    m->open_model = -1;
}

void cb_measurer_close(cb_measurer *m) {
    if (m->open_model >= 0 && m->model_ok) m->src->close(&m->model);
    m->open_model = -1;
}

void cb_sweep_roofs_measure(int threads, double seconds, int64_t mem_budget, cb_sweep_roofs *out) {
    memset(out, 0, sizeof *out);
    out->roofs.threads = threads;
    snprintf(out->why, sizeof out->why, "not measured (roofs_seconds < 0)");
    if (seconds < 0) return;
    if (CB_ROOFS_TRIAD_BYTES > mem_budget) { /* the roofs' arrays count against the budget like any allocation */
        snprintf(out->why, sizeof out->why, "not measured: the triad's %lld bytes exceed the memory budget %lld bytes",
                 CB_ROOFS_TRIAD_BYTES, (long long)mem_budget);
        return;
    }
    cb_err rerr = { "" };
    out->have = cb_roofs_measure(threads, seconds > 0 ? seconds : 1.5, &out->roofs, &rerr) == 0;
    if (!out->have) snprintf(out->why, sizeof out->why, "not measured: %.140s", rerr.msg);
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

static void fill_tokens(int32_t *t, int64_t n, int vocab, uint64_t seed) {
    cb_rng r = { seed };
    for (int64_t i = 0; i < n; i++) t[i] = (int32_t)(cb_rng_next(&r) % (uint64_t)(vocab > 0 ? vocab : 1));
}

/* Bring sequence seq to `depth` tokens: a real prefill in chunks, or a synthetic fill. */
static int fill_depth(const cb_measurer *c, cb_engine *e, const cb_engine_ops *ops, int seq, int64_t depth, cb_fill fill,
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

static void summarise(cb_point_result *r, uint64_t seed) {
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
static double probe(const cb_measurer *c, const cb_point_def *p, cb_point_result *r) {
    if (!c->w->bandwidth_probe || (p->phase != CB_PH_DECODE && p->phase != CB_PH_THROUGHPUT)) return 0;
    const double need = (double)CB_ROOFS_TRIAD_BYTES;
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
static int time_point(cb_measurer *c, const cb_point_def *p, cb_engine *e, cb_point_result *r, cb_err *err) {
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
static int sample_prefill(cb_measurer *c, const cb_point_def *p, cb_engine *e, int64_t n, cb_point_result *r, double *est_out,
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
static void remember_measured_prefill(cb_measurer *c, const cb_point_def *p, double seconds) {
    int i;
    for (i = 0; i < c->n_val; i++) if (c->val[i].ops == p->ops && c->val[i].model == p->model) break;
    if (i == c->n_val) {
        if (c->n_val >= 64) return;
        c->n_val++;
    } else if (c->val[i].ctx >= p->ctx) return;
    c->val[i].ops = p->ops; c->val[i].model = p->model; c->val[i].ctx = p->ctx;
    c->val[i].measured = seconds; c->val[i].done = false;
}

static int ensure_model(cb_measurer *c, int mi) {
    if (c->open_model == mi) return c->model_ok ? 0 : -1;
    if (c->open_model >= 0 && c->model_ok) c->src->close(&c->model);
    memset(&c->model, 0, sizeof c->model);
    c->open_model = mi;
    cb_err err = { "" };
    c->model_ok = c->src->open(c->w->models[mi], c->w->seed, c->w->weight_dtype, &c->model, &err) == 0;
    snprintf(c->model_err, sizeof c->model_err, "%s", err.msg);
    return c->model_ok ? 0 : -1;
}

/* `memory_check: allocate`: a memory point also creates the engine over the preset's shapes (weights
 * bound to untouched zero pages, engines/model/presets.h), so the KV cache, state and scratch the engine
 * really allocates sit beside the plan (memory rows, source `engine`) at any scale — when those
 * non-weight bytes fit the memory budget. docs/methodology.md, "Memory". */
void cb_measure_memory_check(cb_measurer *c, const cb_point_def *p, const cb_measure_order *o, cb_point_result *r) {
    const cb_engine_opts *eo = &o->eo;
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

/* A sampled prefill, and once per engine/model the same method at its largest measured prefill. */
static int sample_point(cb_measurer *c, const cb_point_def *p, cb_engine *e, cb_point_result *r, int B, cb_err *err) {
    const cb_workload *w = c->w;
    double est = 0, lo, hi;
    r->unit = "seconds";
    r->samples = calloc((size_t)w->sample_depths + 1, sizeof(double));
    int rc = r->samples ? sample_prefill(c, p, e, p->ctx, r, &est, &lo, &hi, err) : -1;
    if (rc) return rc;
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
    return 0;
}

/* The timed repetitions of a measured point and their statistics. */
static int time_whole_point(cb_measurer *c, const cb_point_def *p, cb_engine *e, cb_point_result *r, int B, cb_err *err) {
    const cb_workload *w = c->w;
    int rc = time_point(c, p, e, r, err);
    if (rc) return rc;
    summarise(r, w->seed);
    r->label = CB_LABEL_MEASURED;
    double m = r->st.median;
    r->tokens_per_s = cb_tokens_per_s(p->phase, p->ctx, w->prefill_chunk, B, m);
    if (p->phase == CB_PH_PREFILL && p->ctx >= 2 * (int64_t)w->prefill_chunk) remember_measured_prefill(c, p, m);
    return 0;
}

void cb_measure_point(cb_measurer *c, const cb_point_def *p, const cb_measure_order *o, cb_point_result *r) {
    const cb_workload *w = c->w;
    cb_err err = { "" };
    int B = CB_MAX(r->batch, 1);
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
    if (p->ops->create(&c->model, &o->eo, &e, &err)) {
        r->label = CB_LABEL_FAILED;
        snprintf(r->status, sizeof r->status, "create: %.480s", err.msg);
        return;
    }
    p->ops->memory(e, &r->engine);
    cb_model_weight_split(&c->model, &r->wengine);
    r->have_engine = true;
    int rc = o->sampled ? sample_point(c, p, e, r, B, &err) : time_whole_point(c, p, e, r, B, &err);
    r->seconds_total = cb_now_seconds() - t0;
    if (rc) { r->label = CB_LABEL_FAILED; snprintf(r->status, sizeof r->status, "%.500s", err.msg); }
    p->ops->destroy(e);
    r->peak_rss = CB_MAX(cb_mem_peak_rss_bytes(), r->rss_peak_pre_probe);
    cb_mem_page_faults(&min1, &maj1);
    r->minor = min1 - min0 - r->probe_minor; r->major = maj1 - maj0 - r->probe_major;
}
