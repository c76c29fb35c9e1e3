// AVX-512 SDC tile kernel: VPOPCNTQ over 8 database codes at once (one 64-bit word of each
// code per lane), query words broadcast from memory, one accumulator per weight class i + j.
#include <immintrin.h>

#include "kernels/sdc.h"

namespace embedrt {
namespace {

// Q queries (rows qp, qp + qstride, ...) against every group.
template <int U, int Q>
void tile_q(const uint64_t* qp, int64_t qstride, const uint64_t* dbpack, int64_t groups, int64_t W,
            int32_t* x, int64_t ldx, const int32_t* thr, uint8_t* mask, int64_t ldm) {
    constexpr int C = 2 * U - 1;
    const int64_t gstride = static_cast<int64_t>(U) * W * 8;
    for (int64_t g = 0; g < groups; ++g) {
        const uint64_t* dg = dbpack + g * gstride;
        if (Q == 1) {  // one query: the scan is a stream; ask for the groups ahead
            const char* pf = reinterpret_cast<const char*>(dg + 6 * gstride);
            for (int64_t o = 0; o < gstride * 8; o += 64) _mm_prefetch(pf + o, _MM_HINT_T0);
        }
        __m512i acc[Q][C];
        for (int q = 0; q < Q; ++q)
            for (int s = 0; s < C; ++s) acc[q][s] = _mm512_setzero_si512();
        for (int64_t w = 0; w < W; ++w) {
            for (int j = 0; j < U; ++j) {
                const __m512i dz = _mm512_loadu_si512(dg + (j * W + w) * 8);
                for (int q = 0; q < Q; ++q) {
                    const uint64_t* qrow = qp + q * qstride + w;
                    for (int i = 0; i < U; ++i) {
                        const __m512i v = _mm512_xor_si512(
                            dz, _mm512_set1_epi64(static_cast<long long>(qrow[i * W])));
                        acc[q][i + j] = _mm512_add_epi64(acc[q][i + j], _mm512_popcnt_epi64(v));
                    }
                }
            }
        }
        for (int q = 0; q < Q; ++q) {
            __m512i t = acc[q][0];
            for (int s = 1; s < C; ++s) t = _mm512_add_epi64(_mm512_slli_epi64(t, 1), acc[q][s]);
            const __m256i t32 = _mm512_cvtepi64_epi32(t);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(x + q * ldx + g * 8), t32);
            if (mask)
                mask[q * ldm + g] = static_cast<uint8_t>(
                    _mm256_cmplt_epi32_mask(t32, _mm256_set1_epi32(thr[q])));
        }
    }
}

template <int U, int Q>
void tile_u(const uint64_t* qpack, int64_t m, const uint64_t* dbpack, int64_t groups, int64_t W,
            int32_t* x, int64_t ldx, const int32_t* thr, uint8_t* mask, int64_t ldm) {
    const int64_t qstride = static_cast<int64_t>(U) * W;
    int64_t i = 0;
    for (; i + Q <= m; i += Q)
        tile_q<U, Q>(qpack + i * qstride, qstride, dbpack, groups, W, x + i * ldx, ldx,
                     thr ? thr + i : nullptr, mask ? mask + i * ldm : nullptr, ldm);
    for (; i < m; ++i)
        tile_q<U, 1>(qpack + i * qstride, qstride, dbpack, groups, W, x + i * ldx, ldx,
                     thr ? thr + i : nullptr, mask ? mask + i * ldm : nullptr, ldm);
}

}  // namespace

void sdc_tile_avx512(const uint64_t* qpack, int64_t m, const uint64_t* dbpack, int64_t groups,
                     int u, int64_t W, int32_t* x, int64_t ldx, const int32_t* thr,
                     uint8_t* mask, int64_t ldm) {
    switch (u) {
        case 1: tile_u<1, 4>(qpack, m, dbpack, groups, W, x, ldx, thr, mask, ldm); break;
        case 2: tile_u<2, 2>(qpack, m, dbpack, groups, W, x, ldx, thr, mask, ldm); break;
        case 3: tile_u<3, 2>(qpack, m, dbpack, groups, W, x, ldx, thr, mask, ldm); break;
        default: tile_u<4, 2>(qpack, m, dbpack, groups, W, x, ldx, thr, mask, ldm); break;
    }
}

}  // namespace embedrt
