/* Portable flash-attention block kernel and the dispatcher (see attention.h for the contract). */
#include "attention.h"

#include <math.h>

#include "kernels.h"
#include "kv8.h"

/* element i of a K or V array; 8-bit codes times their position's scale sc[pos] */
static inline float kv_elem(const void *p, cb_dtype t, int64_t i, const float *sc, int64_t pos) {
    switch (t) {
    case CB_F8_E4M3:
    case CB_I8: return sc[pos] * cb_kv8_code_value(((const uint8_t *)p)[i], t);
    case CB_BF16: return cb_bf16_to_f32(((const uint16_t *)p)[i]);
    case CB_F16: return cb_f16_to_f32(((const uint16_t *)p)[i]);
    default: return ((const float *)p)[i];
    }
}

void cb_attn_flash_ref(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0, int64_t k1,
                       float *m, float *l, float *O) {
    const int hd = kv->hd;
    float s[CB_FLASH_BK];
    for (int64_t kb = k0; kb < k1; kb += CB_FLASH_BK) {
        int nb = (int)CB_MIN((int64_t)CB_FLASH_BK, k1 - kb);
        for (int r = 0; r < R; r++) {
            int64_t vis = CB_MIN((int64_t)nb, qpos[r] - kb + 1);
            if (vis <= 0) continue;
            const float *q = Q + (int64_t)r * hd;
            float mx = -INFINITY;
            for (int j = 0; j < vis; j++) {
                float acc = 0.0f;
                for (int d = 0; d < hd; d++) acc += q[d] * kv_elem(kv->k, kv->dtype, cb_kv_k_offset(kb + j, d, hd, kv->cap, kv->dtype), kv->ks, kb + j);
                s[j] = acc;
                mx = fmaxf(mx, acc);
            }
            float m_new = fmaxf(m[r], mx);
            float alpha = expf(m[r] - m_new);
            float sum = 0.0f;
            for (int j = 0; j < vis; j++) sum += (s[j] = expf(s[j] - m_new));
            l[r] = l[r] * alpha + sum;
            m[r] = m_new;
            float *o = O + (int64_t)r * hd;
            for (int d = 0; d < hd; d++) {
                float acc = o[d] * alpha;
                for (int j = 0; j < vis; j++) acc += s[j] * kv_elem(kv->v, kv->dtype, cb_kv_v_offset(kb + j, d, hd, kv->cap, kv->dtype), kv->vs, kb + j);
                o[d] = acc;
            }
        }
    }
}

/* Subnormals flushed for the call (kernels.h, cb_subnormals_flush_begin): a peaked score row's exp(s − max)
 * underflows, and each FMA on the subnormals it leaves takes a microcode assist on Intel cores. */
static void flash(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0, int64_t k1,
                  float *m, float *l, float *O, bool fast) {
    const unsigned csr = cb_subnormals_flush_begin();
    if (cb_kernels_path() == CB_PATH_AMX && kv->dtype == CB_BF16 && kv->hd % 32 == 0 && R >= CB_ATTN_AMX_MIN_ROWS)
        cb_attn_flash_amx(R, Q, qpos, kv, k0, k1, m, l, O, fast);
    else if (cb_kernels_path() >= CB_PATH_AVX512 && kv->hd % 16 == 0 && cb_kv_is_q8(kv->dtype))
        cb_attn_flash_q8_avx512(R, Q, qpos, kv, k0, k1, m, l, O, fast);
    else if (cb_kernels_path() >= CB_PATH_AVX512 && kv->hd % 16 == 0)
        cb_attn_flash_avx512(R, Q, qpos, kv, k0, k1, m, l, O);
    else if (cb_kernels_path() >= CB_PATH_AVX2 && kv->hd % 8 == 0)
        cb_attn_flash_avx2(R, Q, qpos, kv, k0, k1, m, l, O, fast);
    else
        cb_attn_flash_ref(R, Q, qpos, kv, k0, k1, m, l, O);
    cb_subnormals_flush_end(csr);
}

void cb_attn_flash(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0, int64_t k1,
                   float *m, float *l, float *O) {
    flash(R, Q, qpos, kv, k0, k1, m, l, O, false);
}

void cb_attn_flash_fast(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0, int64_t k1,
                        float *m, float *l, float *O) {
    flash(R, Q, qpos, kv, k0, k1, m, l, O, true);
}
