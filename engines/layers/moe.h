/* Routed mixture of experts (granitemoehybrid's block_sparse_moe; docs/engines.md "Mixture of experts"):
 * router logits = x · routerᵀ, the top_k of them, softmax over those k, and the gate-weighted sum of the
 * k chosen experts' SwiGLU outputs, expert = down(silu(gate(x)) * up(x)).
 *
 * Rows are grouped by expert: each expert that any row chose runs once, as one GEMM over all the rows
 * that chose it (the cb_matmul entry points, so whatever kernel those dispatch to); an expert no row chose
 * is never read. Decode-sized calls run all chosen experts' GEMMs as row tiles of one parallel region. A decode batch of one token therefore streams exactly its k experts' weights. Each row's
 * sum runs over its experts in ascending expert index, whatever the batch or the split. */
#ifndef CB_MOE_H
#define CB_MOE_H

#include "../engine.h"

/* Scratch floats cb_moe_forward needs for n rows. */
size_t cb_moe_scratch_floats(const cb_config *cfg, int n);

/* out[n, d] += Σ_k gate_k · expert_k(x[n, d]). Router logits in exact fp32 in both modes (a bf16 router
 * would change which experts run); the experts' GEMMs follow `mode`. scratch: cb_moe_scratch_floats(cfg, n).
 * Counts FLOPs and the weight bytes of the router and of the experts actually run. */
void cb_moe_forward(const cb_config *cfg, const cb_moe_weights *w, cb_mode mode, int n, const float *x, float *out,
                    float *scratch);

/* Expert e's projections as views into the stacked tensors: gate_up [2 ff_e, d] (gate rows first), down [d, ff_e]. */
void cb_moe_expert(const cb_config *cfg, const cb_moe_weights *w, int e, cb_weight *gate_up, cb_weight *down);

/* Routing of one row: the k largest of logits[E] (ties: the lower index first), in descending order, and
 * their softmax. idx[k], gate[k]. */
void cb_moe_route(int E, int k, const float *logits, int *idx, float *gate);

#endif
