/* SwiGLU MLP shared by the transformer and Bamba engines. */
#include "mlp.h"

#include "../counters.h"
#include "../kernels/kernels.h"
#include "linear.h"

size_t cb_mlp_scratch_floats(const cb_config *cfg, int n) { return 2 * (size_t)n * (size_t)cfg->d_ff; }

void cb_mlp_forward(const cb_config *cfg, const cb_mlp_weights *w, cb_mode mode, int n, const float *x, float *out,
                    float *scratch) {
    int d = cfg->d_model, f = cfg->d_ff;
    float *gate = scratch, *up = scratch + (size_t)n * f;
    /* gate and up in one call: at decode one fork/join and one weight stream */
    const cb_weight *W[2] = { &w->gate, &w->up }, *B[2] = { &w->gate_b, &w->up_b };
    float *const Y[2] = { gate, up };
    const int64_t ld[2] = { f, f };
    long long t = cb_ctr_ns();
    cb_linear_multi(mode, n, x, d, 2, W, B, Y, ld);
    cb_prof_lap(&t, CB_PROF_GATE_UP);
    cb_silu_mul((int64_t)n * f, gate, up, gate);
    cb_prof_lap(&t, CB_PROF_ACT);
    cb_linear(mode, n, gate, f, &w->down, &w->down_b, out, d);
    cb_prof_lap(&t, CB_PROF_DOWN);
}
