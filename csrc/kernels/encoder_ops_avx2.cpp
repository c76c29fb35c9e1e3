// AVX2 + FMA encoder operations: a 6 x 16 register-blocked fp32 matrix product; the row
// operations come from encoder_ops_generic.inc, vectorized by the compiler for this target.
#include <immintrin.h>

#include "kernels/encoder_ops.h"

namespace embedrt {

#define ENC_FN(name) name##_avx2
#include "kernels/encoder_ops_generic.inc"

namespace {

template <int MR>
void sgemm_tile_avx2(const float* a, int64_t lda, const float* b, int64_t k, float* c, int64_t ldc,
                     int w) {
    __m256 lo[MR], hi[MR];
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
    for (int64_t kk = 0; kk < k; ++kk) {
        __m256 b0 = _mm256_loadu_ps(b + kk * 16);
        __m256 b1 = _mm256_loadu_ps(b + kk * 16 + 8);
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
            __m256 av = _mm256_broadcast_ss(a + r * lda + kk);
            lo[r] = _mm256_fmadd_ps(av, b0, lo[r]);
            hi[r] = _mm256_fmadd_ps(av, b1, hi[r]);
        }
    }
    if (w == 16) {
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
            _mm256_storeu_ps(c + r * ldc, lo[r]);
            _mm256_storeu_ps(c + r * ldc + 8, hi[r]);
        }
    } else {
        alignas(32) float buf[16];
        for (int r = 0; r < MR; ++r) {
            _mm256_store_ps(buf, lo[r]);
            _mm256_store_ps(buf + 8, hi[r]);
            for (int l = 0; l < w; ++l) c[r * ldc + l] = buf[l];
        }
    }
}

}  // namespace

void enc_sgemm_packed_avx2(const float* a, int64_t m, int64_t lda, const float* bp, int64_t n,
                           int64_t k, int64_t p0, int64_t p1, float* c, int64_t ldc) {
    const int64_t kRowBlock = 48;
    for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
        int64_t mi = m - i0 < kRowBlock ? m - i0 : kRowBlock;
        for (int64_t p = p0; p < p1; ++p) {
            int64_t j = p * 16;
            int w = static_cast<int>(n - j < 16 ? n - j : 16);
            const float* b = bp + p * 16 * k;
            int64_t i = 0;
            for (; i + 6 <= mi; i += 6)
                sgemm_tile_avx2<6>(a + (i0 + i) * lda, lda, b, k, c + (i0 + i) * ldc + j, ldc, w);
            const float* ai = a + (i0 + i) * lda;
            float* ci = c + (i0 + i) * ldc + j;
            switch (mi - i) {
                case 5: sgemm_tile_avx2<5>(ai, lda, b, k, ci, ldc, w); break;
                case 4: sgemm_tile_avx2<4>(ai, lda, b, k, ci, ldc, w); break;
                case 3: sgemm_tile_avx2<3>(ai, lda, b, k, ci, ldc, w); break;
                case 2: sgemm_tile_avx2<2>(ai, lda, b, k, ci, ldc, w); break;
                case 1: sgemm_tile_avx2<1>(ai, lda, b, k, ci, ldc, w); break;
                default: break;
            }
        }
    }
}

}  // namespace embedrt
