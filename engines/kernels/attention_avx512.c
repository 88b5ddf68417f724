/* AVX-512 flash-attention block kernel (contract in attention.h). Per block of 64 keys: K tiles and V
 * rows are widened to fp32 once (L1/L2-resident buffers, reused by all R query rows), S = Q·Kᵀ with a
 * 4-row × 4-tile register block (16 accumulators, one broadcast of q per row and one K-tile load per
 * tile per head dim), online-softmax update with a vector exp, then O = O·α + P·V with 4 rows × 4 vectors. */
#include <immintrin.h>
#include <math.h>

#include "attention.h"

/* exp(x) for x <= 0 (inputs are s - max); |rel err| ~ 2e-7. -inf and very negative -> 0. */
static inline __m512 exp512(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.0f);
    __mmask16 tiny = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    x = _mm512_max_ps(x, lo);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
    p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
    return _mm512_maskz_scalef_ps((__mmask16)~tiny, p, n);
}

static inline __m512 widen16(const void *p, cb_dtype t, __mmask16 mk) {
    if (t == CB_F32) return _mm512_maskz_loadu_ps(mk, p);
    __m256i h = _mm256_maskz_loadu_epi16(mk, p);
    if (t == CB_BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

void cb_attn_flash_avx512(int R, const float *Q, const int64_t *qpos, const cb_kv_view *kv, int64_t k0,
                          int64_t k1, float *m, float *l, float *O) {
    const int hd = kv->hd, nv = hd / 16;
    const size_t es = cb_dtype_size(kv->dtype);
    float Kf[4 * CB_FLASH_MAX_HD * 16] __attribute__((aligned(64)));   /* 4 tiles [hd][16] */
    float Vf[CB_FLASH_BK * CB_FLASH_MAX_HD] __attribute__((aligned(64))); /* [64][hd] */
    float S[CB_FLASH_MAX_ROWS * CB_FLASH_BK] __attribute__((aligned(64)));
    float alpha[CB_FLASH_MAX_ROWS + 4];

    for (int64_t kb = k0; kb < k1; kb += CB_FLASH_BK) {
        const int nb = (int)CB_MIN((int64_t)CB_FLASH_BK, k1 - kb), nt = (nb + 15) / 16;
        /* rows that see at least one key of this block */
        int any = 0;
        for (int r = 0; r < R; r++) any |= qpos[r] >= kb;
        if (!any) continue;
        /* widen K tiles (and pad narrow tiles to 16) and V rows */
        for (int t = 0; t < nt; t++) {
            int64_t p0 = kb + 16 * t;
            int64_t w = CB_MIN((int64_t)16, kv->cap - p0);
            const char *src = (const char *)kv->k + (size_t)cb_kv_k_offset(p0, 0, hd, kv->cap) * es;
            __mmask16 mk = (__mmask16)((1u << w) - 1u);
            for (int d = 0; d < hd; d++)
                _mm512_store_ps(Kf + (t * hd + d) * 16, widen16(src + (size_t)d * w * es, kv->dtype, mk));
        }
        for (int t = nt; t < 4; t++) /* unused tiles of a short block: zeros (their scores are masked) */
            for (int d = 0; d < hd; d++) _mm512_store_ps(Kf + (t * hd + d) * 16, _mm512_setzero_ps());
        {
            const char *src = (const char *)kv->v + (size_t)kb * hd * es;
            for (int j = 0; j < nb; j++)
                for (int v = 0; v < nv; v++)
                    _mm512_store_ps(Vf + j * hd + 16 * v, widen16(src + ((size_t)j * hd + 16 * v) * es, kv->dtype, 0xffff));
        }
        /* S = Q·Kᵀ: 4 rows x 4 tiles of 16 keys = 16 accumulators */
        for (int r0 = 0; r0 < R; r0 += 4) {
            const float *q0 = Q + (int64_t)CB_MIN(r0 + 0, R - 1) * hd, *q1 = Q + (int64_t)CB_MIN(r0 + 1, R - 1) * hd;
            const float *q2 = Q + (int64_t)CB_MIN(r0 + 2, R - 1) * hd, *q3 = Q + (int64_t)CB_MIN(r0 + 3, R - 1) * hd;
            __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00, a10 = a00, a11 = a00, a12 = a00, a13 = a00;
            __m512 a20 = a00, a21 = a00, a22 = a00, a23 = a00, a30 = a00, a31 = a00, a32 = a00, a33 = a00;
            const float *kp = Kf;
            for (int d = 0; d < hd; d++, kp += 16) {
                __m512 k0 = _mm512_load_ps(kp), k1 = _mm512_load_ps(kp + 16 * hd);
                __m512 k2 = _mm512_load_ps(kp + 32 * hd), k3 = _mm512_load_ps(kp + 48 * hd);
#define QK_ROW(i)                                                                                                  \
    {                                                                                                              \
        __m512 qb = _mm512_set1_ps(q##i[d]);                                                                       \
        a##i##0 = _mm512_fmadd_ps(qb, k0, a##i##0), a##i##1 = _mm512_fmadd_ps(qb, k1, a##i##1);                    \
        a##i##2 = _mm512_fmadd_ps(qb, k2, a##i##2), a##i##3 = _mm512_fmadd_ps(qb, k3, a##i##3);                    \
    }
                QK_ROW(0) QK_ROW(1) QK_ROW(2) QK_ROW(3)
#undef QK_ROW
            }
            float *s0 = S + r0 * CB_FLASH_BK;
#define ST_ROW(i)                                                                                                  \
    if (r0 + i < R) {                                                                                              \
        _mm512_store_ps(s0 + i * CB_FLASH_BK, a##i##0), _mm512_store_ps(s0 + i * CB_FLASH_BK + 16, a##i##1);      \
        _mm512_store_ps(s0 + i * CB_FLASH_BK + 32, a##i##2), _mm512_store_ps(s0 + i * CB_FLASH_BK + 48, a##i##3);  \
    }
            ST_ROW(0) ST_ROW(1) ST_ROW(2) ST_ROW(3)
#undef ST_ROW
        }
        /* online softmax per row; P overwrites S; masked keys get p = 0 */
        for (int r = 0; r < R; r++) {
            int64_t vis = CB_MIN((int64_t)nb, qpos[r] - kb + 1);
            float *s = S + r * CB_FLASH_BK;
            if (vis <= 0) {
                alpha[r] = 1.0f;
                                for (int t = 0; t < 4; t++) _mm512_store_ps(s + 16 * t, _mm512_setzero_ps());
                continue;
            }
            __mmask16 mk[4];
            __m512 mx = _mm512_set1_ps(-INFINITY);
                        for (int t = 0; t < 4; t++) {
                int64_t c = CB_MAX((int64_t)0, CB_MIN((int64_t)16, vis - 16 * t));
                mk[t] = (__mmask16)((1u << c) - 1u);
                mx = _mm512_mask_max_ps(mx, mk[t], mx, _mm512_load_ps(s + 16 * t));
            }
            float m_new = fmaxf(m[r], _mm512_reduce_max_ps(mx));
            float a = expf(m[r] - m_new);
            __m512 mb = _mm512_set1_ps(m_new), sum = _mm512_setzero_ps();
                        for (int t = 0; t < 4; t++) {
                __m512 p = _mm512_maskz_mov_ps(mk[t], exp512(_mm512_sub_ps(_mm512_load_ps(s + 16 * t), mb)));
                sum = _mm512_add_ps(sum, p);
                _mm512_store_ps(s + 16 * t, p);
            }
            l[r] = l[r] * a + _mm512_reduce_add_ps(sum);
            m[r] = m_new;
            alpha[r] = a;
        }
        /* O = O·α + P·V */
        for (int r0 = 0; r0 < R; r0 += 4) {
            int rr[4];
                        for (int i = 0; i < 4; i++) rr[i] = CB_MIN(r0 + i, R - 1);
            int v = 0;
            const float *p0 = S + rr[0] * CB_FLASH_BK, *p1 = S + rr[1] * CB_FLASH_BK;
            const float *p2 = S + rr[2] * CB_FLASH_BK, *p3 = S + rr[3] * CB_FLASH_BK;
            for (; v + 4 <= nv; v += 4) {
#define LD_ROW(i)                                                                                                  \
    __m512 b##i##0, b##i##1, b##i##2, b##i##3;                                                                     \
    {                                                                                                              \
        __m512 ab = _mm512_set1_ps(alpha[rr[i]]);                                                                  \
        const float *o = O + (int64_t)rr[i] * hd + 16 * v;                                                         \
        b##i##0 = _mm512_mul_ps(_mm512_loadu_ps(o), ab), b##i##1 = _mm512_mul_ps(_mm512_loadu_ps(o + 16), ab);     \
        b##i##2 = _mm512_mul_ps(_mm512_loadu_ps(o + 32), ab), b##i##3 = _mm512_mul_ps(_mm512_loadu_ps(o + 48), ab); \
    }
                LD_ROW(0) LD_ROW(1) LD_ROW(2) LD_ROW(3)
#undef LD_ROW
                const float *vr = Vf + 16 * v;
                for (int j = 0; j < nb; j++, vr += hd) {
                    __m512 v0 = _mm512_load_ps(vr), v1 = _mm512_load_ps(vr + 16);
                    __m512 v2 = _mm512_load_ps(vr + 32), v3 = _mm512_load_ps(vr + 48);
#define PV_ROW(i)                                                                                                  \
    {                                                                                                              \
        __m512 pb = _mm512_set1_ps(p##i[j]);                                                                       \
        b##i##0 = _mm512_fmadd_ps(pb, v0, b##i##0), b##i##1 = _mm512_fmadd_ps(pb, v1, b##i##1);                    \
        b##i##2 = _mm512_fmadd_ps(pb, v2, b##i##2), b##i##3 = _mm512_fmadd_ps(pb, v3, b##i##3);                    \
    }
                    PV_ROW(0) PV_ROW(1) PV_ROW(2) PV_ROW(3)
#undef PV_ROW
                }
#define ST_ROW(i)                                                                                                  \
    if (r0 + i < R) {                                                                                              \
        float *o = O + (int64_t)(r0 + i) * hd + 16 * v;                                                            \
        _mm512_storeu_ps(o, b##i##0), _mm512_storeu_ps(o + 16, b##i##1);                                          \
        _mm512_storeu_ps(o + 32, b##i##2), _mm512_storeu_ps(o + 48, b##i##3);                                      \
    }
                ST_ROW(0) ST_ROW(1) ST_ROW(2) ST_ROW(3)
#undef ST_ROW
            }
            for (; v < nv; v++) {
                __m512 acc[4];
                                for (int i = 0; i < 4; i++)
                    acc[i] = _mm512_mul_ps(_mm512_loadu_ps(O + (int64_t)rr[i] * hd + 16 * v), _mm512_set1_ps(alpha[rr[i]]));
                for (int j = 0; j < nb; j++) {
                    __m512 vj = _mm512_load_ps(Vf + j * hd + 16 * v);
                                        for (int i = 0; i < 4; i++)
                        acc[i] = _mm512_fmadd_ps(_mm512_set1_ps(S[rr[i] * CB_FLASH_BK + j]), vj, acc[i]);
                }
                                for (int i = 0; i < 4 && r0 + i < R; i++) _mm512_storeu_ps(O + (int64_t)(r0 + i) * hd + 16 * v, acc[i]);
            }
        }
    }
}
