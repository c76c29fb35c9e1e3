// AVX2 int8 GEMM without any saturating instruction: A and B are sign-extended to int16 and
// multiplied with vpmaddwd (exact: each pair sum is at most 2 * 128 * 128).
//
// A rows are packed per call as int16 micro panels of kMR rows, [kp / 4][kMR][4] int16, so
// that one 8-byte broadcast gives (a0 a1 a2 a3) repeated. Each B panel (16 columns) is
// widened to int16 once, into L1-sized scratch, and then serves every row micro panel: a
// 32-byte load holds 4 columns x 4 k, vpmaddwd leaves two partial sums per column, which are
// added pairwise (vphaddd) at the end. Register block kMR x 16 (12 accumulators).
#include <immintrin.h>

#include <cstring>

#include "kernels/int8_gemm.h"

namespace embedrt {

namespace {

constexpr int kMR = 3;
// k groups (of 4) per block: the widened B block (16 x 4 kKc int16, 16 KB) and the row panel
// stay in L1.
constexpr int64_t kKc = 128;

void pack_a(const Int8GemmArgs& g, int16_t* dst) {
    const int64_t kp = g.kp, k = g.k;
    const int off = g.a_u8 ? 128 : 0;
    for (int64_t i0 = 0; i0 < g.m; i0 += kMR) {
        int16_t* panel = dst + i0 * kp;
        for (int r = 0; r < kMR; ++r) {
            int16_t* d = panel + r * 4;
            if (i0 + r >= g.m) {
                for (int64_t q = 0; q < kp / 4; ++q) std::memset(d + q * 4 * kMR, 0, 8);
                continue;
            }
            const uint8_t* su = static_cast<const uint8_t*>(g.a) + (i0 + r) * g.lda;
            const int8_t* ss = static_cast<const int8_t*>(g.a) + (i0 + r) * g.lda;
            // 16 k at a time: (codes xor 0x80 for uint8 codes) sign-extended, one group of 4
            // to each 8-byte slot
            const __m128i flip = _mm_set1_epi8(g.a_u8 ? char(0x80) : 0);
            int64_t kk = 0;
            for (; kk + 16 <= k; kk += 16) {
                const __m128i v = _mm_xor_si128(flip, _mm_loadu_si128(reinterpret_cast<const __m128i*>(ss + kk)));
                const __m256i w = _mm256_cvtepi8_epi16(v);
                int16_t* o = d + (kk / 4) * 4 * kMR;
                const __m128i lo = _mm256_castsi256_si128(w), hi = _mm256_extracti128_si256(w, 1);
                _mm_storel_epi64(reinterpret_cast<__m128i*>(o), lo);
                _mm_storel_epi64(reinterpret_cast<__m128i*>(o + 4 * kMR), _mm_unpackhi_epi64(lo, lo));
                _mm_storel_epi64(reinterpret_cast<__m128i*>(o + 8 * kMR), hi);
                _mm_storel_epi64(reinterpret_cast<__m128i*>(o + 12 * kMR), _mm_unpackhi_epi64(hi, hi));
            }
            for (; kk < kp; ++kk) {
                int16_t v = 0;
                if (kk < k) v = g.a_u8 ? int16_t(int(su[kk]) - off) : int16_t(ss[kk]);
                d[(kk / 4) * 4 * kMR + (kk % 4)] = v;
            }
        }
    }
}

// Sums adjacent int32 pairs of x (columns 0-3) and y (columns 4-7) into 8 column sums.
inline __m256i pair_sums(__m256i x, __m256i y) {
    __m256i h = _mm256_hadd_epi32(x, y);  // c0 c1 c4 c5 | c2 c3 c6 c7
    return _mm256_permute4x64_epi64(h, 0xD8);
}

// k groups [q0, q1) of B panel p as int16, [q1 - q0][16][4]: the layout of the int8 panel,
// widened.
void widen_panel(const Int8GemmArgs& g, int64_t p, int64_t q0, int64_t q1, int16_t* dst) {
    const int8_t* bp = g.b + p * 16 * g.kp + q0 * 64;
    const int64_t n = (q1 - q0) * 64;
    for (int64_t t = 0; t < n; t += 16)
        _mm256_store_si256(reinterpret_cast<__m256i*>(dst + t),
                           _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(bp + t))));
}

