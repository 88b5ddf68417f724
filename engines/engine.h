/* The engine plug-in interface. An engine is one file that fills a cb_engine_ops table and
 * registers it with CB_REGISTER_ENGINE; the registry finds engines by name or asks each supports().
 * See docs/engines.md. */
#ifndef CB_ENGINE_H
#define CB_ENGINE_H

#include "common.h"
#include "model/model.h"

typedef enum { CB_MODE_EXACT = 0, CB_MODE_FAST } cb_mode;

typedef struct {
    int threads;           /* OpenMP threads; 0 = all available */
    cb_mode mode;          /* exact: fp32 activations; fast: bf16 activations in GEMMs */
    cb_dtype kv_dtype;     /* KV cache storage: bf16 (default), f16, f32, fp8 or int8 (8-bit codes + scales) */
    cb_dtype kv_round;     /* CB_F32 (default): none; bf16 / f16 / fp8 / int8: an f32 cache holding each K/V row
                            * as that dtype stores it (the rounded twin verify judges reduced caches by) */
    cb_dtype state_dtype;  /* conv state storage; SSM state is always f32 */
    int64_t max_context;   /* per sequence, tokens; caches sized for it at create */
    int max_batch;         /* sequences the engine holds at once (>= 1) */
    int prefill_chunk;     /* tokens per prefill step (default 512): scratch is independent of context */
    int ssd_chunk;         /* Mamba2 SSD chunk; 0 = the config's */
    bool tile_weights;     /* keep a copy of each bf16 projection in the AMX tile layout (counted as weights);
                            * default: on when the kernel path is amx, unless CTXBENCH_AMX_PACK=0 */
} cb_engine_opts;

void cb_engine_opts_default(cb_engine_opts *o);

typedef struct {
    size_t weights, kv_cache, ssm_state, conv_state, scratch;
    size_t total; /* sum of the above */
} cb_memory_report;

typedef struct cb_engine cb_engine; /* opaque, engine-defined */

typedef struct cb_engine_ops {
    const char *name;        /* "transformer" | "mamba2" | "bamba" | ... */
    const char *description;
    /* Can this engine run this config? (model_type and layer pattern) */
    bool (*supports)(const cb_config *cfg);
    /* Analytic memory for `batch` sequences of `context` tokens: no weights needed, nothing allocated.
     * Must equal what create() + memory() reports for the same options, to the byte. */
    void (*plan)(const cb_config *cfg, const cb_engine_opts *o, int64_t context, int batch, cb_memory_report *out);
    int (*create)(const cb_model *m, const cb_engine_opts *o, cb_engine **out, cb_err *err);
    /* Append n tokens to sequence `seq` (from empty, or at depth: chunked prefill). logits: NULL (skip
     * the LM head), [vocab] for the last token, or [n, vocab] when all_logits. */
    int (*prefill)(cb_engine *e, int seq, const int32_t *tokens, int n, float *logits, bool all_logits, cb_err *err);
    /* One token for each of `batch` sequences (distinct seq ids, any depths); logits [batch, vocab]. */
    int (*decode)(cb_engine *e, int batch, const int *seqs, const int32_t *tokens, float *logits, cb_err *err);
    /* Put `depth` positions of plausible state (random K/V of the right scale; SSM/conv states) into
     * sequence `seq` without running prefill. Timing-equivalent, numerically meaningless. */
    int (*fill_synthetic)(cb_engine *e, int seq, int64_t depth, uint64_t seed, cb_err *err);
    int64_t (*seq_len)(const cb_engine *e, int seq);
    void (*memory)(const cb_engine *e, cb_memory_report *out); /* bytes allocated, by category */
    void (*reset)(cb_engine *e, int seq);                       /* seq < 0: all sequences */
    void (*destroy)(cb_engine *e);
    /* Optional (may be NULL): during the next prefill of n tokens, copy the residual stream after the
     * embedding and after each layer into buf [n_layers + 1][n][d_model] (verify's per-layer report). */
    void (*capture_hidden)(cb_engine *e, float *buf);
} cb_engine_ops;

void cb_engine_register(const cb_engine_ops *ops);
#define CB_REGISTER_ENGINE(ops) \
    __attribute__((constructor)) static void cb_register_##ops(void) { cb_engine_register(&(ops)); }

const cb_engine_ops *cb_engine_find(const char *name);
/* The engine that runs cfg: the first registered whose supports() accepts it (NULL: none). */
const cb_engine_ops *cb_engine_for_config(const cb_config *cfg);
int cb_engine_count(void);
const cb_engine_ops *cb_engine_at(int i);

#endif
