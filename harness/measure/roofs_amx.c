/* AMX-BF16 peak loop: TDPBF16PS into 4 independent accumulator tiles from 2 A and 2 B tiles of non-zero
 * bf16 values loaded once,
 * tile-resident (no memory traffic in the loop), the tile-unit twin of the FMA loop in roofs_avx512.c.
 * Call only on the amx path (cpu.c has obtained the OS permission for tile state). */
#include <immintrin.h>
#include <string.h>

#include "roofs.h"

double cb_roofs_amx_bf16(long iters, float *sum) {
    struct {
        uint8_t palette, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
    /* non-zero operands (zeros could let the unit idle): ±(1 + j/8)·2^-10 with alternating signs, so that each
     * product is ~2^-20 and a million iterations keep the sums finite */
    uint16_t ops[16 * 32] __attribute__((aligned(64)));
    for (int i = 0; i < 16 * 32; i++) {
        float v = (1.0f + (float)(i % 8) / 8.0f) * (1.0f / 1024.0f) * (i % 3 ? 1.0f : -1.0f);
        uint32_t u;
        memcpy(&u, &v, 4);
        ops[i] = (uint16_t)(u >> 16); /* exact: v has 4 significant bits */
    }
    float out[256] __attribute__((aligned(64)));
    _tile_loadconfig(&cfg);
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, ops, 64);
    _tile_loadd(5, ops, 64);
    _tile_loadd(6, ops, 64);
    _tile_loadd(7, ops, 64);
    for (long it = 0; it < iters; it++) {
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    _tile_release();
    *sum = out[0] + out[255];
    return (double)iters * 4 * (16.0 * 16 * 32 * 2);
}