// Rows i0 .. i0 + MR - 1 x the 16 columns of panel p over k groups [q0, q0 + groups): ap and
// bw point at group q0. A k range split in blocks carries its partial sums in `tile` (int32
// [MR][16]): the first block stores them, the next ones add, the last one finishes.
template <int MR>
void micro(const Int8GemmArgs& g, const int16_t* ap, int64_t i0, int64_t p, const int16_t* bw,
           int64_t groups, int32_t* tile, bool first, bool last, int64_t j0, int64_t j1) {
    // named accumulators (an array of them makes the compiler copy registers every step)
    __m256i c00 = _mm256_setzero_si256(), c01 = c00, c02 = c00, c03 = c00;
    __m256i c10 = c00, c11 = c00, c12 = c00, c13 = c00;
    __m256i c20 = c00, c21 = c00, c22 = c00, c23 = c00;
    const int16_t* aq = ap;
    const int16_t* bq = bw;
    for (int64_t q = 0; q < groups; ++q, aq += 4 * kMR, bq += 64) {
        const __m256i b0 = _mm256_load_si256(reinterpret_cast<const __m256i*>(bq));
        const __m256i b1 = _mm256_load_si256(reinterpret_cast<const __m256i*>(bq + 16));
        const __m256i b2 = _mm256_load_si256(reinterpret_cast<const __m256i*>(bq + 32));
        const __m256i b3 = _mm256_load_si256(reinterpret_cast<const __m256i*>(bq + 48));
#define EMBEDRT_ROW(r)                                                                    \
        if (MR > r) {                                                                     \
            const __m256i a = _mm256_castpd_si256(_mm256_broadcast_sd(                    \
                reinterpret_cast<const double*>(aq + r * 4)));                            \
            c##r##0 = _mm256_add_epi32(c##r##0, _mm256_madd_epi16(a, b0));                \
            c##r##1 = _mm256_add_epi32(c##r##1, _mm256_madd_epi16(a, b1));                \
            c##r##2 = _mm256_add_epi32(c##r##2, _mm256_madd_epi16(a, b2));                \
            c##r##3 = _mm256_add_epi32(c##r##3, _mm256_madd_epi16(a, b3));                \
        }
        EMBEDRT_ROW(0)
        EMBEDRT_ROW(1)
        EMBEDRT_ROW(2)
#undef EMBEDRT_ROW
    }
    __m256i acc[3][4] = {{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}};
    const int64_t c0 = p * 16;
    for (int r = 0; r < MR; ++r) {
        alignas(32) int32_t out[16];
        __m256i lo8 = pair_sums(acc[r][0], acc[r][1]), hi8 = pair_sums(acc[r][2], acc[r][3]);
        if (!first) {
            lo8 = _mm256_add_epi32(lo8, _mm256_load_si256(reinterpret_cast<const __m256i*>(tile + r * 16)));
            hi8 = _mm256_add_epi32(hi8, _mm256_load_si256(reinterpret_cast<const __m256i*>(tile + r * 16 + 8)));
        }
        if (!last) {
            _mm256_store_si256(reinterpret_cast<__m256i*>(tile + r * 16), lo8);
            _mm256_store_si256(reinterpret_cast<__m256i*>(tile + r * 16 + 8), hi8);
            continue;
        }
        _mm256_store_si256(reinterpret_cast<__m256i*>(out), lo8);
        _mm256_store_si256(reinterpret_cast<__m256i*>(out + 8), hi8);
        int64_t lo = j0 > c0 ? j0 - c0 : 0;
        int64_t hi = j1 - c0 < 16 ? j1 - c0 : 16;
        const int64_t i = i0 + r;
        if (g.c32) {
            if (lo == 0 && hi == 16) {
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(g.c32 + i * g.ldc + c0),
                                    _mm256_load_si256(reinterpret_cast<const __m256i*>(out)));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(g.c32 + i * g.ldc + c0 + 8),
                                    _mm256_load_si256(reinterpret_cast<const __m256i*>(out + 8)));
            } else {
                for (int64_t t = lo; t < hi; ++t) g.c32[i * g.ldc + c0 + t] = out[t];
            }
        } else if (lo == 0 && hi == 16) {
            // the same operations as the scalar form below, 8 lanes at a time
            const __m256 as = _mm256_set1_ps(g.a_scale ? g.a_scale[i] : 1.0f);
            for (int h = 0; h < 16; h += 8) {
                const __m256 bs = g.b_scale ? _mm256_loadu_ps(g.b_scale + c0 + h) : _mm256_set1_ps(1.0f);
                const __m256 sc = _mm256_mul_ps(as, bs);
                const __m256 d = _mm256_cvtepi32_ps(_mm256_load_si256(reinterpret_cast<const __m256i*>(out + h)));
                __m256 v = g.bias ? _mm256_fmadd_ps(sc, d, _mm256_loadu_ps(g.bias + c0 + h))
                                  : _mm256_mul_ps(sc, d);
                // the fp32 side channels, in order (see int8_gemm_packed_f32)
                for (int64_t o = 0; o < g.nout; ++o)
                    v = _mm256_fmadd_ps(_mm256_set1_ps(g.xo[i * g.nout + o]),
                                        _mm256_loadu_ps(g.wo + o * g.n + c0 + h), v);
                _mm256_storeu_ps(g.cf + i * g.ldc + c0 + h, v);
            }
        } else {
            const float as = g.a_scale ? g.a_scale[i] : 1.0f;
            for (int64_t t = lo; t < hi; ++t) {
                const int64_t j = c0 + t;
                // Same operations as every other path: one rounding per step, explicit fma.
                __m128 s = _mm_mul_ss(_mm_set_ss(as), _mm_set_ss(g.b_scale ? g.b_scale[j] : 1.0f));
                __m128 d = _mm_cvtsi32_ss(_mm_setzero_ps(), out[t]);
                __m128 v = g.bias ? _mm_fmadd_ss(s, d, _mm_set_ss(g.bias[j])) : _mm_mul_ss(s, d);
                for (int64_t o = 0; o < g.nout; ++o)
                    v = _mm_fmadd_ss(_mm_set_ss(g.xo[i * g.nout + o]), _mm_set_ss(g.wo[o * g.n + j]), v);
                g.cf[i * g.ldc + j] = _mm_cvtss_f32(v);
            }
        }
    }
}

}  // namespace

