// aarch64 int8 document x int16 query dot products: widen to int16 (vmovl_s8) and
// multiply-accumulate into int32 (vmlal_s16), exact. One document at a time per query.
#include <arm_neon.h>

#include "kernels/int8_scan.h"

namespace embedrt {

void int8_dot_q16_neon(const int16_t* q16, int64_t nq, const int8_t* docs, int64_t dim,
                       const int64_t* ids, int64_t n, int32_t* out, int64_t ldo) {
    const int64_t ldq = int8_q16_stride(dim);
    const int64_t full = dim / 8 * 8;
    for (int64_t t = 0; t < n; ++t) {
        const int8_t* d = docs + (ids ? ids[t] : t) * dim;
        for (int64_t j = 0; j < nq; ++j) {
            const int16_t* q = q16 + j * ldq;
            int32x4_t a0 = vdupq_n_s32(0), a1 = vdupq_n_s32(0);
            int64_t kk = 0;
            for (; kk < full; kk += 8) {
                int16x8_t dv = vmovl_s8(vld1_s8(d + kk));
                int16x8_t qv = vld1q_s16(q + kk);
                a0 = vmlal_s16(a0, vget_low_s16(dv), vget_low_s16(qv));
                a1 = vmlal_s16(a1, vget_high_s16(dv), vget_high_s16(qv));
            }
            int32_t acc = vaddvq_s32(vaddq_s32(a0, a1));
            for (; kk < dim; ++kk) acc += int32_t(q[kk]) * int32_t(d[kk]);
            out[j * ldo + t] = acc;
        }
    }
}

}  // namespace embedrt
