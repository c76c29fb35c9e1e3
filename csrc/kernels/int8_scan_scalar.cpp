// Portable int8 x int16-query dot products.
#include "kernels/int8_scan.h"

namespace embedrt {

void int8_dot_q16_scalar(const int16_t* q16, int64_t nq, const int8_t* docs, int64_t dim,
                         const int64_t* ids, int64_t n, int32_t* out, int64_t ldo) {
    const int64_t ldq = int8_q16_stride(dim);
    for (int64_t t = 0; t < n; ++t) {
        const int8_t* d = docs + (ids ? ids[t] : t) * dim;
        for (int64_t j = 0; j < nq; ++j) {
            const int16_t* q = q16 + j * ldq;
            int32_t acc = 0;
            for (int64_t kk = 0; kk < dim; ++kk) acc += int32_t(q[kk]) * int32_t(d[kk]);
            out[j * ldo + t] = acc;
        }
    }
}

}  // namespace embedrt
