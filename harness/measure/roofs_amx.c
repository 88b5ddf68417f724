/* AMX-BF16 peak loop: TDPBF16PS into 4 independent accumulator tiles from 2 A and 2 B tiles of non-zero
 * bf16 values loaded once, tile-resident (no memory traffic in the loop), the tile-unit twin of the FMA loop in
 * roofs_avx512.c; and the variants of roofs.h (zero operands, tile loads from L1 in the loop).
 * Call only on the amx path (cpu.c has obtained the OS permission for tile state). */
#include <immintrin.h>
#include <string.h>

#include "roofs.h"

/* Palette 1, tiles 0-7 all 16 rows x 64 bytes: what both peak loops use. */
static void load_tile_config(void) {
    struct {
        uint8_t palette, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) cfg.colsb[i] = 64, cfg.rows[i] = 16;
    _tile_loadconfig(&cfg);
}

/* The prologue of both peak loops: tiles 0-3 (accumulators) zeroed, 4-7 loaded with the operand tiles
 * ops, ops + 1 KiB, ... (each 16 rows of 64 bytes). */
static void tiles_start(const void *ops) {
    const char *o = ops;
    load_tile_config();
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    _tile_loadd(4, o, 64);
    _tile_loadd(5, o + 1024, 64);
    _tile_loadd(6, o + 2048, 64);
    _tile_loadd(7, o + 3072, 64);
}

/* kind 0: the peak loop (non-zero operands, no loads); 1-3: cb_roofs_amx_bf16_variant's kinds 0-2. */
static double tile_loop(int kind, long iters, float *sum) {
    /* 8 tiles of non-zero operands (zeros could let the unit idle; kind 1 measures that): ±(1 + j/8)·2^-10 with
     * alternating signs, so that each product is ~2^-20 and a million iterations keep the sums finite */
    static _Thread_local uint16_t ops[8][16 * 32] __attribute__((aligned(64)));
    for (int t = 0; t < 8; t++)
        for (int i = 0; i < 16 * 32; i++) {
            float v = kind == 1 ? 0.0f : (1.0f + (float)((i + t) % 8) / 8.0f) * (1.0f / 1024.0f) * (i % 3 ? 1.0f : -1.0f);
            uint32_t u;
            memcpy(&u, &v, 4);
            ops[t][i] = (uint16_t)(u >> 16); /* exact: v has 4 significant bits */
        }
    float out[256] __attribute__((aligned(64)));
    tiles_start(ops);
    for (long it = 0; it < iters; it++) {
        const int t = (int)(it & 3) * 2; /* loaded operand tiles rotate through the 8 KiB buffer */
        if (kind >= 2) {
            _tile_loadd(6, ops[t], 64);
            _tile_loadd(7, ops[t + 1], 64);
        }
        if (kind == 2) _tile_loadd(4, ops[(t + 2) & 7], 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        if (kind == 2) _tile_loadd(5, ops[(t + 3) & 7], 64);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    _tile_release();
    *sum = out[0] + out[255];
    return (double)iters * 4 * (16.0 * 16 * 32 * 2);
}

double cb_roofs_amx_bf16(long iters, float *sum) { return tile_loop(0, iters, sum); }
double cb_roofs_amx_bf16_variant(int kind, long iters, float *sum) { return tile_loop(kind + 1, iters, sum); }

/* AMX-INT8 peak loop: TDPBSSD into 4 independent int32 accumulator tiles from 2 A and 2 B tiles of non-zero
 * int8 values loaded once, tile-resident, as the bf16 loop above (one TDPBSSD = 16 · 16 · 64 multiply-adds).
 * Needs AMX-INT8 (cb_cpu()->amx_int8) on the amx path. Returns the integer ops (2 per multiply-add). */
double cb_roofs_amx_int8(long iters, int32_t *sum) {
    /* ±1..±7 with alternating signs: sums stay far from int32 overflow for a million iterations */
    static _Thread_local int8_t ops[4][16 * 64] __attribute__((aligned(64)));
    for (int t = 0; t < 4; t++)
        for (int i = 0; i < 16 * 64; i++) ops[t][i] = (int8_t)((1 + (i + t) % 7) * (i % 2 ? 1 : -1));
    int32_t out[256] __attribute__((aligned(64)));
    tiles_start(ops);
    for (long it = 0; it < iters; it++) {
        _tile_dpbssd(0, 4, 6);
        _tile_dpbssd(1, 4, 7);
        _tile_dpbssd(2, 5, 6);
        _tile_dpbssd(3, 5, 7);
    }
    _tile_stored(0, out, 64);
    _tile_release();
    *sum = out[0] + out[255];
    return (double)iters * 4 * (16.0 * 16 * 64 * 2);
}
