/* Packing bf16 and int8 weights into the AMX tile layout (contract in tiles.h). */
#include "tiles.h"

void cb_tiles_pack(const cb_weight *W, uint32_t *dst) {
    const int64_t N = W->rows, K = W->cols, S = cb_tiles_ksteps(K), G = (N + CB_TILE_ROWS - 1) / CB_TILE_ROWS;
    const uint16_t *w = W->data;
#pragma omp parallel for schedule(static) if (N * K > (1 << 16))
    for (int64_t g = 0; g < G; g++)
        for (int64_t s = 0; s < S; s++) {
            uint32_t *t = dst + ((size_t)g * (size_t)S + (size_t)s) * CB_TILE_U32;
            for (int c = 0; c < 16; c++) /* one weight row's 32 k at a time: contiguous reads */
                for (int r = 0; r < 16; r++) {
                    int64_t n = g * CB_TILE_ROWS + c, k = s * CB_TILE_K + 2 * r;
                    uint32_t lo = n < N && k < K ? w[n * K + k] : 0, hi = n < N && k + 1 < K ? w[n * K + k + 1] : 0;
                    t[r * 16 + c] = lo | hi << 16;
                }
        }
}

void cb_tiles_pack_i8(const cb_weight *W, uint32_t *dst) {
    const int64_t N = W->rows, K = W->cols, S = cb_tiles_i8_ksteps(K), G = (N + CB_TILE_ROWS - 1) / CB_TILE_ROWS;
    const uint8_t *w = W->data;
#pragma omp parallel for schedule(static) if (N * K > (1 << 17))
    for (int64_t g = 0; g < G; g++)
        for (int64_t s = 0; s < S; s++) {
            uint32_t *t = dst + ((size_t)g * (size_t)S + (size_t)s) * CB_TILE_U32;
            for (int c = 0; c < 16; c++)
                for (int r = 0; r < 16; r++) {
                    const int64_t n = g * CB_TILE_ROWS + c, k = s * CB_TILE_K_I8 + 4 * r;
                    uint32_t v = 0;
                    for (int i = 0; i < 4; i++)
                        if (n < N && k + i < K) v |= (uint32_t)w[n * K + k + i] << (8 * i);
                    t[r * 16 + c] = v;
                }
        }
}
