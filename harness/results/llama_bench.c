/* llama-bench output -> records. Every format becomes one jansson object per test (CSV cells as strings),
 * read by the same typed getters, so the three formats give the same errors. docs/peers.md. */
#include "llama_bench.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const char *path;
    char where[32];  /* "3" (line) or "record 3" (json array) */
    cb_err *err;
} src_t;

static int missing(src_t *s, const char *key) {
    cb_err_set(s->err, "%s:%s: missing key '%s'", s->path, s->where, key);
    return -1;
}

static int bad(src_t *s, const char *key, const char *expected, const char *got) {
    cb_err_set(s->err, "%s:%s: key '%s' is %s, expected %s", s->path, s->where, key, got, expected);
    return -1;
}

static const char *kind(const json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a real number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

/* Integers: a JSON integer, or (CSV) a string holding one. */
static int get_int(src_t *s, json_t *o, const char *key, bool required, int64_t *out) {
    json_t *v = json_object_get(o, key);
    if (!v) { if (required) return missing(s, key); *out = -1; return 0; }
    if (json_is_integer(v)) { *out = json_integer_value(v); return 0; }
    if (json_is_string(v)) {
        const char *t = json_string_value(v);
        char *end;
        errno = 0;
        long long x = strtoll(t, &end, 10);
        if (*t && !*end && !errno) { *out = x; return 0; }
        char got[96];
        snprintf(got, sizeof got, "a string ('%.60s')", t);
        return bad(s, key, "an integer", got);
    }
    return bad(s, key, "an integer", kind(v));
}

static int get_real(src_t *s, json_t *o, const char *key, double *out) {
    json_t *v = json_object_get(o, key);
    if (!v) return missing(s, key);
    if (json_is_number(v)) { *out = json_number_value(v); return 0; }
    if (json_is_string(v)) {
        const char *t = json_string_value(v);
        char *end;
        *out = strtod(t, &end);
        if (*t && !*end) return 0;
    }
    return bad(s, key, "a number", kind(v));
}

static int get_str(src_t *s, json_t *o, const char *key, bool required, char *out, size_t n) {
    json_t *v = json_object_get(o, key);
    if (!v) { if (required) return missing(s, key); out[0] = 0; return 0; }
    if (!json_is_string(v)) return bad(s, key, "a string", kind(v));
    snprintf(out, n, "%s", json_string_value(v));
    return 0;
}

/* llama-bench's -fa: a boolean (older builds) or 0/1 (an int; a string in CSV). */
static int get_flag(src_t *s, json_t *o, const char *key, int *out) {
    json_t *v = json_object_get(o, key);
    if (!v) return missing(s, key);
    if (json_is_boolean(v)) { *out = json_is_true(v); return 0; }
    const char *t = json_is_string(v) ? json_string_value(v) : NULL;
    if (t && (!strcmp(t, "true") || !strcmp(t, "false"))) { *out = t[0] == 't'; return 0; }
    int64_t x;
    if (get_int(s, o, key, true, &x)) return -1;
    if (x != 0 && x != 1) return bad(s, key, "0 or 1", "another integer");
    *out = (int)x;
    return 0;
}

static int get_small(src_t *s, json_t *o, const char *key, int *out) {
    int64_t x;
    if (get_int(s, o, key, true, &x)) return -1;
    if (x < 0 || x > (1 << 30)) return bad(s, key, "a count >= 0", "out of range");
    *out = (int)x;
    return 0;
}

static int get_samples(src_t *s, json_t *o, cb_lb_record *r) {
    json_t *v = json_object_get(o, "samples_ns");
    if (!v) return missing(s, "samples_ns");
    if (!json_is_array(v) || json_array_size(v) == 0) return bad(s, "samples_ns", "a non-empty array of nanoseconds", kind(v));
    r->n_samples = (int)json_array_size(v);
    r->samples_ns = malloc(sizeof(double) * (size_t)r->n_samples);
    if (!r->samples_ns) { cb_err_set(s->err, "%s: out of memory", s->path); return -1; }
    for (int i = 0; i < r->n_samples; i++) {
        json_t *x = json_array_get(v, (size_t)i);
        if (!json_is_integer(x) || json_integer_value(x) <= 0)
            return bad(s, "samples_ns", "an array of positive integers (nanoseconds)", "an array with another element");
        r->samples_ns[i] = (double)json_integer_value(x);
    }
    return 0;
}

static int record_from(src_t *s, json_t *o, bool csv, cb_lb_record *r) {
    if (!json_is_object(o)) { cb_err_set(s->err, "%s:%s: expected a JSON object per test, got %s", s->path, s->where, kind(o)); return -1; }
    int64_t ms, np, bn;
    if (get_str(s, o, "build_commit", true, r->build_commit, sizeof r->build_commit) ||
        get_int(s, o, "build_number", false, &bn) ||
        get_str(s, o, "cpu_info", false, r->cpu_info, sizeof r->cpu_info) ||
        get_str(s, o, "backends", false, r->backends, sizeof r->backends) ||
        get_str(s, o, "model_filename", true, r->model_filename, sizeof r->model_filename) ||
        get_str(s, o, "model_type", true, r->model_type, sizeof r->model_type) ||
        get_int(s, o, "model_size", false, &ms) || get_int(s, o, "model_n_params", true, &np) ||
        get_int(s, o, "n_batch", false, &r->n_batch) || get_int(s, o, "n_ubatch", false, &r->n_ubatch) ||
        get_small(s, o, "n_threads", &r->n_threads) ||
        get_str(s, o, "type_k", true, r->type_k, sizeof r->type_k) ||
        get_str(s, o, "type_v", true, r->type_v, sizeof r->type_v) || get_flag(s, o, "flash_attn", &r->flash_attn) ||
        get_small(s, o, "n_prompt", &r->n_prompt) || get_small(s, o, "n_gen", &r->n_gen) ||
        get_small(s, o, "n_depth", &r->n_depth) ||
        get_str(s, o, "test_time", true, r->test_time, sizeof r->test_time) || get_real(s, o, "avg_ns", &r->avg_ns) ||
        get_real(s, o, "stddev_ns", &r->stddev_ns))
        return -1;
    r->build_number = bn, r->model_size = ms, r->model_n_params = np;
    if (np <= 0) return bad(s, "model_n_params", "a positive parameter count", "<= 0");
    if (r->n_threads < 1) return bad(s, "n_threads", "a thread count >= 1", "0");
    if ((r->n_prompt > 0) == (r->n_gen > 0)) {
        cb_err_set(s->err, "%s:%s: n_prompt %d and n_gen %d: expected exactly one of them > 0 (a pp or a tg test; "
                   "llama-bench's combined pg tests have no ctxbench phase)", s->path, s->where, r->n_prompt, r->n_gen);
        return -1;
    }
    if (!(r->avg_ns > 0)) return bad(s, "avg_ns", "a positive time in nanoseconds", "<= 0");
    if (!csv) return get_samples(s, o, r);
    return 0;
}

static char *slurp(const char *path, cb_err *err) {
    FILE *f = fopen(path, "rb");
    if (!f) { cb_err_set(err, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    char *buf = NULL;
    size_t n = 0, cap = 0, got;
    char chunk[65536];
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (n + got + 1 > cap) {
            cap = (n + got + 1) * 2;
            char *nb = realloc(buf, cap);
            if (!nb) { free(buf); fclose(f); cb_err_set(err, "%s: out of memory", path); return NULL; }
            buf = nb;
        }
        memcpy(buf + n, chunk, got), n += got;
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) { free(buf); cb_err_set(err, "%s: read error", path); return NULL; }
    if (!buf) buf = calloc(1, 1);
    if (buf) buf[n] = 0;
    return buf;
}

static int push(cb_lb_file *out, int *cap, cb_err *err, const char *path) {
    if (out->n < *cap) return 0;
    *cap = *cap ? *cap * 2 : 64;
    cb_lb_record *nr = realloc(out->rec, sizeof *nr * (size_t)*cap);
    if (!nr) { cb_err_set(err, "%s: out of memory", path); return -1; }
    out->rec = nr;
    return 0;
}

static int parse_jsonl(const char *path, char *text, cb_lb_file *out, cb_err *err) {
    int cap = 0, line = 0;
    for (char *p = text, *nl; p && *p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) *nl = 0;
        line++;
        char *q = p;
        while (isspace((unsigned char)*q)) q++;
        if (!*q) continue;
        json_error_t je;
        json_t *o = json_loads(q, JSON_REJECT_DUPLICATES, &je);
        if (!o) { cb_err_set(err, "%s:%d: malformed JSON: %s (column %d)", path, line, je.text, je.column); return -1; }
        src_t s = { path, "", err };
        snprintf(s.where, sizeof s.where, "%d", line);
        if (push(out, &cap, err, path)) { json_decref(o); return -1; }
        cb_lb_record *r = &out->rec[out->n];
        memset(r, 0, sizeof *r);
        r->line = line;
        out->n++;
        int rc = record_from(&s, o, false, r);
        json_decref(o);
        if (rc) return -1;
    }
    return 0;
}

static int parse_json(const char *path, const char *text, cb_lb_file *out, cb_err *err) {
    json_error_t je;
    json_t *a = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!a) { cb_err_set(err, "%s:%d: malformed JSON: %s (column %d)", path, je.line, je.text, je.column); return -1; }
    if (!json_is_array(a)) { json_decref(a); cb_err_set(err, "%s: expected a JSON array of tests", path); return -1; }
    int cap = 0, rc = 0;
    for (size_t i = 0; i < json_array_size(a) && !rc; i++) {
        src_t s = { path, "", err };
        snprintf(s.where, sizeof s.where, "record %zu", i + 1);
        if ((rc = push(out, &cap, err, path))) break;
        cb_lb_record *r = &out->rec[out->n++];
        memset(r, 0, sizeof *r);
        r->line = (int)i + 1;
        rc = record_from(&s, json_array_get(a, i), false, r);
    }
    json_decref(a);
    return rc;
}

