// AVX-512 path of embedding_bag: tiles of 64 floats (4 zmm accumulators) per bag, rows
// prefetched a few ids ahead for tables that do not fit in cache.
#include <immintrin.h>

#include <cstdint>

#include "kernels/embedding_bag.h"

namespace embedrt {
namespace {

inline __m512 mul_rounded(__m512 w, __m512 x) {
    __m512 p = _mm512_mul_ps(w, x);
    __asm__("" : "+v"(p));  // no fusing into an FMA: the product is rounded, as on every path
    return p;
}

inline __mmask16 tail_mask(int64_t left) {
    if (left >= 16) return __mmask16(0xffff);
    if (left <= 0) return __mmask16(0);
    return __mmask16((1u << left) - 1);
}

}  // namespace

void embedding_bag_avx512(const float* table, int64_t dim, const int64_t* ids,
                          const int64_t* offsets, int64_t b0, int64_t b1, const float* weights,
                          int mode, int64_t prefetch, float* out) {
    const int64_t end_all = offsets[b1];
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t s = offsets[b], e = offsets[b + 1];
        float* o = out + b * dim;
        const __m512 inv = _mm512_set1_ps(float(e - s));
        for (int64_t t = 0; t < dim; t += 64) {
            const __mmask16 k0 = tail_mask(dim - t), k1 = tail_mask(dim - t - 16),
                            k2 = tail_mask(dim - t - 32), k3 = tail_mask(dim - t - 48);
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
            __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
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
                __m512 x0 = _mm512_maskz_loadu_ps(k0, row);
                __m512 x1 = _mm512_maskz_loadu_ps(k1, row + 16);
                __m512 x2 = _mm512_maskz_loadu_ps(k2, row + 32);
                __m512 x3 = _mm512_maskz_loadu_ps(k3, row + 48);
                if (weights) {
                    const __m512 w = _mm512_set1_ps(weights[p]);
                    x0 = mul_rounded(w, x0);
                    x1 = mul_rounded(w, x1);
                    x2 = mul_rounded(w, x2);
                    x3 = mul_rounded(w, x3);
                }
                a0 = _mm512_add_ps(a0, x0);
                a1 = _mm512_add_ps(a1, x1);
                a2 = _mm512_add_ps(a2, x2);
                a3 = _mm512_add_ps(a3, x3);
            }
            if (mode == 1 && e > s) {
                a0 = _mm512_div_ps(a0, inv);
                a1 = _mm512_div_ps(a1, inv);
                a2 = _mm512_div_ps(a2, inv);
                a3 = _mm512_div_ps(a3, inv);
            }
            _mm512_mask_storeu_ps(o + t, k0, a0);
            _mm512_mask_storeu_ps(o + t + 16, k1, a1);
            _mm512_mask_storeu_ps(o + t + 32, k2, a2);
            _mm512_mask_storeu_ps(o + t + 48, k3, a3);
        }
    }
}

}  // namespace embedrt
