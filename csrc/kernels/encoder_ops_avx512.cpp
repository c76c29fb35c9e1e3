// AVX-512 encoder operations: an 8 x 32 register-blocked fp32 matrix product; the row
// operations come from encoder_ops_generic.inc, vectorized by the compiler for this target.
#include <immintrin.h>

#include "kernels/encoder_ops.h"

namespace embedrt {

#define ENC_FN(name) name##_avx512
#include "kernels/encoder_ops_generic.inc"

namespace {

template <int MR, int NP>
void sgemm_tile_avx512(const float* a, int64_t lda, const float* b0, const float* b1, int64_t k,
                       float* c, int64_t ldc, int w0, int w1) {
    __m512 acc[MR][NP];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
        for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_ps();
    for (int64_t kk = 0; kk < k; ++kk) {
        __m512 bv0 = _mm512_loadu_ps(b0 + kk * 16);
        __m512 bv1 = NP > 1 ? _mm512_loadu_ps(b1 + kk * 16) : bv0;
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            __m512 av = _mm512_set1_ps(a[r * lda + kk]);
            acc[r][0] = _mm512_fmadd_ps(av, bv0, acc[r][0]);
            if (NP > 1) acc[r][NP - 1] = _mm512_fmadd_ps(av, bv1, acc[r][NP - 1]);
        }
    }
    __mmask16 m0 = static_cast<__mmask16>(w0 >= 16 ? 0xFFFF : (1u << w0) - 1u);
    __mmask16 m1 = static_cast<__mmask16>(w1 >= 16 ? 0xFFFF : (1u << w1) - 1u);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
        _mm512_mask_storeu_ps(c + r * ldc, m0, acc[r][0]);
        if (NP > 1) _mm512_mask_storeu_ps(c + r * ldc + 16, m1, acc[r][NP - 1]);
    }
}

template <int NP>
void sgemm_rows_avx512(const float* a, int64_t m, int64_t lda, const float* b0, const float* b1,
                       int64_t k, float* c, int64_t ldc, int w0, int w1) {
    int64_t i = 0;
    for (; i + 8 <= m; i += 8)
        sgemm_tile_avx512<8, NP>(a + i * lda, lda, b0, b1, k, c + i * ldc, ldc, w0, w1);
    const float* ai = a + i * lda;
    float* ci = c + i * ldc;
    switch (m - i) {
        case 7: sgemm_tile_avx512<7, NP>(ai, lda, b0, b1, k, ci, ldc, w0, w1); break;
        case 6: sgemm_tile_avx512<6, NP>(ai, lda, b0, b1, k, ci, ldc, w0, w1); break;
        case 5: sgemm_tile_avx512<5, NP>(ai, lda, b0, b1, k, ci, ldc, w0, w1); break;
        case 4: sgemm_tile_avx512<4, NP>(ai, lda, b0, b1, k, ci, ldc, w0, w1); break;
        case 3: sgemm_tile_avx512<3, NP>(ai, lda, b0, b1, k, ci, ldc, w0, w1); break;
        case 2: sgemm_tile_avx512<2, NP>(ai, lda, b0, b1, k, ci, ldc, w0, w1); break;
        case 1: sgemm_tile_avx512<1, NP>(ai, lda, b0, b1, k, ci, ldc, w0, w1); break;
        default: break;
    }
}

}  // namespace

void enc_sgemm_packed_avx512(const float* a, int64_t m, int64_t lda, const float* bp, int64_t n,
                             int64_t k, int64_t p0, int64_t p1, float* c, int64_t ldc) {
    // Row blocks keep a slice of A in cache while the panels stream past.
    const int64_t kRowBlock = 64;
    for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
        int64_t mi = m - i0 < kRowBlock ? m - i0 : kRowBlock;
        const float* ai = a + i0 * lda;
        float* ci = c + i0 * ldc;
        int64_t p = p0;
        for (; p + 2 <= p1; p += 2) {
            int64_t j = p * 16;
            int w0 = static_cast<int>(n - j < 16 ? n - j : 16);
            int w1 = static_cast<int>(n - j - 16 < 16 ? n - j - 16 : 16);
            sgemm_rows_avx512<2>(ai, mi, lda, bp + p * 16 * k, bp + (p + 1) * 16 * k, k, ci + j, ldc,
                                 w0, w1);
        }
        if (p < p1) {
            int64_t j = p * 16;
            int w0 = static_cast<int>(n - j < 16 ? n - j : 16);
            sgemm_rows_avx512<1>(ai, mi, lda, bp + p * 16 * k, nullptr, k, ci + j, ldc, w0, 0);
        }
    }
}

}  // namespace embedrt
