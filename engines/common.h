/* Shared basics: errors, dtypes, half/bfloat conversions. Everything in ctxbench includes this. */
#ifndef CB_COMMON_H
#define CB_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An error carries one human-readable line naming the file / tensor / key and what was expected.
 * Functions that can fail return 0 on success, -1 on failure and fill *err (err may be NULL). */
typedef struct {
    char msg[512];
} cb_err;

void cb_err_set(cb_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

typedef enum {
    CB_F32 = 0,
    CB_F16,
    CB_BF16,
    CB_I32,
    CB_I64,
    CB_F8_E4M3, /* 8-bit weights (docs/quantization.md) */
    CB_I8,
    CB_DTYPE_COUNT
} cb_dtype;

size_t cb_dtype_size(cb_dtype t);
const char *cb_dtype_name(cb_dtype t);           /* "f32", "bf16", ... */
const char *cb_dtype_safetensors_name(cb_dtype t); /* "F32", "BF16", ... */
int cb_dtype_parse(const char *s, cb_dtype *out);  /* accepts f32/fp32/float32/F32, bf16/bfloat16, f16/fp16/float16 */
/* A weights dtype (--weights-dtype): cb_dtype_parse restricted to f32, f16, bf16, fp8 and int8. */
int cb_weights_dtype_parse(const char *s, cb_dtype *out);
/* A KV cache dtype (--kv-dtype, kv_dtype:): the same five, fp8 / int8 meaning codes with per-token scales. */
int cb_kv_dtype_parse(const char *s, cb_dtype *out);

/* Exact conversions (fp32 -> bf16/f16 round to nearest even). */
static inline float cb_bf16_to_f32(uint16_t h) {
    union { uint32_t u; float f; } v = { .u = (uint32_t)h << 16 };
    return v.f;
}
static inline uint16_t cb_f32_to_bf16(float f) {
    union { uint32_t u; float f; } v = { .f = f };
    if ((v.u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((v.u >> 16) | 0x40); /* quiet NaN */
    uint32_t rounding = 0x7fffu + ((v.u >> 16) & 1u);
    return (uint16_t)((v.u + rounding) >> 16);
}
float cb_f16_to_f32(uint16_t h);
uint16_t cb_f32_to_f16(float f);

/* Element i of a typed array as fp32 (slow path, for loaders and tests). */
float cb_load_f32(const void *data, cb_dtype t, size_t i);

/* Aligned allocation (64 bytes) that reports the size it failed on. Free with cb_free. */
void *cb_alloc(size_t bytes, cb_err *err);
void *cb_calloc(size_t bytes, cb_err *err);
void cb_free(void *p);

/* Allocation accounting (docs/methodology.md, "Memory and counters"): what an engine really allocates, by
 * memory-plan category, so tests can hold the plan to the allocations. The engines allocate their KV cache,
 * states and scratch through cb_calloc_in / cb_alloc_in with the category; plain cb_alloc is OTHER. */
typedef enum { CB_ALLOC_OTHER, CB_ALLOC_WEIGHTS, CB_ALLOC_KV, CB_ALLOC_SSM, CB_ALLOC_CONV, CB_ALLOC_SCRATCH, CB_ALLOC_NCAT } cb_alloc_cat;
void *cb_alloc_in(cb_alloc_cat cat, size_t bytes, cb_err *err);
void *cb_calloc_in(cb_alloc_cat cat, size_t bytes, cb_err *err);
/* Start (counters zeroed) or stop counting; at most CB_ALLOC_TRACK_MAX blocks live at once while counting
 * (more aborts with a message). dry: blocks of 1 MiB or more are MAP_NORESERVE mappings that read as zeros
 * and that cb_calloc does not write, so an engine of any size can be created without faulting its pages in
 * (cb_preset_create_shapes does the same for the weights); never run a forward pass in dry mode. */
#define CB_ALLOC_TRACK_MAX 4096
void cb_alloc_count_start(bool dry);
void cb_alloc_count_stop(void);
size_t cb_alloc_live_bytes(cb_alloc_cat cat); /* bytes requested and not yet freed, since the start */

/* Deterministic RNG (splitmix64 / xoshiro-style), used by presets and synthetic fills. */
typedef struct { uint64_t s; } cb_rng;
static inline uint64_t cb_rng_next(cb_rng *r) {
    uint64_t z = (r->s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
/* Uniform in [-1, 1). */
static inline float cb_rng_uniform(cb_rng *r) {
    return (float)((double)(cb_rng_next(r) >> 11) * (1.0 / 9007199254740992.0) * 2.0 - 1.0);
}

double cb_now_seconds(void); /* CLOCK_MONOTONIC */

/* A list of registered pointers (engines, model families), filled by constructors before main. */
#define CB_REGISTRY_MAX 32
typedef struct {
    const void *item[CB_REGISTRY_MAX];
    int n;
} cb_registry;
/* Appends p; a full registry is a build error of the program: it says so, naming `what`, and exits 1. */
void cb_registry_add(cb_registry *r, const void *p, const char *what);

#define CB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define CB_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Byte counts of memory plans saturate here instead of wrapping: a plan that does not fit 63 bits reads
 * as CB_BYTES_MAX, which every budget refuses, and stays positive when stored as an SQLite integer
 * (docs/promises.md). */
#define CB_BYTES_MAX ((size_t)INT64_MAX)
static inline size_t cb_bytes_mul(size_t a, size_t b) {
    size_t r;
    return __builtin_mul_overflow(a, b, &r) || r > CB_BYTES_MAX ? CB_BYTES_MAX : r;
}
static inline size_t cb_bytes_add(size_t a, size_t b) {
    size_t r;
    return __builtin_add_overflow(a, b, &r) || r > CB_BYTES_MAX ? CB_BYTES_MAX : r;
}

#endif
