#include "common.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void cb_err_set(cb_err *err, const char *fmt, ...) {
    if (!err) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
}

static const struct { const char *name, *st; size_t size; } dtype_info[CB_DTYPE_COUNT] = {
    [CB_F32] = { "f32", "F32", 4 },  [CB_F16] = { "f16", "F16", 2 },
    [CB_BF16] = { "bf16", "BF16", 2 }, [CB_I32] = { "i32", "I32", 4 },
    [CB_I64] = { "i64", "I64", 8 },  [CB_F8_E4M3] = { "fp8", "F8_E4M3", 1 },
    [CB_I8] = { "int8", "I8", 1 },
};

size_t cb_dtype_size(cb_dtype t) { return (unsigned)t < CB_DTYPE_COUNT ? dtype_info[t].size : 0; }
const char *cb_dtype_name(cb_dtype t) { return (unsigned)t < CB_DTYPE_COUNT ? dtype_info[t].name : "?"; }
const char *cb_dtype_safetensors_name(cb_dtype t) {
    return (unsigned)t < CB_DTYPE_COUNT ? dtype_info[t].st : "?";
}

int cb_dtype_parse(const char *s, cb_dtype *out) {
    static const struct { const char *alias; cb_dtype t; } aliases[] = {
        { "f32", CB_F32 },   { "fp32", CB_F32 },     { "float32", CB_F32 },  { "float", CB_F32 },
        { "bf16", CB_BF16 }, { "bfloat16", CB_BF16 }, { "f16", CB_F16 },      { "fp16", CB_F16 },
        { "float16", CB_F16 }, { "half", CB_F16 },    { "fp8", CB_F8_E4M3 }, { "f8_e4m3", CB_F8_E4M3 },
        { "int8", CB_I8 },   { "i8", CB_I8 },         { "i32", CB_I32 },      { "i64", CB_I64 },
    };
    for (size_t i = 0; i < sizeof aliases / sizeof aliases[0]; i++)
        if (strcasecmp(s, aliases[i].alias) == 0) { *out = aliases[i].t; return 0; }
    return -1;
}

int cb_weights_dtype_parse(const char *s, cb_dtype *out) {
    cb_dtype d;
    if (cb_dtype_parse(s, &d) || d == CB_I32 || d == CB_I64) return -1;
    *out = d;
    return 0;
}

int cb_kv_dtype_parse(const char *s, cb_dtype *out) { return cb_weights_dtype_parse(s, out); }

float cb_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    union { uint32_t u; float f; } v;
    if (exp == 0) { /* zero / subnormal */
        float f = ldexpf((float)man, -24);
        return sign ? -f : f;
    }
    if (exp == 31) v.u = sign | 0x7f800000u | (man << 13);
    else v.u = sign | ((exp + 112) << 23) | (man << 13);
    return v.f;
}