/* One CSV line (RFC 4180 quoting, as llama-bench writes it) into cells; the line is modified. */
static int csv_cells(char *line, char **cells, int max) {
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max) return -1;
        char *w = p;
        cells[n++] = w;
        if (*p == '"') {
            p++;
            for (;;) {
                if (!*p) return -1; /* unterminated quote */
                if (*p == '"' && p[1] == '"') { *w++ = '"'; p += 2; continue; }
                if (*p == '"') { p++; break; }
                *w++ = *p++;
            }
            if (*p && *p != ',') return -1;
        } else {
            while (*p && *p != ',') *w++ = *p++;
        }
        bool more = *p == ',';
        *w = 0;
        if (!more) return n;
        p++;
    }
}

static int parse_csv(const char *path, char *text, cb_lb_file *out, cb_err *err) {
    enum { MAXC = 128 };
    char *head[MAXC], *cells[MAXC];
    int nh = -1, cap = 0, line = 0;
    for (char *p = text, *nl; p && *p; p = nl ? nl + 1 : NULL) {
        nl = strchr(p, '\n');
        if (nl) *nl = 0;
        line++;
        size_t len = strlen(p);
        if (len && p[len - 1] == '\r') p[len - 1] = 0;
        if (!*p) continue;
        if (nh < 0) {
            nh = csv_cells(p, head, MAXC);
            if (nh < 0) { cb_err_set(err, "%s:%d: malformed CSV header", path, line); return -1; }
            continue;
        }
        int nc = csv_cells(p, cells, MAXC);
        if (nc < 0) { cb_err_set(err, "%s:%d: malformed CSV line (unterminated quote or too many cells)", path, line); return -1; }
        if (nc != nh) { cb_err_set(err, "%s:%d: %d cells, the header has %d", path, line, nc, nh); return -1; }
        json_t *o = json_object();
        for (int i = 0; i < nc && o; i++) json_object_set_new(o, head[i], json_string(cells[i]));
        if (!o || push(out, &cap, err, path)) { json_decref(o); cb_err_set(err, "%s: out of memory", path); return -1; }
        src_t s = { path, "", err };
        snprintf(s.where, sizeof s.where, "%d", line);
        cb_lb_record *r = &out->rec[out->n++];
        memset(r, 0, sizeof *r);
        r->line = line;
        int rc = record_from(&s, o, true, r);
        json_decref(o);
        if (rc) return -1;
    }
    if (nh < 0) { cb_err_set(err, "%s: empty file (expected llama-bench -o jsonl, json or csv output)", path); return -1; }
    return 0;
}

