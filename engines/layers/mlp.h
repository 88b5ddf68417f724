/* SwiGLU MLP: down(silu(gate(x)) * up(x)). Shared by the transformer and Bamba engines. */
#ifndef CB_MLP_H
#define CB_MLP_H

#include "../engine.h"

/* x, out: [n, d_model]; scratch: 2 * n * d_ff floats. out may not alias x. */
void cb_mlp_forward(const cb_config *cfg, const cb_mlp_weights *w, cb_mode mode, int n, const float *x, float *out,
                    float *scratch);
size_t cb_mlp_scratch_floats(const cb_config *cfg, int n);

#endif
