/* Workload files: a flat YAML mapping of key -> scalar or list of scalars, read with libyaml's
 * event API so every error can name the line it came from. */
#include "workload.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>


void cb_workload_defaults(cb_workload *w) {
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "unnamed");
    w->n_contexts = 0;
    w->n_phases = 2; w->phases[0] = CB_PH_PREFILL; w->phases[1] = CB_PH_DECODE;
    w->n_batches = 1; w->batches[0] = 1;
    w->n_threads = 1; w->threads[0] = 0;
    w->repetitions = 5; w->warmups = 1;
    w->decode_tokens = 16;
    w->prefill_chunk = 512;
    w->sample_depths = 5;
    w->bandwidth_probe = true;
    w->max_measured_prefill = 65536;
    w->fill = CB_FILL_AUTO;
    w->time_budget_point = 600; w->time_budget_run = 0;
    w->memory_budget_fraction = 0.85;
    w->mode = CB_MODE_EXACT;
    w->kv_dtype = CB_BF16; w->weight_dtype = CB_BF16;
    w->seed = 1;
}

int cb_parse_size(const char *s, int64_t *out) {
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno || v < 0) return -1;
    int64_t mul = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K': mul = 1ll << 10; end++; break;
    case 'M': mul = 1ll << 20; end++; break;
    case 'G': mul = 1ll << 30; end++; break;
    case 'T': mul = 1ll << 40; end++; break;
    default: break;
    }
    if (*end == 'i' || *end == 'B') { if (*end == 'i') end++; if (*end == 'B') end++; }
    if (*end) return -1;
    double r = v * (double)mul;
    if (r > 9.0e18 || r != (double)(int64_t)r) return -1;
    *out = (int64_t)r;
    return 0;
}

static char *trim(char *s) {
    while (isspace((unsigned char)*s)) s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1])) *--e = 0;
    return s;
}

int cb_parse_contexts(const char *spec, int64_t *out, int *n, int max) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", spec);
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *t = trim(tok);
        char *dots = strstr(t, "..");
        if (dots) {
            *dots = 0;
            int64_t a, b;
            if (cb_parse_size(trim(t), &a) || cb_parse_size(trim(dots + 2), &b) || a <= 0 || b < a || b > CB_WL_MAX_CONTEXT)
                return -1;
            if ((a & (a - 1)) || (b & (b - 1))) return -1; /* ranges are powers of two */
            for (int64_t c = a; c <= b; c *= 2) {
                if (*n >= max) return -1;
                out[(*n)++] = c;
            }
        } else {
            int64_t c;
            if (cb_parse_size(t, &c) || c <= 0 || c > CB_WL_MAX_CONTEXT || *n >= max) return -1;
            out[(*n)++] = c;
        }
    }
    return 0;
}

int cb_parse_memory_budget(const char *s, double *fraction, int64_t *bytes) {
    size_t len = strlen(s);
    if (len > 1 && s[len - 1] == '%') {
        char *end;
        double v = strtod(s, &end);
        if (end != s + len - 1 || !(v > 0 && v <= 100)) return -1; /* NaN fails both */
        *fraction = v / 100; *bytes = 0;
        return 0;
    }
    int64_t b;
    if (cb_parse_size(s, &b) || b <= 0 || b > CB_WL_MAX_BUDGET_BYTES) return -1;
    *bytes = b; *fraction = 0;
    return 0;
}

int cb_parse_seconds(const char *s, double *out) {
    char *end;
    double x = strtod(s, &end);
    if (end == s || !(x >= 0)) return -1;
    if (*end == 's' && !end[1]) end++;
    else if (*end == 'm' && !end[1]) { x *= 60; end++; }
    else if (*end == 'h' && !end[1]) { x *= 3600; end++; }
    if (*end || !(x <= CB_WL_MAX_SECONDS)) return -1; /* inf and NaN too */
    *out = x;
    return 0;
}

/* ---- the YAML reader ---- */
typedef struct {
    int n;
    char *v[CB_WL_MAX_LIST * 2];
    int line;
    bool is_list;
} value;

