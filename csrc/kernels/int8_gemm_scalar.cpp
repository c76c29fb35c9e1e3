// Portable int8 GEMM: plain loops over the packed B panels, exact int32 dot products.
#include <cmath>

#include "kernels/int8_gemm.h"

namespace embedrt {

void int8_gemm_scalar(const Int8GemmArgs& g, int64_t j0, int64_t j1) {
    const int64_t kp = g.kp;
    for (int64_t i = 0; i < g.m; ++i) {
        const int8_t* as8 = static_cast<const int8_t*>(g.a) + i * g.lda;
        const uint8_t* au8 = static_cast<const uint8_t*>(g.a) + i * g.lda;
        for (int64_t j = j0; j < j1; ++j) {
            const int8_t* panel = g.b + (j / 16) * 16 * kp + (j % 16) * 4;
            int32_t acc = 0;
            if (g.a_u8) {
                for (int64_t kk = 0; kk < g.k; ++kk)
                    acc += (int32_t(au8[kk]) - 128) * int32_t(panel[(kk / 4) * 64 + (kk % 4)]);
            } else {
                for (int64_t kk = 0; kk < g.k; ++kk)
                    acc += int32_t(as8[kk]) * int32_t(panel[(kk / 4) * 64 + (kk % 4)]);
            }
            if (g.c32) {
                g.c32[i * g.ldc + j] = acc;
            } else {
                float s = (g.a_scale ? g.a_scale[i] : 1.0f) * (g.b_scale ? g.b_scale[j] : 1.0f);
                float d = float(acc);
                g.cf[i * g.ldc + j] = g.bias ? std::fma(s, d, g.bias[j]) : s * d;
            }
        }
    }
}

}  // namespace embedrt
