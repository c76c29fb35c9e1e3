// AVX-512 int8 document x int16 query dot products: documents are sign-extended to int16
// (vpmovsxbw) and multiplied with vpdpwssd (exact: pair sums stay far below 2^31).
// Blocks of 4 documents x up to 4 queries (16 zmm accumulators); the last partial 32-wide
// chunk of a row is read with a masked load, so no byte past a row's end is touched.
#include <immintrin.h>

#include "kernels/int8_scan.h"

namespace embedrt {

namespace {

inline __m512i dpwssd(__m512i acc, __m512i a, __m512i b) {
#if defined(__GNUC__)
    __asm__("vpdpwssd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
#else
    return _mm512_dpwssd_epi32(acc, a, b);
#endif
}

inline __m256i hsum8(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

// The 4 horizontal sums of a, b, c, d.
inline __m128i reduce4(__m512i a, __m512i b, __m512i c, __m512i d) {
    __m256i ab = _mm256_hadd_epi32(hsum8(a), hsum8(b));
    __m256i cd = _mm256_hadd_epi32(hsum8(c), hsum8(d));
    __m256i abcd = _mm256_hadd_epi32(ab, cd);
    return _mm_add_epi32(_mm256_castsi256_si128(abcd), _mm256_extracti128_si256(abcd, 1));
}

template <int ND, int NQ>
void block(const int16_t* q, int64_t ldq, const int8_t* const* d, int64_t dim, int32_t* out,
           int64_t ldo) {
    __m512i a00 = _mm512_setzero_si512(), a01 = a00, a02 = a00, a03 = a00;
    __m512i a10 = a00, a11 = a00, a12 = a00, a13 = a00;
    __m512i a20 = a00, a21 = a00, a22 = a00, a23 = a00;
    __m512i a30 = a00, a31 = a00, a32 = a00, a33 = a00;
    const int64_t full = dim / 32 * 32;
    const int64_t rest = dim - full;
    const __mmask32 tail = rest ? static_cast<__mmask32>((uint64_t(1) << rest) - 1) : 0;
    for (int64_t kk = 0; kk <= full; kk += 32) {
        if (kk == full && !rest) break;
        __m512i q0 = _mm512_loadu_si512(reinterpret_cast<const void*>(q + kk));
        __m512i q1 = NQ > 1 ? _mm512_loadu_si512(reinterpret_cast<const void*>(q + ldq + kk)) : q0;
        __m512i q2 = NQ > 2 ? _mm512_loadu_si512(reinterpret_cast<const void*>(q + 2 * ldq + kk)) : q0;
        __m512i q3 = NQ > 3 ? _mm512_loadu_si512(reinterpret_cast<const void*>(q + 3 * ldq + kk)) : q0;
#define EMBEDRT_DOC(i)                                                                          \
        if (ND > i) {                                                                           \
            __m256i raw = kk < full                                                             \
                ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(d[i] + kk))               \
                : _mm256_maskz_loadu_epi8(tail, d[i] + kk);                                     \
            __m512i v = _mm512_cvtepi8_epi16(raw);                                              \
            a##i##0 = dpwssd(a##i##0, v, q0);                                                   \
            if (NQ > 1) a##i##1 = dpwssd(a##i##1, v, q1);                                       \
            if (NQ > 2) a##i##2 = dpwssd(a##i##2, v, q2);                                       \
            if (NQ > 3) a##i##3 = dpwssd(a##i##3, v, q3);                                       \
        }
        EMBEDRT_DOC(0) EMBEDRT_DOC(1) EMBEDRT_DOC(2) EMBEDRT_DOC(3)
#undef EMBEDRT_DOC
    }
    // out[j][i]: per query j, the sums over documents 0..3.
#define EMBEDRT_STORE(j)                                                                        \
    if (NQ > j) {                                                                               \
        alignas(16) int32_t s[4];                                                               \
        _mm_store_si128(reinterpret_cast<__m128i*>(s), reduce4(a0##j, a1##j, a2##j, a3##j));    \
        for (int i = 0; i < ND; ++i) out[j * ldo + i] = s[i];                                   \
    }
    EMBEDRT_STORE(0) EMBEDRT_STORE(1) EMBEDRT_STORE(2) EMBEDRT_STORE(3)
#undef EMBEDRT_STORE
}

// One query, up to 8 documents: 8 independent accumulator chains hide vpdpwssd latency.
template <int ND>
void block1(const int16_t* q, const int8_t* const* d, int64_t dim, int32_t* out) {
    __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0;
    const int64_t full = dim / 32 * 32;
    const int64_t rest = dim - full;
    const __mmask32 tail = rest ? static_cast<__mmask32>((uint64_t(1) << rest) - 1) : 0;
#define EMBEDRT_DOC1(i, LOAD)                                                  \
    if (ND > i) a##i = dpwssd(a##i, _mm512_cvtepi8_epi16(LOAD), qv);
    for (int64_t kk = 0; kk < full; kk += 32) {
        const __m512i qv = _mm512_loadu_si512(reinterpret_cast<const void*>(q + kk));
#define EMBEDRT_LD(i) _mm256_loadu_si256(reinterpret_cast<const __m256i*>(d[i] + kk))
        EMBEDRT_DOC1(0, EMBEDRT_LD(0)) EMBEDRT_DOC1(1, EMBEDRT_LD(1)) EMBEDRT_DOC1(2, EMBEDRT_LD(2))
        EMBEDRT_DOC1(3, EMBEDRT_LD(3)) EMBEDRT_DOC1(4, EMBEDRT_LD(4)) EMBEDRT_DOC1(5, EMBEDRT_LD(5))
        EMBEDRT_DOC1(6, EMBEDRT_LD(6)) EMBEDRT_DOC1(7, EMBEDRT_LD(7))
#undef EMBEDRT_LD
    }
    if (rest) {
        const int64_t kk = full;
        const __m512i qv = _mm512_loadu_si512(reinterpret_cast<const void*>(q + kk));
#define EMBEDRT_LD(i) _mm256_maskz_loadu_epi8(tail, d[i] + kk)
        EMBEDRT_DOC1(0, EMBEDRT_LD(0)) EMBEDRT_DOC1(1, EMBEDRT_LD(1)) EMBEDRT_DOC1(2, EMBEDRT_LD(2))
        EMBEDRT_DOC1(3, EMBEDRT_LD(3)) EMBEDRT_DOC1(4, EMBEDRT_LD(4)) EMBEDRT_DOC1(5, EMBEDRT_LD(5))
        EMBEDRT_DOC1(6, EMBEDRT_LD(6)) EMBEDRT_DOC1(7, EMBEDRT_LD(7))
#undef EMBEDRT_LD
    }
#undef EMBEDRT_DOC1
    alignas(16) int32_t s[8];
    _mm_store_si128(reinterpret_cast<__m128i*>(s), reduce4(a0, a1, a2, a3));
    if (ND > 4) _mm_store_si128(reinterpret_cast<__m128i*>(s + 4), reduce4(a4, a5, a6, a7));
    for (int i = 0; i < ND; ++i) out[i] = s[i];
}

template <int ND>
void block_q(const int16_t* q, int64_t ldq, int64_t nq, const int8_t* const* d, int64_t dim,
             int32_t* out, int64_t ldo) {
    int64_t j = 0;
    for (; j + 4 <= nq; j += 4) block<ND, 4>(q + j * ldq, ldq, d, dim, out + j * ldo, ldo);
    switch (nq - j) {
        case 3: block<ND, 3>(q + j * ldq, ldq, d, dim, out + j * ldo, ldo); break;
        case 2: block<ND, 2>(q + j * ldq, ldq, d, dim, out + j * ldo, ldo); break;
        case 1: block<ND, 1>(q + j * ldq, ldq, d, dim, out + j * ldo, ldo); break;
        default: break;
    }
}

}  // namespace

void int8_dot_q16_avx512(const int16_t* q16, int64_t nq, const int8_t* docs, int64_t dim,
                         const int64_t* ids, int64_t n, int32_t* out, int64_t ldo) {
    const int64_t ldq = int8_q16_stride(dim);
    if (nq == 1) {
        for (int64_t t = 0; t < n; t += 8) {
            int nd = n - t < 8 ? int(n - t) : 8;
            if (!ids && t + 24 <= n) {
                // Contiguous rows: prefetch the block two steps ahead (the scan is memory bound).
                const char* ahead = reinterpret_cast<const char*>(docs + (t + 16) * dim);
                for (int64_t off = 0; off < 8 * dim; off += 64) _mm_prefetch(ahead + off, _MM_HINT_T0);
            }
            const int8_t* d[8];
            for (int i = 0; i < 8; ++i) {
                int64_t r = t + (i < nd ? i : 0);
                d[i] = docs + (ids ? ids[r] : r) * dim;
            }
            switch (nd) {
                case 8: block1<8>(q16, d, dim, out + t); break;
                case 7: block1<7>(q16, d, dim, out + t); break;
                case 6: block1<6>(q16, d, dim, out + t); break;
                case 5: block1<5>(q16, d, dim, out + t); break;
                case 4: block1<4>(q16, d, dim, out + t); break;
                case 3: block1<3>(q16, d, dim, out + t); break;
                case 2: block1<2>(q16, d, dim, out + t); break;
                default: block1<1>(q16, d, dim, out + t); break;
            }
        }
        return;
    }
    int64_t t = 0;
    for (; t < n; t += 4) {
        int nd = n - t < 4 ? int(n - t) : 4;
        const int8_t* d[4];
        for (int i = 0; i < 4; ++i) {
            int64_t r = t + (i < nd ? i : 0);
            d[i] = docs + (ids ? ids[r] : r) * dim;
        }
        switch (nd) {
            case 4: block_q<4>(q16, ldq, nq, d, dim, out + t, ldo); break;
            case 3: block_q<3>(q16, ldq, nq, d, dim, out + t, ldo); break;
            case 2: block_q<2>(q16, ldq, nq, d, dim, out + t, ldo); break;
            default: block_q<1>(q16, ldq, nq, d, dim, out + t, ldo); break;
        }
    }
}

}  // namespace embedrt