static const char *const known_keys =
    "name, engines, models, contexts, phases, batch, threads, repetitions, warmups, decode_tokens, "
    "prefill_chunk, sample_depths, max_measured_prefill, fill, time_budget_point, time_budget_run, "
    "memory_budget, mode, kv_dtype, weight_dtype, seed, papi_events, peak_gflops, peak_gbps, bandwidth_probe, memory_check";

static int want_one(const value *v, const char *key, const char *origin, cb_err *err) {
    if (v->n != 1 || v->is_list) { cb_err_set(err, "%s:%d: '%s' takes one value", origin, v->line, key); return -1; }
    return 0;
}

static int to_int(const value *v, const char *key, const char *origin, int lo, int hi, int *out, cb_err *err) {
    if (want_one(v, key, origin, err)) return -1;
    int64_t x;
    if (cb_parse_size(v->v[0], &x) || x < lo || x > hi) {
        cb_err_set(err, "%s:%d: '%s' must be an integer in [%d, %d], got '%s'", origin, v->line, key, lo, hi, v->v[0]);
        return -1;
    }
    *out = (int)x;
    return 0;
}

static int to_seconds(const value *v, const char *key, const char *origin, double *out, cb_err *err) {
    if (want_one(v, key, origin, err)) return -1;
    if (cb_parse_seconds(v->v[0], out) == 0) return 0;
    cb_err_set(err, "%s:%d: '%s' must be seconds in [0, %.0f] (e.g. 30, 30s, 5m, 1h; 0 = no budget), got '%s'", origin,
               v->line, key, CB_WL_MAX_SECONDS, v->v[0]);
    return -1;
}