uint16_t cb_f32_to_f16(float f) {
    union { uint32_t u; float f; } v = { .f = f };
    uint32_t sign = (v.u >> 16) & 0x8000, a = v.u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00);
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* overflow -> inf (rounded) */
    if (a < 0x38800000u) { /* subnormal or zero in f16: round x * 2^24 to nearest even */
        float m = fabsf(f) * 16777216.0f;
        return (uint16_t)(sign | (uint32_t)nearbyintf(m));
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

float cb_load_f32(const void *data, cb_dtype t, size_t i) {
    switch (t) {
    case CB_F32: return ((const float *)data)[i];
    case CB_BF16: return cb_bf16_to_f32(((const uint16_t *)data)[i]);
    case CB_F16: return cb_f16_to_f32(((const uint16_t *)data)[i]);
    case CB_I32: return (float)((const int32_t *)data)[i];
    case CB_I64: return (float)((const int64_t *)data)[i];
    case CB_I8: return (float)((const int8_t *)data)[i];
    default: return NAN;
    }
}

/* Live blocks while counting (cb_alloc_count_start): address, requested bytes, category, mapped or not. */
static struct {
    bool on, dry;
    int n;
    size_t live[CB_ALLOC_NCAT];
    struct { void *p; size_t bytes; cb_alloc_cat cat; bool mapped; } rec[CB_ALLOC_TRACK_MAX];
} acct;
static pthread_mutex_t acct_lock = PTHREAD_MUTEX_INITIALIZER;
#define DRY_MIN ((size_t)1 << 20)

void cb_alloc_count_start(bool dry) {
    pthread_mutex_lock(&acct_lock);
    memset(&acct, 0, sizeof acct);
    acct.on = true, acct.dry = dry;
    pthread_mutex_unlock(&acct_lock);
}

void cb_alloc_count_stop(void) {
    pthread_mutex_lock(&acct_lock);
    if (acct.n) fprintf(stderr, "ctxbench: allocation counting stopped with %d blocks live (freed as usual)\n", acct.n);
    for (int i = 0; i < acct.n; i++) /* keep the mapped ones findable: stop only clears the counters */
        if (!acct.rec[i].mapped) acct.rec[i--] = acct.rec[--acct.n];
    memset(acct.live, 0, sizeof acct.live);
    acct.on = false;
    pthread_mutex_unlock(&acct_lock);
}

size_t cb_alloc_live_bytes(cb_alloc_cat cat) { return cat >= 0 && cat < CB_ALLOC_NCAT ? acct.live[cat] : 0; }

static void *alloc_block(cb_alloc_cat cat, size_t bytes, bool *mapped, cb_err *err) {
    void *p = NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    if (rounded == 0) rounded = 64;
    *mapped = false;
    if (acct.on && acct.dry && bytes >= DRY_MIN) {
        p = mmap(NULL, rounded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (p == MAP_FAILED) p = NULL;
        else *mapped = true;
    } else if (posix_memalign(&p, 64, rounded) != 0) {
        p = NULL;
    }
    if (!p) {
        cb_err_set(err, "out of memory allocating %zu bytes", bytes);
        return NULL;
    }
    if (acct.on) {
        pthread_mutex_lock(&acct_lock);
        if (acct.n == CB_ALLOC_TRACK_MAX) {
            fprintf(stderr, "ctxbench: more than %d blocks live while counting allocations (raise CB_ALLOC_TRACK_MAX in "
                    "engines/common.h)\n", CB_ALLOC_TRACK_MAX);
            abort();
        }
        acct.rec[acct.n].p = p, acct.rec[acct.n].bytes = bytes, acct.rec[acct.n].cat = cat, acct.rec[acct.n].mapped = *mapped;
        acct.n++;
        acct.live[cat] += bytes;
        pthread_mutex_unlock(&acct_lock);
    }
    return p;
}

void *cb_alloc_in(cb_alloc_cat cat, size_t bytes, cb_err *err) {
    bool mapped;
    return alloc_block(cat, bytes, &mapped, err);
}

void *cb_calloc_in(cb_alloc_cat cat, size_t bytes, cb_err *err) {
    bool mapped;
    void *p = alloc_block(cat, bytes, &mapped, err);
    if (p && !mapped) memset(p, 0, bytes); /* fresh anonymous pages already read as zeros */
    return p;
}

void *cb_alloc(size_t bytes, cb_err *err) { return cb_alloc_in(CB_ALLOC_OTHER, bytes, err); }
void *cb_calloc(size_t bytes, cb_err *err) { return cb_calloc_in(CB_ALLOC_OTHER, bytes, err); }

void cb_free(void *p) {
    if (!p) return;
    if (acct.on || acct.n) {
        pthread_mutex_lock(&acct_lock);
        for (int i = 0; i < acct.n; i++)
            if (acct.rec[i].p == p) {
                const bool mapped = acct.rec[i].mapped;
                const size_t rounded = (acct.rec[i].bytes + 63) & ~(size_t)63;
                if (acct.on) acct.live[acct.rec[i].cat] -= acct.rec[i].bytes;
                acct.rec[i] = acct.rec[--acct.n];
                pthread_mutex_unlock(&acct_lock);
                if (mapped) munmap(p, rounded ? rounded : 64);
                else free(p);
                return;
            }
        pthread_mutex_unlock(&acct_lock);
    }
    free(p);
}

double cb_now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cb_registry_add(cb_registry *r, const void *p, const char *what) {
    if (r->n == CB_REGISTRY_MAX) {
        fprintf(stderr, "ctxbench: more than %d %s registered (raise CB_REGISTRY_MAX in engines/common.h)\n",
                CB_REGISTRY_MAX, what);
        exit(1);
    }
    r->item[r->n++] = p;
}
