// AVX2 int8 document x int16 query dot products: vpmovsxbw + vpmaddwd (exact, no saturation).
// Blocks of 4 documents per query; a row's last partial 16-wide chunk is copied into a
// zero-padded buffer so no byte past its end is read.
#include <immintrin.h>

#include <cstring>

#include "kernels/int8_scan.h"

namespace embedrt {

namespace {

inline int32_t hsum(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

inline __m256i load16(const int8_t* p, int64_t kk, int64_t full, int64_t rest) {
    if (kk < full) return _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + kk)));
    alignas(16) int8_t tmp[16] = {0};
    std::memcpy(tmp, p + kk, size_t(rest));
    return _mm256_cvtepi8_epi16(_mm_load_si128(reinterpret_cast<const __m128i*>(tmp)));
}

}  // namespace

void int8_dot_q16_avx2(const int16_t* q16, int64_t nq, const int8_t* docs, int64_t dim,
                       const int64_t* ids, int64_t n, int32_t* out, int64_t ldo) {
    const int64_t ldq = int8_q16_stride(dim);
    const int64_t full = dim / 16 * 16, rest = dim - full;
    const int64_t end = rest ? full + 16 : full;
    for (int64_t t = 0; t < n; t += 4) {
        int nd = n - t < 4 ? int(n - t) : 4;
        const int8_t* d[4];
        for (int i = 0; i < 4; ++i) {
            int64_t r = t + (i < nd ? i : 0);
            d[i] = docs + (ids ? ids[r] : r) * dim;
        }
        for (int64_t j = 0; j < nq; ++j) {
            const int16_t* q = q16 + j * ldq;
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0;
            for (int64_t kk = 0; kk < end; kk += 16) {
                __m256i qv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + kk));
                a0 = _mm256_add_epi32(a0, _mm256_madd_epi16(load16(d[0], kk, full, rest), qv));
                a1 = _mm256_add_epi32(a1, _mm256_madd_epi16(load16(d[1], kk, full, rest), qv));
                a2 = _mm256_add_epi32(a2, _mm256_madd_epi16(load16(d[2], kk, full, rest), qv));
                a3 = _mm256_add_epi32(a3, _mm256_madd_epi16(load16(d[3], kk, full, rest), qv));
            }
            int32_t s[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
            for (int i = 0; i < nd; ++i) out[j * ldo + t + i] = s[i];
        }
    }
}

}  // namespace embedrt