static int apply(cb_workload *w, const char *key, const value *v, const char *origin, cb_err *err) {
    if (v->is_list && v->n == 0) { /* every list key alike: an empty list would silently run nothing, or defaults */
        cb_err_set(err, "%s:%d: '%s' is an empty list (expected at least one value)", origin, v->line, key);
        return -1;
    }
    if (!strcmp(key, "name")) {
        if (want_one(v, key, origin, err)) return -1;
        snprintf(w->name, sizeof w->name, "%s", v->v[0]);
    } else if (!strcmp(key, "engines")) {
        w->n_engines = 0;
        if (v->n == 1 && !strcmp(v->v[0], "auto")) return 0;
        for (int i = 0; i < v->n; i++) {
            if (!strcmp(v->v[i], "auto")) { cb_err_set(err, "%s:%d: 'auto' cannot be mixed with engine names", origin, v->line); return -1; }
            if (w->n_engines >= CB_WL_MAX_LIST) goto toomany;
            snprintf(w->engines[w->n_engines++], sizeof w->engines[0], "%s", v->v[i]);
        }
    } else if (!strcmp(key, "models")) {
        w->n_models = 0;
        for (int i = 0; i < v->n; i++) {
            if (w->n_models >= CB_WL_MAX_LIST) goto toomany;
            snprintf(w->models[w->n_models++], sizeof w->models[0], "%s", v->v[i]);
        }
    } else if (!strcmp(key, "contexts")) {
        w->n_contexts = 0;
        for (int i = 0; i < v->n; i++)
            if (cb_parse_contexts(v->v[i], w->contexts, &w->n_contexts, CB_WL_MAX_LIST)) {
                cb_err_set(err, "%s:%d: bad context '%s' (expected e.g. 4K, 1M, or a power-of-two range 4K..1M; each in [1, 2^60], at most 64)",
                           origin, v->line, v->v[i]);
                return -1;
            }
    } else if (!strcmp(key, "phases")) {
        w->n_phases = 0;
        for (int i = 0; i < v->n; i++) {
            int p = -1;
            for (int k = 0; k < CB_PH_COUNT; k++) if (!strcmp(v->v[i], cb_phase_name((cb_phase)k))) p = k;
            if (p < 0) { cb_err_set(err, "%s:%d: unknown phase '%s' (expected prefill, decode, prefill_chunk, throughput, memory)", origin, v->line, v->v[i]); return -1; }
            for (int k = 0; k < w->n_phases; k++) if ((int)w->phases[k] == p) p = -2;
            if (p >= 0) w->phases[w->n_phases++] = (cb_phase)p;
        }
    } else if (!strcmp(key, "batch") || !strcmp(key, "threads")) {
        bool b = key[0] == 'b';
        int *arr = b ? w->batches : w->threads, *n = b ? &w->n_batches : &w->n_threads;
        *n = 0;
        for (int i = 0; i < v->n; i++) {
            int64_t x;
            if (b && !strcmp(v->v[i], "max")) x = 0;
            else if (cb_parse_size(v->v[i], &x) || x < (b ? 1 : 0) || x > (b ? 1 << 20 : CB_WL_MAX_THREADS)) {
                cb_err_set(err, "%s:%d: bad %s '%s' (expected %s)", origin, v->line, key, v->v[i],
                           b ? "an integer in [1, 1048576] or 'max' (largest batch that fits the memory budget)"
                             : "an integer in [0, 4096] (0 = all)");
                return -1;
            }
            if (*n >= CB_WL_MAX_LIST) goto toomany;
            arr[(*n)++] = (int)x;
        }
    } else if (!strcmp(key, "repetitions")) return to_int(v, key, origin, 1, 100000, &w->repetitions, err);
    else if (!strcmp(key, "warmups")) return to_int(v, key, origin, 0, 100000, &w->warmups, err);
    else if (!strcmp(key, "decode_tokens")) return to_int(v, key, origin, 1, 1 << 20, &w->decode_tokens, err);
    else if (!strcmp(key, "prefill_chunk")) return to_int(v, key, origin, 1, 1 << 20, &w->prefill_chunk, err);
    else if (!strcmp(key, "sample_depths")) return to_int(v, key, origin, 2, 64, &w->sample_depths, err);
    else if (!strcmp(key, "max_measured_prefill")) {
        if (want_one(v, key, origin, err)) return -1;
        if (cb_parse_size(v->v[0], &w->max_measured_prefill) || w->max_measured_prefill <= 0 ||
            w->max_measured_prefill > CB_WL_MAX_CONTEXT) {
            cb_err_set(err, "%s:%d: bad max_measured_prefill '%s' (expected a context such as 64K, at most 2^60)", origin,
                       v->line, v->v[0]);
            return -1;
        }
    } else if (!strcmp(key, "fill")) {
        if (want_one(v, key, origin, err)) return -1;
        int f = -1;
        for (int k = 0; k < CB_FILL_COUNT; k++) if (!strcmp(v->v[0], cb_fill_name((cb_fill)k))) f = k;
        if (f < 0) { cb_err_set(err, "%s:%d: bad fill '%s' (expected real, synthetic or auto)", origin, v->line, v->v[0]); return -1; }
        w->fill = (cb_fill)f;
    } else if (!strcmp(key, "time_budget_point")) return to_seconds(v, key, origin, &w->time_budget_point, err);
    else if (!strcmp(key, "time_budget_run")) return to_seconds(v, key, origin, &w->time_budget_run, err);
    else if (!strcmp(key, "memory_budget")) {
        if (want_one(v, key, origin, err)) return -1;
        if (cb_parse_memory_budget(v->v[0], &w->memory_budget_fraction, &w->memory_budget_bytes)) {
            cb_err_set(err, "%s:%d: bad memory_budget '%s' (expected a percentage of MemAvailable in (0, 100]%% like 85%%, or "
                       "bytes in [1, 2^60] like 16G)", origin, v->line, v->v[0]);
            return -1;
        }
    } else if (!strcmp(key, "mode")) {
        if (want_one(v, key, origin, err)) return -1;
        if (!strcmp(v->v[0], "exact")) w->mode = CB_MODE_EXACT;
        else if (!strcmp(v->v[0], "fast")) w->mode = CB_MODE_FAST;
        else { cb_err_set(err, "%s:%d: bad mode '%s' (expected exact or fast)", origin, v->line, v->v[0]); return -1; }
    } else if (!strcmp(key, "kv_dtype") || !strcmp(key, "weight_dtype")) {
        if (want_one(v, key, origin, err)) return -1;
        cb_dtype t;
        if (cb_weights_dtype_parse(v->v[0], &t)) {
            cb_err_set(err, "%s:%d: bad %s '%s' (expected f32, f16 or bf16, or fp8 / int8 for 8-bit %s)", origin, v->line,
                       key, v->v[0], key[0] == 'w' ? "linear weights" : "KV codes with per-token scales");
            return -1;
        }
        if (key[0] == 'k') w->kv_dtype = t; else w->weight_dtype = t;
    } else if (!strcmp(key, "seed")) {
        if (want_one(v, key, origin, err)) return -1;
        char *end;
        errno = 0;
        const char *t = v->v[0];
        while (isspace((unsigned char)*t)) t++;
        unsigned long long s = strtoull(t, &end, 0); /* strtoull takes "-1" as 2^64 - 1: a sign is refused first */
        if (*t == '-' || *t == '+' || *end || errno || end == t) {
            cb_err_set(err, "%s:%d: bad seed '%s' (expected an integer in [0, 18446744073709551615])", origin, v->line, v->v[0]);
            return -1;
        }
        w->seed = s;
    } else if (!strcmp(key, "papi_events")) {
        w->n_events = 0;
        for (int i = 0; i < v->n; i++) {
            if (w->n_events >= CB_WL_MAX_LIST) goto toomany;
            snprintf(w->events[w->n_events++], sizeof w->events[0], "%s", v->v[i]);
        }
    } else if (!strcmp(key, "peak_gflops") || !strcmp(key, "peak_gbps")) {
        if (want_one(v, key, origin, err)) return -1;
        char *end;
        double x = strtod(v->v[0], &end);
        if (*end || end == v->v[0] || !(x > 0 && x <= CB_WL_MAX_PEAK)) {
            cb_err_set(err, "%s:%d: bad %s '%s' (expected a number in (0, 1e9])", origin, v->line, key, v->v[0]);
            return -1;
        }
        if (key[5] == 'g' && key[6] == 'f') w->peak_gflops = x; else w->peak_gbps = x;
    } else if (!strcmp(key, "memory_check")) {
        if (want_one(v, key, origin, err)) return -1;
        const char *x = v->v[0];
        if (!strcmp(x, "allocate")) w->memory_check = true;
        else if (!strcmp(x, "off")) w->memory_check = false;
        else { cb_err_set(err, "%s:%d: 'memory_check' must be allocate or off, got '%s'", origin, v->line, x); return -1; }
    } else if (!strcmp(key, "bandwidth_probe")) {
        if (want_one(v, key, origin, err)) return -1;
        const char *x = v->v[0];
        if (!strcmp(x, "on") || !strcmp(x, "true") || !strcmp(x, "yes")) w->bandwidth_probe = true;
        else if (!strcmp(x, "off") || !strcmp(x, "false") || !strcmp(x, "no")) w->bandwidth_probe = false;
        else { cb_err_set(err, "%s:%d: 'bandwidth_probe' must be on or off, got '%s'", origin, v->line, x); return -1; }
    } else {
        cb_err_set(err, "%s:%d: unknown key '%s' (expected one of %s)", origin, v->line, key, known_keys);
        return -1;
    }
    return 0;
toomany:
    cb_err_set(err, "%s:%d: too many values for '%s' (at most %d)", origin, v->line, key, CB_WL_MAX_LIST);
    return -1;
}

