// AVX2 SDC tile kernel: 4 database codes per register (two registers per group of 8),
// byte popcounts by nibble lookup (VPSHUFB), summed per 64-bit lane with VPSADBW.
#include <immintrin.h>

#include "kernels/sdc.h"

namespace embedrt {
namespace {

inline __m256i popcnt_bytes(__m256i v, __m256i lut, __m256i low) {
    const __m256i lo = _mm256_and_si256(v, low);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

template <int U>
void tile_u(const uint64_t* qpack, int64_t m, const uint64_t* dbpack, int64_t groups, int64_t W,
            int32_t* x, int64_t ldx, const int32_t* thr, uint8_t* mask, int64_t ldm) {
    constexpr int C = 2 * U - 1;
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i zero = _mm256_setzero_si256();
    const int64_t qstride = static_cast<int64_t>(U) * W;
    const int64_t gstride = qstride * 8;
    for (int64_t g = 0; g < groups; ++g) {
        const uint64_t* dg = dbpack + g * gstride;
        if (m == 1) {  // one query: the scan is a stream; ask for the groups ahead
            const char* pf = reinterpret_cast<const char*>(dg + 6 * gstride);
            for (int64_t o = 0; o < gstride * 8; o += 64) _mm_prefetch(pf + o, _MM_HINT_T0);
        }
        for (int64_t qi = 0; qi < m; ++qi) {
            const uint64_t* qp = qpack + qi * qstride;
            __m256i acc0[C], acc1[C];
            for (int s = 0; s < C; ++s) acc0[s] = acc1[s] = zero;
            for (int64_t w = 0; w < W; ++w) {
                for (int j = 0; j < U; ++j) {
                    const uint64_t* dw = dg + (j * W + w) * 8;
                    const __m256i d0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dw));
                    const __m256i d1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dw + 4));
                    for (int i = 0; i < U; ++i) {
                        const __m256i qv = _mm256_set1_epi64x(static_cast<long long>(qp[i * W + w]));
                        const __m256i p0 = popcnt_bytes(_mm256_xor_si256(d0, qv), lut, low);
                        const __m256i p1 = popcnt_bytes(_mm256_xor_si256(d1, qv), lut, low);
                        acc0[i + j] = _mm256_add_epi64(acc0[i + j], _mm256_sad_epu8(p0, zero));
                        acc1[i + j] = _mm256_add_epi64(acc1[i + j], _mm256_sad_epu8(p1, zero));
                    }
                }
            }
            __m256i t0 = acc0[0], t1 = acc1[0];
            for (int s = 1; s < C; ++s) {
                t0 = _mm256_add_epi64(_mm256_slli_epi64(t0, 1), acc0[s]);
                t1 = _mm256_add_epi64(_mm256_slli_epi64(t1, 1), acc1[s]);
            }
            // Low 32 bits of each 64-bit lane (values are < 2^31).
            const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
            const __m128i r0 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(t0, idx));
            const __m128i r1 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(t1, idx));
            int32_t* out = x + qi * ldx + g * 8;
            _mm_storeu_si128(reinterpret_cast<__m128i*>(out), r0);
            _mm_storeu_si128(reinterpret_cast<__m128i*>(out + 4), r1);
            if (mask) {
                const __m128i th = _mm_set1_epi32(thr[qi]);
                const int lo = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmplt_epi32(r0, th)));
                const int hi = _mm_movemask_ps(_mm_castsi128_ps(_mm_cmplt_epi32(r1, th)));
                mask[qi * ldm + g] = static_cast<uint8_t>(lo | (hi << 4));
            }
        }
    }
}

}  // namespace

void sdc_tile_avx2(const uint64_t* qpack, int64_t m, const uint64_t* dbpack, int64_t groups,
                   int u, int64_t W, int32_t* x, int64_t ldx, const int32_t* thr,
                   uint8_t* mask, int64_t ldm) {
    switch (u) {
        case 1: tile_u<1>(qpack, m, dbpack, groups, W, x, ldx, thr, mask, ldm); break;
        case 2: tile_u<2>(qpack, m, dbpack, groups, W, x, ldx, thr, mask, ldm); break;
        case 3: tile_u<3>(qpack, m, dbpack, groups, W, x, ldx, thr, mask, ldm); break;
        default: tile_u<4>(qpack, m, dbpack, groups, W, x, ldx, thr, mask, ldm); break;
    }
}

}  // namespace embedrt
