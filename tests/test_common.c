#include <criterion/criterion.h>
#include <math.h>

#include "../engines/common.h"

Test(common, bf16_round_trip_and_rounding) {
    cr_assert_eq(cb_bf16_to_f32(cb_f32_to_bf16(1.0f)), 1.0f);
    /* 1 + 2^-8 is halfway between two bf16 values: round to even (1.0) */
    cr_assert_eq(cb_bf16_to_f32(cb_f32_to_bf16(1.0f + 0x1p-8f)), 1.0f);
    cr_assert_eq(cb_bf16_to_f32(cb_f32_to_bf16(1.0f + 0x1p-7f)), 1.0f + 0x1p-7f);
    cr_assert(isnan(cb_bf16_to_f32(cb_f32_to_bf16(NAN))));
}

Test(common, f16_round_trip) {
    const float vals[] = { 0.0f, 1.0f, -2.5f, 65504.0f, 0x1p-24f, 0.333251953125f };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++)
        cr_assert_eq(cb_f16_to_f32(cb_f32_to_f16(vals[i])), vals[i], "value %g", (double)vals[i]);
    cr_assert(isinf(cb_f16_to_f32(cb_f32_to_f16(1e6f))));
}

Test(common, dtype_parse) {
    cb_dtype t;
    cr_assert_eq(cb_dtype_parse("bfloat16", &t), 0);
    cr_assert_eq(t, CB_BF16);
    cr_assert_eq(cb_dtype_parse("float128", &t), -1);
}
