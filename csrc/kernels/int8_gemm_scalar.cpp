#include "kernels/int8_gemm.h"

namespace embedrt {

void int8_gemm_packed_scalar(const int8_t* a, int64_t m, int64_t lda, const Int8Packed& b,
                             int64_t j0, int64_t j1, int32_t* c, int64_t ldc) {
    for (int64_t i = 0; i < m; ++i) {
        const int8_t* ar = a + i * lda;
        for (int64_t j = j0; j < j1; ++j) {
            const int8_t* panel = b.data.data() + (j / 16) * 16 * b.kp;
            int64_t lane = j % 16;
            int32_t acc = 0;
            for (int64_t kk = 0; kk < b.k; ++kk)
                acc += int32_t(ar[kk]) * int32_t(panel[(kk / 4) * 64 + lane * 4 + (kk % 4)]);
            c[i * ldc + j] = acc;
        }
    }
}

}  // namespace embedrt
