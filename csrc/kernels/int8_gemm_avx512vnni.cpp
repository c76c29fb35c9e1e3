// AVX-512 VNNI int8 GEMM: vpdpbusd on u8 x s8 with the compensation of the packing.
//
// A rows are packed per call into micro panels of 8 rows, [kp / 4][8][4] uint8 (a xor 0x80),
// so that the microkernel broadcasts 4 consecutive bytes of one row per vpdpbusd; uint8 codes
// (a_u8) with k a multiple of 4 are already in that form row by row and are read in place. The
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
constexpr int64_t kKC = 512;  // k per block (int32 output)

// Packs rows [0, rows) of A into micro panels; rows beyond `rows` in the last panel are zero.
void pack_a(const Int8GemmArgs& g, uint8_t* dst) {
    const int64_t kp = g.kp, k = g.k;
    const uint32_t flip = g.a_u8 ? 0u : 0x80808080u;
    const int64_t k4 = k / 4 * 4;
    for (int64_t i0 = 0; i0 < g.m; i0 += kMR) {
        uint8_t* panel = dst + i0 * kp;  // kMR * kp bytes
        int64_t rows = g.m - i0 < kMR ? g.m - i0 : kMR;
        int64_t kdone = 0;
        if (rows == kMR) {
            // 8 groups of 4 k's at a time: an 8 x 8 transpose of 32-bit words.
            const uint8_t* src = static_cast<const uint8_t*>(g.a) + i0 * g.lda;
            const __m256i fl = _mm256_set1_epi32(int(flip));
            for (; kdone + 32 <= k; kdone += 32) {
                __m256i r0 = _mm256_xor_si256(fl, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 0 * g.lda + kdone)));
                __m256i r1 = _mm256_xor_si256(fl, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 1 * g.lda + kdone)));
                __m256i r2 = _mm256_xor_si256(fl, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 2 * g.lda + kdone)));
                __m256i r3 = _mm256_xor_si256(fl, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 3 * g.lda + kdone)));
                __m256i r4 = _mm256_xor_si256(fl, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 4 * g.lda + kdone)));
                __m256i r5 = _mm256_xor_si256(fl, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 5 * g.lda + kdone)));
                __m256i r6 = _mm256_xor_si256(fl, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 6 * g.lda + kdone)));
                __m256i r7 = _mm256_xor_si256(fl, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 7 * g.lda + kdone)));
                __m256i t0 = _mm256_unpacklo_epi32(r0, r1), t1 = _mm256_unpackhi_epi32(r0, r1);
                __m256i t2 = _mm256_unpacklo_epi32(r2, r3), t3 = _mm256_unpackhi_epi32(r2, r3);
                __m256i t4 = _mm256_unpacklo_epi32(r4, r5), t5 = _mm256_unpackhi_epi32(r4, r5);
                __m256i t6 = _mm256_unpacklo_epi32(r6, r7), t7 = _mm256_unpackhi_epi32(r6, r7);
                __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
                __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
                __m256i u4 = _mm256_unpacklo_epi64(t4, t6), u5 = _mm256_unpackhi_epi64(t4, t6);
                __m256i u6 = _mm256_unpacklo_epi64(t5, t7), u7 = _mm256_unpackhi_epi64(t5, t7);
                // u0: groups 0 | 4 of rows 0-3; u4: the same for rows 4-7 (and so on).
                uint8_t* d = panel + (kdone / 4) * 4 * kMR;
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 0 * 32), _mm256_permute2x128_si256(u0, u4, 0x20));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 1 * 32), _mm256_permute2x128_si256(u1, u5, 0x20));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 2 * 32), _mm256_permute2x128_si256(u2, u6, 0x20));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 3 * 32), _mm256_permute2x128_si256(u3, u7, 0x20));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 4 * 32), _mm256_permute2x128_si256(u0, u4, 0x31));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 5 * 32), _mm256_permute2x128_si256(u1, u5, 0x31));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 6 * 32), _mm256_permute2x128_si256(u2, u6, 0x31));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(d + 7 * 32), _mm256_permute2x128_si256(u3, u7, 0x31));
            }
        }
        for (int r = 0; r < kMR; ++r) {
            uint8_t* d = panel + r * 4;
            if (r >= rows) {
                for (int64_t q = 0; q < kp / 4; ++q) std::memset(d + q * 4 * kMR, 0, 4);
                continue;
            }
            const uint8_t* src = static_cast<const uint8_t*>(g.a) + (i0 + r) * g.lda;
            int64_t kk = kdone;
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

// The float epilogue of one row of a finished block, straight from the accumulators:
// c = fma(a_scale * b_scale, float(acc - comp), bias), then the fp32 side channels.
struct F32Epilogue {
    __m512i comp[3];
    __m512 bs[3], bias[3];
    __mmask16 mask[3];
    float* c;  // row 0, column c0
    int64_t ldc;
    const float* a_scale;  // row 0 (may be null)
    bool has_bias;
    const float* xo;  // row 0 (nout > 0)
    int64_t nout;
    const float* wo;  // column c0
    int64_t n;
};

template <int NP>
inline __attribute__((always_inline)) void f32_row(const F32Epilogue& e, int r, __m512i x0,
                                                   __m512i x1, __m512i x2) {
    const __m512 sr = _mm512_set1_ps(e.a_scale ? e.a_scale[r] : 1.0f);
    const __m512i x[3] = {x0, x1, x2};
#pragma GCC unroll 3
    for (int p = 0; p < NP; ++p) {
        if (!e.mask[p]) continue;
        const __m512 d = _mm512_cvtepi32_ps(_mm512_sub_epi32(x[p], e.comp[p]));
        const __m512 s = _mm512_mul_ps(sr, e.bs[p]);
        __m512 v = e.has_bias ? _mm512_fmadd_ps(s, d, e.bias[p]) : _mm512_mul_ps(s, d);
        for (int64_t o = 0; o < e.nout; ++o)
            v = _mm512_fmadd_ps(_mm512_set1_ps(e.xo[r * e.nout + o]),
                                _mm512_maskz_loadu_ps(e.mask[p], e.wo + o * e.n + p * 16), v);
        _mm512_mask_storeu_ps(e.c + r * e.ldc + p * 16, e.mask[p], v);
    }
}

// Accumulates groups [qb, qe) of 4 k's for rows i0.. (MR) and panels p0.. (NP). first: C is
// written as acc - comp; otherwise (a later k block, int32 output only) acc is added to C.
template <int MR, int NP, bool DIRECT>
void micro(const Int8GemmArgs& g, const uint8_t* ap, int64_t i0, int64_t p0, int64_t j0,
           int64_t j1, int64_t qb, int64_t qe, bool first) {
    static_assert(MR <= kMR || DIRECT, "more than one micro panel of rows needs A in place");
    static_assert(MR * NP <= 24, "at most 24 accumulators");
    static_assert(MR <= 12, "accumulators for 12 rows");
    const int64_t kp = g.kp;
    const int8_t* bp = g.b + p0 * 16 * kp;
    const int64_t pstride = 16 * kp;
    // Named accumulators (an array of 24 zmm would not be kept in registers by every
    // compiler); rows >= MR or panels >= NP are dead code (at most 24 are live: 8 x 3 or
    // 12 x 2).
    const __m512i zero = _mm512_setzero_si512();
    __m512i c0_0 = zero, c0_1 = zero, c0_2 = zero;
    __m512i c1_0 = zero, c1_1 = zero, c1_2 = zero;
    __m512i c2_0 = zero, c2_1 = zero, c2_2 = zero;
    __m512i c3_0 = zero, c3_1 = zero, c3_2 = zero;
    __m512i c4_0 = zero, c4_1 = zero, c4_2 = zero;
    __m512i c5_0 = zero, c5_1 = zero, c5_2 = zero;
    __m512i c6_0 = zero, c6_1 = zero, c6_2 = zero;
    __m512i c7_0 = zero, c7_1 = zero, c7_2 = zero;
    __m512i c8_0 = zero, c8_1 = zero, c8_2 = zero;
    __m512i c9_0 = zero, c9_1 = zero, c9_2 = zero;
    __m512i c10_0 = zero, c10_1 = zero, c10_2 = zero;
    __m512i c11_0 = zero, c11_1 = zero, c11_2 = zero;

    const int8_t* b0p = bp;
    const int8_t* b1p = bp + (NP > 1 ? pstride : 0);
    const int8_t* b2p = bp + (NP > 2 ? 2 * pstride : 0);
    for (int64_t q = qb; q < qe; ++q) {
        const __m512i b0 = _mm512_loadu_si512(reinterpret_cast<const void*>(b0p + q * 64));
        const __m512i b1 = NP > 1 ? _mm512_loadu_si512(reinterpret_cast<const void*>(b1p + q * 64)) : b0;
        const __m512i b2 = NP > 2 ? _mm512_loadu_si512(reinterpret_cast<const void*>(b2p + q * 64)) : b0;
        // packed: [q][row][4]; DIRECT: A itself (uint8 codes, rows lda bytes apart)
        const uint8_t* aq = DIRECT ? ap + q * 4 : ap + q * 4 * kMR;
#define EMBEDRT_ROW(r)                                                         \
        if (MR > r) {                                                          \
            int32_t av;                                                        \
            std::memcpy(&av, aq + (DIRECT ? r * g.lda : r * 4), 4);            \
            const __m512i a = _mm512_set1_epi32(av);                           \
            c##r##_0 = dpbusd(c##r##_0, a, b0);                     \
            if (NP > 1) c##r##_1 = dpbusd(c##r##_1, a, b1);         \
            if (NP > 2) c##r##_2 = dpbusd(c##r##_2, a, b2);         \
        }
        EMBEDRT_ROW(0) EMBEDRT_ROW(1) EMBEDRT_ROW(2) EMBEDRT_ROW(3)
        EMBEDRT_ROW(4) EMBEDRT_ROW(5) EMBEDRT_ROW(6) EMBEDRT_ROW(7)
        EMBEDRT_ROW(8) EMBEDRT_ROW(9) EMBEDRT_ROW(10) EMBEDRT_ROW(11)
#undef EMBEDRT_ROW
    }
    const __m512i comp0 = _mm512_loadu_si512(reinterpret_cast<const void*>(g.comp + p0 * 16));
    const __m512i comp1 = NP > 1 ? _mm512_loadu_si512(reinterpret_cast<const void*>(g.comp + p0 * 16 + 16)) : comp0;
    const __m512i comp2 = NP > 2 ? _mm512_loadu_si512(reinterpret_cast<const void*>(g.comp + p0 * 16 + 32)) : comp0;
    if (!first && j0 <= p0 * 16 && (p0 + NP) * 16 <= j1) {
        // A later k block over whole panels: C += acc straight from registers.
        int32_t* c = g.c32 + i0 * g.ldc + p0 * 16;
#define EMBEDRT_ADD1(r, p, acc)                                                                  \
        {                                                                                       \
            void* dst = reinterpret_cast<void*>(c + r * g.ldc + p * 16);                        \
            _mm512_storeu_si512(dst, _mm512_add_epi32(_mm512_loadu_si512(dst), acc));          \
        }
#define EMBEDRT_ADD(r)                                                                           \
        if (MR > r) {                                                                           \
            EMBEDRT_ADD1(r, 0, c##r##_0)                                                         \
            if (NP > 1) EMBEDRT_ADD1(r, 1, c##r##_1)                                             \
            if (NP > 2) EMBEDRT_ADD1(r, 2, c##r##_2)                                             \
        }
        EMBEDRT_ADD(0) EMBEDRT_ADD(1) EMBEDRT_ADD(2) EMBEDRT_ADD(3)
        EMBEDRT_ADD(4) EMBEDRT_ADD(5) EMBEDRT_ADD(6) EMBEDRT_ADD(7)
        EMBEDRT_ADD(8) EMBEDRT_ADD(9) EMBEDRT_ADD(10) EMBEDRT_ADD(11)
#undef EMBEDRT_ADD
#undef EMBEDRT_ADD1
        return;
    }
    if (g.c32 && j0 <= p0 * 16 && (p0 + NP) * 16 <= j1) {
        // int32 output, every column of the block inside [j0, j1): store straight from registers.
        int32_t* c = g.c32 + i0 * g.ldc + p0 * 16;
#define EMBEDRT_STORE(r)                                                                             \
        if (MR > r) {                                                                                \
            _mm512_storeu_si512(reinterpret_cast<void*>(c + r * g.ldc), _mm512_sub_epi32(c##r##_0, comp0)); \
            if (NP > 1) _mm512_storeu_si512(reinterpret_cast<void*>(c + r * g.ldc + 16), _mm512_sub_epi32(c##r##_1, comp1)); \
            if (NP > 2) _mm512_storeu_si512(reinterpret_cast<void*>(c + r * g.ldc + 32), _mm512_sub_epi32(c##r##_2, comp2)); \
        }
        EMBEDRT_STORE(0) EMBEDRT_STORE(1) EMBEDRT_STORE(2) EMBEDRT_STORE(3)
        EMBEDRT_STORE(4) EMBEDRT_STORE(5) EMBEDRT_STORE(6) EMBEDRT_STORE(7)
        EMBEDRT_STORE(8) EMBEDRT_STORE(9) EMBEDRT_STORE(10) EMBEDRT_STORE(11)
#undef EMBEDRT_STORE
        return;
    }
    if (!g.c32) {
        // Float output: the epilogue straight from the accumulators.
        F32Epilogue e;
        const int64_t c0 = p0 * 16;
        e.comp[0] = comp0;
        e.comp[1] = comp1;
        e.comp[2] = comp2;
        for (int p = 0; p < 3; ++p) {
            const int64_t cp = c0 + 16 * p;
            e.mask[p] = p < NP ? col_mask(j0 > cp ? j0 - cp : 0, j1 - cp < 16 ? j1 - cp : 16) : 0;
            e.bs[p] = g.b_scale ? _mm512_maskz_loadu_ps(e.mask[p], g.b_scale + cp) : _mm512_set1_ps(1.0f);
            e.bias[p] = g.bias ? _mm512_maskz_loadu_ps(e.mask[p], g.bias + cp) : _mm512_setzero_ps();
        }
        e.c = g.cf + i0 * g.ldc + c0;
        e.ldc = g.ldc;
        e.a_scale = g.a_scale ? g.a_scale + i0 : nullptr;
        e.has_bias = g.bias != nullptr;
        e.nout = g.nout;
        e.xo = g.nout ? g.xo + i0 * g.nout : nullptr;
        e.wo = g.nout ? g.wo + c0 : nullptr;
        e.n = g.n;
#define EMBEDRT_F32(r) \
        if (MR > r) f32_row<NP>(e, r, c##r##_0, c##r##_1, c##r##_2);
        EMBEDRT_F32(0) EMBEDRT_F32(1) EMBEDRT_F32(2) EMBEDRT_F32(3)
        EMBEDRT_F32(4) EMBEDRT_F32(5) EMBEDRT_F32(6) EMBEDRT_F32(7)
        EMBEDRT_F32(8) EMBEDRT_F32(9) EMBEDRT_F32(10) EMBEDRT_F32(11)
#undef EMBEDRT_F32
        return;
    }
    // int32 output over part of the block: spill it once (the first k block compensated,
    // a later one added to C) and store the columns of [j0, j1) from memory.
    const __m512i s0 = first ? comp0 : zero, s1 = first ? comp1 : zero, s2 = first ? comp2 : zero;
    alignas(64) int32_t tile[MR][48];
#define EMBEDRT_SPILL(r)                                                                            \
    if (MR > r) {                                                                                   \
        _mm512_store_si512(reinterpret_cast<void*>(&tile[r][0]), _mm512_sub_epi32(c##r##_0, s0));    \
        if (NP > 1) _mm512_store_si512(reinterpret_cast<void*>(&tile[r][16]), _mm512_sub_epi32(c##r##_1, s1)); \
        if (NP > 2) _mm512_store_si512(reinterpret_cast<void*>(&tile[r][32]), _mm512_sub_epi32(c##r##_2, s2)); \
    }
    EMBEDRT_SPILL(0) EMBEDRT_SPILL(1) EMBEDRT_SPILL(2) EMBEDRT_SPILL(3)
    EMBEDRT_SPILL(4) EMBEDRT_SPILL(5) EMBEDRT_SPILL(6) EMBEDRT_SPILL(7)
    EMBEDRT_SPILL(8) EMBEDRT_SPILL(9) EMBEDRT_SPILL(10) EMBEDRT_SPILL(11)
#undef EMBEDRT_SPILL
    for (int p = 0; p < NP; ++p) {
        int64_t c0 = (p0 + p) * 16;
        int64_t lo = j0 > c0 ? j0 - c0 : 0;
        int64_t hi = j1 - c0 < 16 ? j1 - c0 : 16;
        __mmask16 mask = col_mask(lo, hi);
        if (!mask) continue;
        for (int r = 0; r < MR; ++r) {
            int32_t* dst = g.c32 + (i0 + r) * g.ldc + c0;
            __m512i v = _mm512_load_si512(reinterpret_cast<const void*>(&tile[r][p * 16]));
            if (!first) v = _mm512_add_epi32(_mm512_maskz_loadu_epi32(mask, dst), v);
            _mm512_mask_storeu_epi32(dst, mask, v);
        }
    }
}

template <int NP, bool DIRECT>
void micro_rows(const Int8GemmArgs& g, const uint8_t* ap, int64_t i0, int rows, int64_t p0,
                int64_t j0, int64_t j1, int64_t qb, int64_t qe, bool first) {
    switch (rows) {
        case 8: micro<8, NP, DIRECT>(g, ap, i0, p0, j0, j1, qb, qe, first); break;
        case 7: micro<7, NP, DIRECT>(g, ap, i0, p0, j0, j1, qb, qe, first); break;
        case 6: micro<6, NP, DIRECT>(g, ap, i0, p0, j0, j1, qb, qe, first); break;
        case 5: micro<5, NP, DIRECT>(g, ap, i0, p0, j0, j1, qb, qe, first); break;
        case 4: micro<4, NP, DIRECT>(g, ap, i0, p0, j0, j1, qb, qe, first); break;
        case 3: micro<3, NP, DIRECT>(g, ap, i0, p0, j0, j1, qb, qe, first); break;
        case 2: micro<2, NP, DIRECT>(g, ap, i0, p0, j0, j1, qb, qe, first); break;
        default: micro<1, NP, DIRECT>(g, ap, i0, p0, j0, j1, qb, qe, first); break;
    }
}

// 9 to 12 rows of A read in place, in one pass over B: 12 x 32 blocks (24 accumulators), so
// that a short query's token rows stream the weights once, the products overlapping the
// stream, instead of twice (8 rows, then the rest): 12 tokens of all-MiniLM-L6-v2 about 12%
// faster. (16 x 16 blocks for 13 to 16 rows measured slower than two passes of 8 x 48.)
constexpr int kTallRows = 12;

template <int NP>
void micro_tall(const Int8GemmArgs& g, const uint8_t* ap, int rows, int64_t p0, int64_t j0,
                int64_t j1, int64_t qb, int64_t qe, bool first) {
    switch (rows) {
        case 9: micro<9, NP, true>(g, ap, 0, p0, j0, j1, qb, qe, first); break;
        case 10: micro<10, NP, true>(g, ap, 0, p0, j0, j1, qb, qe, first); break;
        case 11: micro<11, NP, true>(g, ap, 0, p0, j0, j1, qb, qe, first); break;
        default: micro<12, NP, true>(g, ap, 0, p0, j0, j1, qb, qe, first); break;
    }
}

void gemm_tall(const Int8GemmArgs& g, const uint8_t* ap, int64_t j0, int64_t j1) {
    const int rows = static_cast<int>(g.m);
    const int64_t pbeg = j0 / 16, pend = (j1 + 15) / 16;
    const int64_t groups = g.kp / 4;
    const int64_t kc = g.c32 ? kKC / 4 : groups;
    for (int64_t p = pbeg; p < pend; p += 2) {
        for (int64_t qb = 0; qb < groups || qb == 0; qb += kc) {
            const int64_t qe = qb + kc < groups ? qb + kc : groups;
            if (pend - p >= 2) micro_tall<2>(g, ap, rows, p, j0, j1, qb, qe, qb == 0);
            else micro_tall<1>(g, ap, rows, p, j0, j1, qb, qe, qb == 0);
            if (groups == 0) break;
        }
    }
}

}  // namespace

void int8_gemm_avx512vnni(const Int8GemmArgs& g, int64_t j0, int64_t j1) {
    if (g.m <= 0 || j1 <= j0) return;
    // uint8 codes with k a multiple of 4 are read in place; anything else is packed first.
    const bool direct = g.a_u8 && g.k % 4 == 0;
    const uint8_t* ap = static_cast<const uint8_t*>(g.a);
    if (direct && g.m > kMR && g.m <= kTallRows) {
        gemm_tall(g, ap, j0, j1);
        return;
    }
    if (!direct) {
        pack_a(g, g.scratch);
        ap = g.scratch;
    }
    const int64_t pbeg = j0 / 16, pend = (j1 + 15) / 16;
    // Column blocks of kNP panels outermost; for int32 output, blocks of kKC k's next (so a
    // B block of 3 x 16 x kKC bytes stays in L1 while all row micro panels stream past it).
    const int64_t groups = g.kp / 4;
    const int64_t kc = g.c32 ? kKC / 4 : groups;
    for (int64_t p = pbeg; p < pend; p += kNP) {
        int np = pend - p < kNP ? int(pend - p) : kNP;
        for (int64_t qb = 0; qb < groups || qb == 0; qb += kc) {
            int64_t qe = qb + kc < groups ? qb + kc : groups;
            for (int64_t i0 = 0; i0 < g.m; i0 += kMR) {
                int rows = g.m - i0 < kMR ? int(g.m - i0) : kMR;
                if (direct) {
                    const uint8_t* a = ap + i0 * g.lda;
                    if (np == 3) micro_rows<3, true>(g, a, i0, rows, p, j0, j1, qb, qe, qb == 0);
                    else if (np == 2) micro_rows<2, true>(g, a, i0, rows, p, j0, j1, qb, qe, qb == 0);
                    else micro_rows<1, true>(g, a, i0, rows, p, j0, j1, qb, qe, qb == 0);
                } else {
                    const uint8_t* a = ap + i0 * g.kp;
                    if (np == 3) micro_rows<3, false>(g, a, i0, rows, p, j0, j1, qb, qe, qb == 0);
                    else if (np == 2) micro_rows<2, false>(g, a, i0, rows, p, j0, j1, qb, qe, qb == 0);
                    else micro_rows<1, false>(g, a, i0, rows, p, j0, j1, qb, qe, qb == 0);
                }
            }
            if (groups == 0) break;
        }
    }
}

}  // namespace embedrt
