/* oneDNN matmul anchor (onednn_matmul.h). */
#include "onednn_matmul.h"

#include <stdio.h>
#include <string.h>

#define DN(call)                                                                                                       \
    do {                                                                                                               \
        dnnl_status_t st_ = (call);                                                                                    \
        if (st_ != dnnl_success) {                                                                                     \
            fprintf(stderr, "%s bench: oneDNN %s failed (%d)\n", who, #call, (int)st_);                              \
            return -1;                                                                                                 \
        }                                                                                                              \
    } while (0)

int cb_onednn_matmul_make(cb_onednn_matmul *o, const char *who, int M, int N, int K, dnnl_data_type_t src_t,
                          dnnl_data_type_t wei_t, dnnl_data_type_t dst_t, const void *w, void *src, void *dst) {
    memset(o, 0, sizeof *o);
    DN(dnnl_engine_create(&o->eng, dnnl_cpu, 0));
    DN(dnnl_stream_create(&o->strm, o->eng, dnnl_stream_default_flags));
    dnnl_memory_desc_t smd, wmd_user, wmd_any, dmd;
    DN(dnnl_memory_desc_init_by_tag(&smd, 2, (dnnl_dims_t){ M, K }, src_t, dnnl_ab));
    DN(dnnl_memory_desc_init_by_tag(&wmd_user, 2, (dnnl_dims_t){ K, N }, wei_t, dnnl_ba));
    DN(dnnl_memory_desc_init_by_tag(&wmd_any, 2, (dnnl_dims_t){ K, N }, wei_t, dnnl_format_tag_any));
    DN(dnnl_memory_desc_init_by_tag(&dmd, 2, (dnnl_dims_t){ M, N }, dst_t, dnnl_ab));
    dnnl_matmul_desc_t md;
    DN(dnnl_matmul_desc_init(&md, &smd, &wmd_any, NULL, &dmd));
    dnnl_primitive_desc_t pd;
    DN(dnnl_primitive_desc_create(&pd, &md, NULL, o->eng, NULL));
    const dnnl_memory_desc_t *wq = dnnl_primitive_desc_query_md(pd, dnnl_query_weights_md, 0);
    dnnl_memory_t wu;
    DN(dnnl_memory_create(&wu, &wmd_user, o->eng, (void *)w));
    DN(dnnl_memory_create(&o->wei, wq, o->eng, DNNL_MEMORY_ALLOCATE));
    dnnl_primitive_desc_t rpd;
    DN(dnnl_reorder_primitive_desc_create(&rpd, &wmd_user, o->eng, wq, o->eng, NULL));
    dnnl_primitive_t r;
    DN(dnnl_primitive_create(&r, rpd));
    dnnl_exec_arg_t ra[2] = { { DNNL_ARG_FROM, wu }, { DNNL_ARG_TO, o->wei } };
    DN(dnnl_primitive_execute(r, o->strm, 2, ra));
    DN(dnnl_stream_wait(o->strm));
    dnnl_primitive_destroy(r);
    dnnl_primitive_desc_destroy(rpd);
    dnnl_memory_destroy(wu);
    DN(dnnl_memory_create(&o->src, &smd, o->eng, src));
    DN(dnnl_memory_create(&o->dst, &dmd, o->eng, dst));
    DN(dnnl_primitive_create(&o->mm, pd));
    dnnl_primitive_desc_destroy(pd);
    return 0;
}

void cb_onednn_matmul_run(cb_onednn_matmul *o) {
    dnnl_exec_arg_t args[3] = { { DNNL_ARG_SRC, o->src }, { DNNL_ARG_WEIGHTS, o->wei }, { DNNL_ARG_DST, o->dst } };
    dnnl_primitive_execute(o->mm, o->strm, 3, args);
    dnnl_stream_wait(o->strm);
}

void cb_onednn_matmul_free(cb_onednn_matmul *o) {
    dnnl_primitive_destroy(o->mm);
    dnnl_memory_destroy(o->src);
    dnnl_memory_destroy(o->wei);
    dnnl_memory_destroy(o->dst);
    dnnl_stream_destroy(o->strm);
    dnnl_engine_destroy(o->eng);
}
