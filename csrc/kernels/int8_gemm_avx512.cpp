// AVX-512 VNNI int8 GEMM: vpdpbusd on u8 x s8 with the compensation of the packing.
//
// A rows are packed per call into micro panels of 8 rows, [kp / 4][8][4] uint8 (a xor 0x80),
// so that the microkernel broadcasts 4 consecutive bytes of one row per vpdpbusd. The
// microkernel keeps an 8 x 48 block of C in 24 zmm accumulators and streams 3 B panels.
// Exactness: each int32 lane accumulates products of at most 255 * 128, so for k <= kInt8MaxK
// nothing overflows; subtracting comp[j] = 128 * sum_k b[j, k] yields the signed product.
#include <immintrin.h>

#include <cstring>

#include "kernels/int8_gemm.h"

namespace embedrt {

namespace {

constexpr int kMR = 8;   // rows per micro panel
constexpr int kNP = 3;   // B panels (of 16 columns) per microkernel

// Packs rows [0, rows) of A into micro panels; rows beyond `rows` in the last panel are zero.
void pack_a(const Int8GemmArgs& g, uint8_t* dst) {
    const int64_t kp = g.kp, k = g.k;
    const uint32_t flip = g.a_u8 ? 0u : 0x80808080u;
    const int64_t k4 = k / 4 * 4;
    for (int64_t i0 = 0; i0 < g.m; i0 += kMR) {
        uint8_t* panel = dst + i0 * kp;  // kMR * kp bytes
        int64_t rows = g.m - i0 < kMR ? g.m - i0 : kMR;
        for (int r = 0; r < kMR; ++r) {
            uint8_t* d = panel + r * 4;
            if (r >= rows) {
                for (int64_t q = 0; q < kp / 4; ++q) std::memset(d + q * 4 * kMR, 0, 4);
                continue;
            }
            const uint8_t* src = static_cast<const uint8_t*>(g.a) + (i0 + r) * g.lda;
            int64_t kk = 0;
            for (; kk < k4; kk += 4) {
                uint32_t v;
                std::memcpy(&v, src + kk, 4);
                v ^= flip;
                std::memcpy(d + (kk / 4) * 4 * kMR, &v, 4);
            }
            if (kk < kp) {
                // Tail group: padding bytes are 0 (their B bytes are 0 too).
                uint8_t tmp[4] = {0, 0, 0, 0};
                for (int64_t t = 0; kk + t < k; ++t) tmp[t] = uint8_t(src[kk + t] ^ uint8_t(flip));
                std::memcpy(d + (kk / 4) * 4 * kMR, tmp, 4);
            }
        }
    }
}

// acc += u8(a) . s8(b) per 32-bit lane. Inline asm: GCC 12 surrounds the intrinsic with
// register copies and stack stores when many accumulators are live.
inline __m512i dpbusd(__m512i acc, __m512i a, __m512i b) {
#if defined(__GNUC__)
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b));
    return acc;
#else
    return _mm512_dpbusd_epi32(acc, a, b);
#endif
}

inline __mmask16 col_mask(int64_t lo, int64_t hi) {  // columns [lo, hi) of a 16-column panel
    if (hi <= lo) return 0;
    uint32_t m = ((1u << (hi - lo)) - 1u) << lo;
    return static_cast<__mmask16>(m);
}

