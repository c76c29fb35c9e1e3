// AVX2 int8 GEMM without any saturating instruction: A and B are sign-extended to int16 and
// multiplied with vpmaddwd (exact: each pair sum is at most 2 * 128 * 128).
//
// A rows are packed per call as int16 micro panels of 2 rows, [kp / 4][2][4] int16, so that
// one 8-byte broadcast gives (a0 a1 a2 a3) repeated. A 16-byte slice of a B panel (4 columns
// x 4 k) sign-extends to 16 int16; vpmaddwd leaves two partial sums per column, which are
// added pairwise (vphaddd) at the end.
#include <immintrin.h>

#include <cstring>

#include "kernels/int8_gemm.h"

namespace embedrt {

namespace {

constexpr int kMR = 2;

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
            for (int64_t kk = 0; kk < kp; ++kk) {
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

template <int MR>
void micro(const Int8GemmArgs& g, const int16_t* ap, int64_t i0, int64_t p, int64_t j0,
           int64_t j1) {
    const int64_t kp = g.kp;
    const int64_t groups = kp / 4;
    const int8_t* bp = g.b + p * 16 * kp;
    __m256i acc[MR][4];
    for (int r = 0; r < MR; ++r)
        for (int s = 0; s < 4; ++s) acc[r][s] = _mm256_setzero_si256();
    for (int64_t q = 0; q < groups; ++q) {
        __m256i a[MR];
        for (int r = 0; r < MR; ++r) {
            long long av;
            std::memcpy(&av, ap + q * 4 * kMR + r * 4, 8);
            a[r] = _mm256_set1_epi64x(av);
        }
        for (int s = 0; s < 4; ++s) {
            __m256i b = _mm256_cvtepi8_epi16(
                _mm_loadu_si128(reinterpret_cast<const __m128i*>(bp + q * 64 + s * 16)));
            for (int r = 0; r < MR; ++r)
                acc[r][s] = _mm256_add_epi32(acc[r][s], _mm256_madd_epi16(a[r], b));
        }
    }
    const int64_t c0 = p * 16;
    for (int r = 0; r < MR; ++r) {
        alignas(32) int32_t out[16];
        _mm256_store_si256(reinterpret_cast<__m256i*>(out), pair_sums(acc[r][0], acc[r][1]));
        _mm256_store_si256(reinterpret_cast<__m256i*>(out + 8), pair_sums(acc[r][2], acc[r][3]));
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
        } else {
            const float as = g.a_scale ? g.a_scale[i] : 1.0f;
            for (int64_t t = lo; t < hi; ++t) {
                const int64_t j = c0 + t;
                // Same operations as every other path: one rounding per step, explicit fma.
                __m128 s = _mm_mul_ss(_mm_set_ss(as), _mm_set_ss(g.b_scale ? g.b_scale[j] : 1.0f));
                __m128 d = _mm_cvtsi32_ss(_mm_setzero_ps(), out[t]);
                __m128 v = g.bias ? _mm_fmadd_ss(s, d, _mm_set_ss(g.bias[j])) : _mm_mul_ss(s, d);
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
    const int64_t pbeg = j0 / 16, pend = (j1 + 15) / 16;
    for (int64_t p = pbeg; p < pend; ++p) {
        for (int64_t i0 = 0; i0 < g.m; i0 += kMR) {
            const int16_t* a = ap + i0 * g.kp;
            if (g.m - i0 >= 2) micro<2>(g, a, i0, p, j0, j1);
            else micro<1>(g, a, i0, p, j0, j1);
        }
    }
}

}  // namespace embedrt
