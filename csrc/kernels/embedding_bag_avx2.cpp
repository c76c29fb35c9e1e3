// AVX2 path of embedding_bag: tiles of 32 floats (4 ymm accumulators) per bag, masked loads
// for the tail, rows prefetched a few ids ahead for tables that do not fit in cache.
#include <immintrin.h>

#include <cstdint>

#include "kernels/embedding_bag.h"

namespace embedrt {
namespace {

inline __m256 mul_rounded(__m256 w, __m256 x) {
    __m256 p = _mm256_mul_ps(w, x);
    __asm__("" : "+x"(p));  // no fusing into an FMA: the product is rounded, as on every path
    return p;
}

inline __m256i tail_mask(int64_t left) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int32_t l = left >= 8 ? 8 : (left <= 0 ? 0 : int32_t(left));
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(l), lane);
}

}  // namespace

void embedding_bag_avx2(const float* table, int64_t dim, const int64_t* ids,
                        const int64_t* offsets, int64_t b0, int64_t b1, const float* weights,
                        int mode, int64_t prefetch, float* out) {
    const int64_t end_all = offsets[b1];
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t s = offsets[b], e = offsets[b + 1];
        float* o = out + b * dim;
        const __m256 inv = _mm256_set1_ps(float(e - s));
        for (int64_t t = 0; t < dim; t += 32) {
            const bool full = dim - t >= 32;
            const __m256i k0 = tail_mask(dim - t), k1 = tail_mask(dim - t - 8),
                          k2 = tail_mask(dim - t - 16), k3 = tail_mask(dim - t - 24);
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
            for (int64_t p = s; p < e; ++p) {
                if (prefetch && t == 0 && p + prefetch < end_all) {
                    const char* r = reinterpret_cast<const char*>(table + ids[p + prefetch] * dim);
                    // every cache line the row touches (rows need not start on one)
                    for (uintptr_t a = reinterpret_cast<uintptr_t>(r) & ~uintptr_t(63),
                                   last = reinterpret_cast<uintptr_t>(r) + uintptr_t(dim * 4) - 1;
                         a <= last; a += 64)
                        _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
                }
                const float* row = table + ids[p] * dim + t;
                __m256 x0, x1, x2, x3;
                if (full) {
                    x0 = _mm256_loadu_ps(row);
                    x1 = _mm256_loadu_ps(row + 8);
                    x2 = _mm256_loadu_ps(row + 16);
                    x3 = _mm256_loadu_ps(row + 24);
                } else {
                    x0 = _mm256_maskload_ps(row, k0);
                    x1 = _mm256_maskload_ps(row + 8, k1);
                    x2 = _mm256_maskload_ps(row + 16, k2);
                    x3 = _mm256_maskload_ps(row + 24, k3);
                }
                if (weights) {
                    const __m256 w = _mm256_set1_ps(weights[p]);
                    x0 = mul_rounded(w, x0);
                    x1 = mul_rounded(w, x1);
                    x2 = mul_rounded(w, x2);
                    x3 = mul_rounded(w, x3);
                }
                a0 = _mm256_add_ps(a0, x0);
                a1 = _mm256_add_ps(a1, x1);
                a2 = _mm256_add_ps(a2, x2);
                a3 = _mm256_add_ps(a3, x3);
            }
            if (mode == 1 && e > s) {
                a0 = _mm256_div_ps(a0, inv);
                a1 = _mm256_div_ps(a1, inv);
                a2 = _mm256_div_ps(a2, inv);
                a3 = _mm256_div_ps(a3, inv);
            }
            if (full) {
                _mm256_storeu_ps(o + t, a0);
                _mm256_storeu_ps(o + t + 8, a1);
                _mm256_storeu_ps(o + t + 16, a2);
                _mm256_storeu_ps(o + t + 24, a3);
            } else {
                _mm256_maskstore_ps(o + t, k0, a0);
                _mm256_maskstore_ps(o + t + 8, k1, a1);
                _mm256_maskstore_ps(o + t + 16, k2, a2);
                _mm256_maskstore_ps(o + t + 24, k3, a3);
            }
        }
    }
}

}  // namespace embedrt