template <int MR, int NP>
void micro(const Int8GemmArgs& g, const uint8_t* ap, int64_t i0, int64_t p0, int64_t j0,
           int64_t j1) {
    const int64_t kp = g.kp;
    const int64_t groups = kp / 4;
    const int8_t* bp = g.b + p0 * 16 * kp;
    const int64_t pstride = 16 * kp;
    // Named accumulators (an array of 24 zmm would not be kept in registers by every
    // compiler); rows >= MR or panels >= NP are dead code.
    __m512i c00 = _mm512_setzero_si512(), c01 = c00, c02 = c00, c10 = c00, c11 = c00, c12 = c00;
    __m512i c20 = c00, c21 = c00, c22 = c00, c30 = c00, c31 = c00, c32 = c00;
    __m512i c40 = c00, c41 = c00, c42 = c00, c50 = c00, c51 = c00, c52 = c00;
    __m512i c60 = c00, c61 = c00, c62 = c00, c70 = c00, c71 = c00, c72 = c00;
    const int8_t* b0p = bp;
    const int8_t* b1p = bp + (NP > 1 ? pstride : 0);
    const int8_t* b2p = bp + (NP > 2 ? 2 * pstride : 0);
    for (int64_t q = 0; q < groups; ++q) {
        const __m512i b0 = _mm512_loadu_si512(reinterpret_cast<const void*>(b0p + q * 64));
        const __m512i b1 = NP > 1 ? _mm512_loadu_si512(reinterpret_cast<const void*>(b1p + q * 64)) : b0;
        const __m512i b2 = NP > 2 ? _mm512_loadu_si512(reinterpret_cast<const void*>(b2p + q * 64)) : b0;
        const uint8_t* aq = ap + q * 4 * kMR;
#define EMBEDRT_ROW(r)                                                         \
        if (MR > r) {                                                          \
            int32_t av;                                                        \
            std::memcpy(&av, aq + r * 4, 4);                                   \
            const __m512i a = _mm512_set1_epi32(av);                           \
            c##r##0 = dpbusd(c##r##0, a, b0);                     \
            if (NP > 1) c##r##1 = dpbusd(c##r##1, a, b1);         \
            if (NP > 2) c##r##2 = dpbusd(c##r##2, a, b2);         \
        }
        EMBEDRT_ROW(0) EMBEDRT_ROW(1) EMBEDRT_ROW(2) EMBEDRT_ROW(3)
        EMBEDRT_ROW(4) EMBEDRT_ROW(5) EMBEDRT_ROW(6) EMBEDRT_ROW(7)
#undef EMBEDRT_ROW
    }
    // Spill the finished block once, compensated, then run the epilogue from memory.
    alignas(64) int32_t tile[8][48];
    const __m512i comp0 = _mm512_loadu_si512(reinterpret_cast<const void*>(g.comp + p0 * 16));
    const __m512i comp1 = NP > 1 ? _mm512_loadu_si512(reinterpret_cast<const void*>(g.comp + p0 * 16 + 16)) : comp0;
    const __m512i comp2 = NP > 2 ? _mm512_loadu_si512(reinterpret_cast<const void*>(g.comp + p0 * 16 + 32)) : comp0;
#define EMBEDRT_SPILL(r)                                                                            \
    if (MR > r) {                                                                                   \
        _mm512_store_si512(reinterpret_cast<void*>(&tile[r][0]), _mm512_sub_epi32(c##r##0, comp0)); \
        if (NP > 1) _mm512_store_si512(reinterpret_cast<void*>(&tile[r][16]), _mm512_sub_epi32(c##r##1, comp1)); \
        if (NP > 2) _mm512_store_si512(reinterpret_cast<void*>(&tile[r][32]), _mm512_sub_epi32(c##r##2, comp2)); \
    }
    EMBEDRT_SPILL(0) EMBEDRT_SPILL(1) EMBEDRT_SPILL(2) EMBEDRT_SPILL(3)
    EMBEDRT_SPILL(4) EMBEDRT_SPILL(5) EMBEDRT_SPILL(6) EMBEDRT_SPILL(7)
#undef EMBEDRT_SPILL
    for (int p = 0; p < NP; ++p) {
        int64_t c0 = (p0 + p) * 16;
        int64_t lo = j0 > c0 ? j0 - c0 : 0;
        int64_t hi = j1 - c0 < 16 ? j1 - c0 : 16;
        __mmask16 mask = col_mask(lo, hi);
        if (!mask) continue;
        if (g.c32) {
            for (int r = 0; r < MR; ++r) {
                __m512i v = _mm512_load_si512(reinterpret_cast<const void*>(&tile[r][p * 16]));
                _mm512_mask_storeu_epi32(g.c32 + (i0 + r) * g.ldc + c0, mask, v);
            }
        } else {
            __m512 bs = g.b_scale ? _mm512_maskz_loadu_ps(mask, g.b_scale + c0) : _mm512_set1_ps(1.0f);
            __m512 bias = g.bias ? _mm512_maskz_loadu_ps(mask, g.bias + c0) : _mm512_setzero_ps();
            for (int r = 0; r < MR; ++r) {
                __m512 d = _mm512_cvtepi32_ps(_mm512_load_si512(reinterpret_cast<const void*>(&tile[r][p * 16])));
                __m512 s = _mm512_mul_ps(_mm512_set1_ps(g.a_scale ? g.a_scale[i0 + r] : 1.0f), bs);
                __m512 v = g.bias ? _mm512_fmadd_ps(s, d, bias) : _mm512_mul_ps(s, d);
                _mm512_mask_storeu_ps(g.cf + (i0 + r) * g.ldc + c0, mask, v);
            }
        }
    }
}

template <int NP>
void micro_rows(const Int8GemmArgs& g, const uint8_t* ap, int64_t i0, int rows, int64_t p0,
                int64_t j0, int64_t j1) {
    switch (rows) {
        case 8: micro<8, NP>(g, ap, i0, p0, j0, j1); break;
        case 7: micro<7, NP>(g, ap, i0, p0, j0, j1); break;
        case 6: micro<6, NP>(g, ap, i0, p0, j0, j1); break;
        case 5: micro<5, NP>(g, ap, i0, p0, j0, j1); break;
        case 4: micro<4, NP>(g, ap, i0, p0, j0, j1); break;
        case 3: micro<3, NP>(g, ap, i0, p0, j0, j1); break;
        case 2: micro<2, NP>(g, ap, i0, p0, j0, j1); break;
        default: micro<1, NP>(g, ap, i0, p0, j0, j1); break;
    }
}

}  // namespace

void int8_gemm_avx512(const Int8GemmArgs& g, int64_t j0, int64_t j1) {
    if (g.m <= 0 || j1 <= j0) return;
    uint8_t* ap = g.scratch;
    pack_a(g, ap);
    const int64_t pbeg = j0 / 16, pend = (j1 + 15) / 16;
    // Column blocks of kNP panels (kept in L1/L2) outermost, row micro panels inside.
    for (int64_t p = pbeg; p < pend; p += kNP) {
        int np = pend - p < kNP ? int(pend - p) : kNP;
        for (int64_t i0 = 0; i0 < g.m; i0 += kMR) {
            int rows = g.m - i0 < kMR ? int(g.m - i0) : kMR;
            const uint8_t* a = ap + i0 * g.kp;
            if (np == 3) micro_rows<3>(g, a, i0, rows, p, j0, j1);
            else if (np == 2) micro_rows<2>(g, a, i0, rows, p, j0, j1);
            else micro_rows<1>(g, a, i0, rows, p, j0, j1);
        }
    }
}

}  // namespace embedrt
