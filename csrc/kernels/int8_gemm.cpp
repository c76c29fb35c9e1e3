#include "kernels/int8_gemm.h"

#include <algorithm>

#include "dispatch.h"
#include "parallel.h"

namespace embedrt {

void int8_pack(const int8_t* b, int64_t n, int64_t k, int64_t ldb, Int8Packed* out) {
    out->n = n;
    out->k = k;
    out->kp = (k + 3) / 4 * 4;
    out->np = (n + 15) / 16 * 16;
    out->data.assign(static_cast<size_t>(out->np * out->kp), 0);
    out->comp.assign(static_cast<size_t>(out->np), 0);
    for (int64_t j = 0; j < n; ++j) {
        const int8_t* row = b + j * ldb;
        int8_t* panel = out->data.data() + (j / 16) * 16 * out->kp;
        int64_t lane = j % 16;
        int32_t sum = 0;
        for (int64_t kk = 0; kk < k; ++kk) {
            panel[(kk / 4) * 64 + lane * 4 + (kk % 4)] = row[kk];
            sum += row[kk];
        }
        out->comp[j] = 128 * sum;
    }
}

void int8_gemm_packed(const int8_t* a, int64_t m, int64_t lda, const Int8Packed& b, int64_t j0,
                      int64_t j1, int32_t* c, int64_t ldc) {
    if (m <= 0 || j1 <= j0) return;
    switch (active_isa()) {
        default:
            int8_gemm_packed_scalar(a, m, lda, b, j0, j1, c, ldc);
    }
}

void int8_gemm_packed_mt(const int8_t* a, int64_t m, int64_t lda, const Int8Packed& b, int32_t* c,
                         int64_t ldc) {
    if (m <= 0 || b.n <= 0) return;
    // Split columns in whole panels; each task covers all rows.
    int64_t panels = (b.n + 15) / 16;
    parallel_for(panels, 1, [&](int64_t p0, int64_t p1) {
        int64_t j0 = p0 * 16, j1 = std::min(b.n, p1 * 16);
        int8_gemm_packed(a, m, lda, b, j0, j1, c, ldc);
    });
}

}  // namespace embedrt
