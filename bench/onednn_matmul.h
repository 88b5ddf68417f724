/* oneDNN's matmul as the comparison anchor of the GEMM sections (bench_tiles.c: bf16, bench_amx8.c: s8):
 * Y[M, N] = X[M, K] · Wᵀ with our [N, K] row-major weights (oneDNN tag ba), reordered once to the layout
 * the primitive asks for, then executed on caller-owned X and Y buffers. */
#ifndef CB_BENCH_ONEDNN_MATMUL_H
#define CB_BENCH_ONEDNN_MATMUL_H

#include <dnnl.h>

typedef struct {
    dnnl_engine_t eng;
    dnnl_stream_t strm;
    dnnl_primitive_t mm;
    dnnl_memory_t src, wei, dst;
} cb_onednn_matmul;

/* 0, or -1 with the failing call printed on stderr after `who` (the section's name). src and dst stay the
 * caller's (they must outlive the primitive); w is only read here. */
int cb_onednn_matmul_make(cb_onednn_matmul *o, const char *who, int M, int N, int K, dnnl_data_type_t src_t,
                          dnnl_data_type_t wei_t, dnnl_data_type_t dst_t, const void *w, void *src, void *dst);
void cb_onednn_matmul_run(cb_onednn_matmul *o);
void cb_onednn_matmul_free(cb_onednn_matmul *o);

#endif
