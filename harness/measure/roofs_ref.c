/* Portable twin of roofs_avx512.c: the same 12 chains × 16 lanes in plain C (multiply then add: baseline
 * x86-64 has no FMA instruction), for machines without AVX-512. */
#include "roofs.h"

double cb_roofs_fma_ref(long iters, float *sum) {
    static const float init[12] = { 1.000f, 1.001f, 1.002f, 1.003f, 1.004f, 1.005f,
                                    1.006f, 1.007f, 1.008f, 1.009f, 1.010f, 1.011f };
    float a[12][16];
    for (int j = 0; j < 12; j++)
        for (int l = 0; l < 16; l++) a[j][l] = init[j];
    const float m = 0.999999f, c = 1e-7f;
    for (long it = 0; it < iters; it++)
        for (int j = 0; j < 12; j++)
            for (int l = 0; l < 16; l++) a[j][l] = a[j][l] * m + c;
    float s = 0;
    for (int j = 0; j < 12; j++)
        for (int l = 0; l < 16; l++) s += a[j][l];
    *sum = s;
    return (double)iters * 12 * 16 * 2;
}
