/* Relative cost model for the sweep's time estimates (see estimate.h). */
#include "estimate.h"

static double matmul_flops_per_token(const cb_config *c) {
    double d = c->d_model, f = 0;
    double attn = 2.0 * d * (double)c->head_dim * (2.0 * c->n_heads + 2.0 * c->n_kv_heads);
    double mamba = c->n_mamba_layers ? 2.0 * d * ((double)c->m_in_proj_rows + (double)c->m_d_inner) : 0;
    double mlp = c->d_ff > 0 ? 6.0 * d * (double)c->d_ff : 0;
    f += c->n_attn_layers * attn + c->n_mamba_layers * mamba + (double)c->n_layers * mlp;
    return f;
}

double cb_est_flops(const cb_config *c, int64_t tokens, int64_t depth, int64_t logits_rows) {
    double n = (double)tokens;
    double per_position = 4.0 * c->n_attn_layers * (double)c->n_heads * (double)c->head_dim; /* QKᵀ and PV */
    double attention = per_position * n * ((double)depth + n / 2);
    double lm_head = 2.0 * (double)c->d_model * (double)c->vocab * (double)logits_rows;
    return n * matmul_flops_per_token(c) + attention + lm_head;
}

double cb_est_seconds(double prev_compute_s, double prev_compute_work, double prev_fill_s, double prev_fill_work,
                      double prev_other_s, int prev_threads, double compute_work, double fill_work, int threads) {
    double thread_ratio = threads > 0 && prev_threads > 0 ? (double)prev_threads / (double)threads : 1.0;
    double est = prev_other_s;
    if (prev_compute_work > 0) est += prev_compute_s * compute_work / prev_compute_work * thread_ratio;
    if (prev_fill_work > 0) est += prev_fill_s * fill_work / prev_fill_work * thread_ratio;
    return est;
}