static void value_free(value *v) {
    for (int i = 0; i < v->n; i++) free(v->v[i]);
    v->n = 0;
}

int cb_workload_parse(const char *text, const char *origin, cb_workload *w, cb_err *err) {
    cb_workload_defaults(w);
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p)) { cb_err_set(err, "%s: cannot initialise the YAML parser", origin); return -1; }
    yaml_parser_set_input_string(&p, (const unsigned char *)text, strlen(text));
    int rc = -1, depth = 0; /* 0: outside, 1: top mapping, 2: in a list value */
    char key[128] = "";
    int key_line = 0;
    bool have_key = false, done = false, seen_map = false;
    value v = { 0 };
    char seen[64][128];
    int n_seen = 0;
    while (!done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            cb_err_set(err, "%s:%zu: YAML error: %s", origin, p.problem_mark.line + 1, p.problem ? p.problem : "?");
            goto out;
        }
        int line = (int)ev.start_mark.line + 1;
        bool ok = true;
        switch (ev.type) {
        case YAML_STREAM_START_EVENT: case YAML_DOCUMENT_START_EVENT: case YAML_DOCUMENT_END_EVENT: break;
        case YAML_STREAM_END_EVENT: done = true; break;
        case YAML_MAPPING_START_EVENT:
            if (depth != 0 || seen_map) { cb_err_set(err, "%s:%d: nested mappings are not allowed (values are scalars or lists)", origin, line); ok = false; }
            depth = 1; seen_map = true;
            break;
        case YAML_MAPPING_END_EVENT: depth = 0; break;
        case YAML_SEQUENCE_START_EVENT:
            if (depth != 1 || !have_key) { cb_err_set(err, "%s:%d: a list is only allowed as the value of a key", origin, line); ok = false; }
            depth = 2; v.is_list = true; v.line = line;
            break;
        case YAML_SEQUENCE_END_EVENT:
            depth = 1;
            if (apply(w, key, &v, origin, err)) ok = false;
            value_free(&v); have_key = false; v.is_list = false;
            break;
        case YAML_SCALAR_EVENT: {
            const char *s = (const char *)ev.data.scalar.value;
            if (depth == 1 && !have_key) {
                snprintf(key, sizeof key, "%s", s);
                key_line = line; have_key = true;
                for (int i = 0; i < n_seen; i++)
                    if (!strcmp(seen[i], key)) { cb_err_set(err, "%s:%d: key '%s' given twice", origin, line, key); ok = false; }
                if (n_seen < 64) snprintf(seen[n_seen++], sizeof seen[0], "%s", key);
            } else if (depth == 1) {
                v.line = key_line; v.is_list = false;
                v.v[v.n++] = strdup(s);
                if (apply(w, key, &v, origin, err)) ok = false;
                value_free(&v); have_key = false;
            } else if (depth == 2) {
                if (v.n >= (int)(sizeof v.v / sizeof v.v[0])) { cb_err_set(err, "%s:%d: list too long", origin, line); ok = false; }
                else v.v[v.n++] = strdup(s);
            } else { cb_err_set(err, "%s:%d: expected a mapping of keys to values", origin, line); ok = false; }
            break;
        }
        case YAML_ALIAS_EVENT: cb_err_set(err, "%s:%d: YAML aliases are not supported", origin, line); ok = false; break;
        default: break;
        }
        yaml_event_delete(&ev);
        if (!ok) goto out;
    }
    if (!seen_map) { cb_err_set(err, "%s: empty workload (expected a mapping of keys such as models:, contexts:)", origin); goto out; }
    if (w->n_models == 0) { cb_err_set(err, "%s: no models: given", origin); goto out; }
    if (w->n_contexts == 0) { cb_err_set(err, "%s: no contexts: given", origin); goto out; }
    rc = 0;
out:
    value_free(&v);
    yaml_parser_delete(&p);
    return rc;
}

int cb_workload_load(const char *path, cb_workload *w, char **text_out, cb_err *err) {
    char buf[1024];
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(buf, sizeof buf, "%s.yaml", path);
        f = fopen(buf, "rb");
        if (f) path = buf;
    }
    if (!f) { cb_err_set(err, "%s: cannot open workload: %s", path, strerror(errno)); return -1; }
    char *text = NULL;
    size_t cap = 0, len = 0, r;
    do {
        if (len + 4096 + 1 > cap) { cap = cap * 2 + 8192; char *t = realloc(text, cap); if (!t) { free(text); fclose(f); cb_err_set(err, "%s: out of memory", path); return -1; } text = t; }
        r = fread(text + len, 1, cap - len - 1, f);
        len += r;
    } while (r > 0);
    fclose(f);
    text[len] = 0;
    char origin[1024];
    snprintf(origin, sizeof origin, "%s", path);
    if (cb_workload_parse(text, origin, w, err)) { free(text); return -1; }
    if (text_out) *text_out = text; else free(text);
    return 0;
}