void int8_gemm_avx2(const Int8GemmArgs& g, int64_t j0, int64_t j1) {
    if (g.m <= 0 || j1 <= j0) return;
    int16_t* ap = reinterpret_cast<int16_t*>(g.scratch);
    pack_a(g, ap);
    // after the packed A (rows rounded up to kMR), 32-byte aligned
    const int64_t rows = (g.m + kMR - 1) / kMR * kMR;
    int16_t* bw = reinterpret_cast<int16_t*>(
        (reinterpret_cast<uintptr_t>(ap + rows * g.kp) + 63) & ~uintptr_t(63));
    // after the widened B block (16 x min(kp, 4 kKc) int16, a multiple of 128 bytes)
    int32_t* tile = reinterpret_cast<int32_t*>(bw + 16 * (g.kp < 4 * kKc ? g.kp : 4 * kKc));
    const int64_t groups = g.kp / 4;
    const int64_t pbeg = j0 / 16, pend = (j1 + 15) / 16;
    for (int64_t p = pbeg; p < pend; ++p) {
        for (int64_t q0 = 0; q0 < groups; q0 += kKc) {
            const int64_t q1 = q0 + kKc < groups ? q0 + kKc : groups;
            widen_panel(g, p, q0, q1, bw);
            const bool first = q0 == 0, last = q1 == groups;
            for (int64_t i0 = 0; i0 < g.m; i0 += kMR) {
                const int16_t* a = ap + i0 * g.kp + q0 * 4 * kMR;
                int32_t* t = tile + i0 * 16;
                const int64_t left = g.m - i0;
                if (left >= 3) micro<3>(g, a, i0, p, bw, q1 - q0, t, first, last, j0, j1);
                else if (left == 2) micro<2>(g, a, i0, p, bw, q1 - q0, t, first, last, j0, j1);
                else micro<1>(g, a, i0, p, bw, q1 - q0, t, first, last, j0, j1);
            }
        }
    }
}

}  // namespace embedrt
