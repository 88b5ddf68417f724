/* The online-softmax step of the AVX-512 flash kernels (attention_avx512.c, attention8_avx512.c), shared so
 * both caches' kernels round alike (and attention_amx.c), and their prefetch target. Include only from *_avx512.c and *_amx.c files. */
#ifndef CB_FLASH_SOFTMAX_AVX512_H
#define CB_FLASH_SOFTMAX_AVX512_H

#include <immintrin.h>
#include <math.h>

#include "attention.h"
#include "vexp_avx512.h"

/* A software prefetch of the decode loops into L2 (l2) or L1, as cb_kernels_prefetch_l2() chose (kernels.h);
 * l2 is a constant in the hot loops' instantiations, as the hint operand must be after inlining. */
#define PF_TO(p, l2) ((l2) ? _mm_prefetch((const char *)(p), _MM_HINT_T1) : _mm_prefetch((const char *)(p), _MM_HINT_T0))

/* Online-softmax update of every row; P overwrites S; masked keys get p = 0; alpha[r] = rescale of row r.
 * The running sum stays a 16-lane vector per row (lsum) for the whole call: no horizontal add per block. */
static inline void softmax_block(int R, const int64_t *qpos, int64_t kb, int nb, float *S, float *m, __m512 *lsum,
                          float *alpha) {
    const __m512 ninf = _mm512_set1_ps(-INFINITY);
    for (int r = 0; r < R; r++) {
        int64_t vis = CB_MIN((int64_t)nb, qpos[r] - kb + 1);
        float *s = S + r * CB_FLASH_BK;
        if (vis <= 0) {
            alpha[r] = 1.0f;
            for (int t = 0; t < 4; t++) _mm512_store_ps(s + 16 * t, _mm512_setzero_ps());
            continue;
        }
        __m512 s0 = _mm512_load_ps(s), s1 = _mm512_load_ps(s + 16), s2 = _mm512_load_ps(s + 32), s3 = _mm512_load_ps(s + 48);
        if (vis < CB_FLASH_BK) { /* masked keys -> -inf: they drop out of the max and exp gives 0 */
            uint64_t keep = (1ull << vis) - 1ull;
            s0 = _mm512_mask_mov_ps(ninf, (__mmask16)keep, s0), s1 = _mm512_mask_mov_ps(ninf, (__mmask16)(keep >> 16), s1);
            s2 = _mm512_mask_mov_ps(ninf, (__mmask16)(keep >> 32), s2), s3 = _mm512_mask_mov_ps(ninf, (__mmask16)(keep >> 48), s3);
        }
        float m_new = fmaxf(m[r], _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(s0, s1), _mm512_max_ps(s2, s3))));
        __m512 mb = _mm512_set1_ps(m_new);
        __m512 av = cb_exp512(_mm512_sub_ps(_mm512_set1_ps(m[r]), mb));
        s0 = cb_exp512(_mm512_sub_ps(s0, mb)), s1 = cb_exp512(_mm512_sub_ps(s1, mb));
        s2 = cb_exp512(_mm512_sub_ps(s2, mb)), s3 = cb_exp512(_mm512_sub_ps(s3, mb));
        _mm512_store_ps(s, s0), _mm512_store_ps(s + 16, s1), _mm512_store_ps(s + 32, s2), _mm512_store_ps(s + 48, s3);
        lsum[r] = _mm512_fmadd_ps(lsum[r], av, _mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
        m[r] = m_new;
        alpha[r] = _mm512_cvtss_f32(av);
    }
}

#endif
