/* 8-bit KV cache rows (contract in kv8.h). */
#include "kv8.h"

#include <math.h>

float cb_kv8_quantize_row(const float *x, int n, cb_dtype t, uint8_t *codes) {
    float amax = 0.0f;
    for (int i = 0; i < n; i++) amax = fmaxf(amax, fabsf(x[i]));
    const float qmax = t == CB_F8_E4M3 ? CB_FP8_MAX : 127.0f;
    const float scale = amax / qmax;
    if (!(scale > 0.0f)) { /* zeros (or NaNs: fmaxf drops them) */
        for (int i = 0; i < n; i++) codes[i] = 0;
        return 0.0f;
    }
    const float inv = 1.0f / scale;
    if (t == CB_F8_E4M3)
        for (int i = 0; i < n; i++) codes[i] = cb_f32_to_fp8(x[i] * inv);
    else
        for (int i = 0; i < n; i++) codes[i] = (uint8_t)cb_f32_to_i8(x[i] * inv);
    return scale;
}

void cb_kv8_round_row(float *x, int n, cb_dtype t) {
    uint8_t codes[n > 0 ? n : 1];
    float s = cb_kv8_quantize_row(x, n, t, codes);
    for (int i = 0; i < n; i++) x[i] = s * cb_kv8_code_value(codes[i], t);
}