int cb_lb_parse_file(const char *path, cb_lb_file *out, cb_err *err) {
    memset(out, 0, sizeof *out);
    char *text = slurp(path, err);
    if (!text) return -1;
    if (!(out->text = strdup(text))) { free(text); cb_err_set(err, "%s: out of memory", path); return -1; }
    const char *p = text;
    while (isspace((unsigned char)*p)) p++;
    int rc;
    if (*p == '{') snprintf(out->format, sizeof out->format, "jsonl"), rc = parse_jsonl(path, text, out, err);
    else if (*p == '[') snprintf(out->format, sizeof out->format, "json"), rc = parse_json(path, text, out, err);
    else snprintf(out->format, sizeof out->format, "csv"), rc = parse_csv(path, text, out, err);
    free(text);
    if (!rc && out->n == 0) { cb_err_set(err, "%s: no tests in the file", path); rc = -1; }
    if (rc) cb_lb_free(out);
    return rc;
}

void cb_lb_free(cb_lb_file *f) {
    for (int i = 0; i < f->n; i++) free(f->rec[i].samples_ns);
    free(f->rec);
    free(f->text);
    f->rec = NULL, f->text = NULL, f->n = 0;
}

void cb_lb_model_stem(const char *model_filename, char *out, size_t n) {
    const char *b = strrchr(model_filename, '/');
    snprintf(out, n, "%s", b ? b + 1 : model_filename);
    size_t l = strlen(out);
    if (l > 5 && !strcmp(out + l - 5, ".gguf")) out[l - 5] = 0;
}

void cb_lb_weight_dtype(const char *model_type, char *out, size_t n) {
    const char *sp = strrchr(model_type, ' ');
    snprintf(out, n, "%s", sp ? sp + 1 : model_type);
    for (char *c = out; *c; c++) *c = (char)tolower((unsigned char)*c);
}
