// AVX-512 encoder operations: an 8 x 32 register-blocked fp32 matrix product; the row
// operations come from encoder_ops_generic.inc, vectorized by the compiler for this target.
#include <immintrin.h>

#include "kernels/encoder_ops.h"

namespace embedrt {

#define ENC_FN(name) name##_avx512
#define ENC_OWN_ATTENTION 1
#define ENC_OWN_LAYERNORM 1
#define ENC_OWN_QUANTIZE_GELU 1
#define ENC_OWN_GLU 1
#include "kernels/encoder_ops_generic.inc"

namespace {

template <int MR, int NP>
void sgemm_tile_avx512(const float* a, int64_t lda, const float* b0, const float* b1, int64_t k,
                       float* c, int64_t ldc, int w0, int w1) {
    __m512 acc[MR][NP];
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 2
        for (int p = 0; p < NP; ++p) acc[r][p] = _mm512_setzero_ps();
    for (int64_t kk = 0; kk < k; ++kk) {
        __m512 bv0 = _mm512_loadu_ps(b0 + kk * 16);
        __m512 bv1 = NP > 1 ? _mm512_loadu_ps(b1 + kk * 16) : bv0;
#pragma GCC unroll 8
        for (int r = 0; r < MR; ++r) {
            __m512 av = _mm512_set1_ps(a[r * lda + kk]);
            acc[r][0] = _mm512_fmadd_ps(av, bv0, acc[r][0]);
            if (NP > 1) acc[r][NP - 1] = _mm512_fmadd_ps(av, bv1, acc[r][NP - 1]);
        }
    }
    __mmask16 m0 = static_cast<__mmask16>(w0 >= 16 ? 0xFFFF : (1u << w0) - 1u);
    __mmask16 m1 = static_cast<__mmask16>(w1 >= 16 ? 0xFFFF : (1u << w1) - 1u);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
        _mm512_mask_storeu_ps(c + r * ldc, m0, acc[r][0]);
        if (NP > 1) _mm512_mask_storeu_ps(c + r * ldc + 16, m1, acc[r][NP - 1]);
    }
}

template <int NP>
void sgemm_rows_avx512(const float* a, int64_t m, int64_t lda, const float* b0, const float* b1,
                       int64_t k, float* c, int64_t ldc, int w0, int w1) {
    int64_t i = 0;
    for (; i + 8 <= m; i += 8)
        sgemm_tile_avx512<8, NP>(a + i * lda, lda, b0, b1, k, c + i * ldc, ldc, w0, w1);
    const float* ai = a + i * lda;
    float* ci = c + i * ldc;
    switch (m - i) {
        case 7: sgemm_tile_avx512<7, NP>(ai, lda, b0, b1, k, ci, ldc, w0, w1); break;
        case 6: sgemm_tile_avx512<6, NP>(ai, lda, b0, b1, k, ci, ldc, w0, w1); break;
        case 5: sgemm_tile_avx512<5, NP>(ai, lda, b0, b1, k, ci, ldc, w0, w1); break;
        case 4: sgemm_tile_avx512<4, NP>(ai, lda, b0, b1, k, ci, ldc, w0, w1); break;
        case 3: sgemm_tile_avx512<3, NP>(ai, lda, b0, b1, k, ci, ldc, w0, w1); break;
        case 2: sgemm_tile_avx512<2, NP>(ai, lda, b0, b1, k, ci, ldc, w0, w1); break;
        case 1: sgemm_tile_avx512<1, NP>(ai, lda, b0, b1, k, ci, ldc, w0, w1); break;
        default: break;
    }
}


// exp(x) on 16 lanes (same polynomial as gen_exp).
inline __m512 exp512(__m512 x) {
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.3f)), _mm512_set1_ps(88.3f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 y = _mm512_fmadd_ps(_mm512_mul_ps(p, r), r, _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
    return _mm512_scalef_ps(y, n);
}

inline __mmask16 tail_mask(int64_t left) {
    return static_cast<__mmask16>(left >= 16 ? 0xFFFF : (1u << left) - 1u);
}

// In-register transpose of a 16 x 16 float block: r[i] lane j <- r[j] lane i.
inline void transpose16(__m512 r[16]) {
    __m512 t[16];
    // 4 x 4 transposes inside each 128-bit lane, per group of 4 rows.
#pragma GCC unroll 4
    for (int g = 0; g < 4; ++g) {
        __m512 a0 = _mm512_unpacklo_ps(r[4 * g], r[4 * g + 1]);
        __m512 a1 = _mm512_unpackhi_ps(r[4 * g], r[4 * g + 1]);
        __m512 a2 = _mm512_unpacklo_ps(r[4 * g + 2], r[4 * g + 3]);
        __m512 a3 = _mm512_unpackhi_ps(r[4 * g + 2], r[4 * g + 3]);
        t[4 * g] = _mm512_shuffle_ps(a0, a2, 0x44);
        t[4 * g + 1] = _mm512_shuffle_ps(a0, a2, 0xEE);
        t[4 * g + 2] = _mm512_shuffle_ps(a1, a3, 0x44);
        t[4 * g + 3] = _mm512_shuffle_ps(a1, a3, 0xEE);
    }
    // t[4g + j] lane l holds rows 4g..4g+3 of column 4l + j: transpose the 128-bit lanes.
#pragma GCC unroll 4
    for (int j = 0; j < 4; ++j) {
        __m512 u0 = _mm512_shuffle_f32x4(t[j], t[4 + j], 0x44);
        __m512 u1 = _mm512_shuffle_f32x4(t[j], t[4 + j], 0xEE);
        __m512 u2 = _mm512_shuffle_f32x4(t[8 + j], t[12 + j], 0x44);
        __m512 u3 = _mm512_shuffle_f32x4(t[8 + j], t[12 + j], 0xEE);
        r[j] = _mm512_shuffle_f32x4(u0, u2, 0x88);
        r[4 + j] = _mm512_shuffle_f32x4(u0, u2, 0xDD);
        r[8 + j] = _mm512_shuffle_f32x4(u1, u3, 0x88);
        r[12 + j] = _mm512_shuffle_f32x4(u1, u3, 0xDD);
    }
}

// R query rows [i0, i0 + R) of one head: scores (with each row's running maximum), then
// e = exp(s - max) and its sum, then the context sum_j e_j v_j scaled by 1 / sum at the store.
template <int R>
void attention_rows(const float* q, const float* v, int64_t ld, int64_t L, int64_t Lp, int64_t d,
                    const float* kt, const float* bias, int64_t ldb, float* S, float* out,
                    int64_t ldo) {
    __m512 mx[R];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) mx[r] = _mm512_set1_ps(-3.4e38f);
    for (int64_t j = 0; j < Lp; j += 16) {
        __m512 acc[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) acc[r] = _mm512_setzero_ps();
        for (int64_t c = 0; c < d; ++c) {
            __m512 kv = _mm512_loadu_ps(kt + c * Lp + j);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r)
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(q[r * ld + c]), kv, acc[r]);
        }
        const __mmask16 m = tail_mask(L - j);
        if (bias) {  // masked: no lane past L is read
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r)
                acc[r] = _mm512_add_ps(acc[r], _mm512_maskz_loadu_ps(m, bias + r * ldb + j));
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            _mm512_storeu_ps(S + r * Lp + j, acc[r]);
            mx[r] = _mm512_mask_max_ps(mx[r], m, mx[r], acc[r]);
        }
    }
    float inv[R];
    for (int r = 0; r < R; ++r) {
        float* sr = S + r * Lp;
        const __m512 vmax = _mm512_set1_ps(_mm512_reduce_max_ps(mx[r]));
        __m512 sum = _mm512_setzero_ps();
        for (int64_t j = 0; j < L; j += 16) {
            const __mmask16 m = tail_mask(L - j);
            __m512 e = _mm512_maskz_mov_ps(m, exp512(_mm512_sub_ps(_mm512_loadu_ps(sr + j), vmax)));
            sum = _mm512_add_ps(sum, e);
            _mm512_storeu_ps(sr + j, e);
        }
        inv[r] = 1.0f / _mm512_reduce_add_ps(sum);
    }
    for (int64_t c0 = 0; c0 < d; c0 += 32) {
        __mmask16 m0 = tail_mask(d - c0), m1 = tail_mask(d - c0 - 16 > 0 ? d - c0 - 16 : 0);
        __m512 a0[R], a1[R];
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm512_setzero_ps();
        for (int64_t j = 0; j < L; ++j) {
            const float* vr = v + j * ld + c0;
            __m512 v0 = _mm512_maskz_loadu_ps(m0, vr);
            __m512 v1 = _mm512_maskz_loadu_ps(m1, vr + 16);
#pragma GCC unroll 8
            for (int r = 0; r < R; ++r) {
                __m512 p = _mm512_set1_ps(S[r * Lp + j]);
                a0[r] = _mm512_fmadd_ps(p, v0, a0[r]);
                a1[r] = _mm512_fmadd_ps(p, v1, a1[r]);
            }
        }
#pragma GCC unroll 8
        for (int r = 0; r < R; ++r) {
            const __m512 sc = _mm512_set1_ps(inv[r]);
            _mm512_mask_storeu_ps(out + r * ldo + c0, m0, _mm512_mul_ps(a0[r], sc));
            _mm512_mask_storeu_ps(out + r * ldo + c0 + 16, m1, _mm512_mul_ps(a1[r], sc));
        }
    }
}

}  // namespace

void enc_attention_head_avx512(const float* q, const float* k, const float* v, int64_t ld,
                               int64_t L, int64_t d, const float* bias, int64_t ldb, float* out,
                               int64_t ldo, float* scratch) {
    const int64_t Lp = (L + 15) / 16 * 16;
    float* kt = scratch;       // [d][Lp]
    float* S = kt + d * Lp;    // [8][Lp]
    // K^T in 16 x 16 blocks through registers; tokens past L read as zeros, so the
    // padding columns come out zero.
    for (int64_t t0 = 0; t0 < L; t0 += 16) {
        const int64_t nt = L - t0 < 16 ? L - t0 : 16;
        for (int64_t c0 = 0; c0 < d; c0 += 16) {
            const __mmask16 cm = tail_mask(d - c0);
            __m512 r[16];
#pragma GCC unroll 16
            for (int i = 0; i < 16; ++i)
                r[i] = i < nt ? _mm512_maskz_loadu_ps(cm, k + (t0 + i) * ld + c0) : _mm512_setzero_ps();
            transpose16(r);
            const int64_t nc = d - c0 < 16 ? d - c0 : 16;
            for (int64_t i = 0; i < nc; ++i) _mm512_storeu_ps(kt + (c0 + i) * Lp + t0, r[i]);
        }
    }
    int64_t i = 0;
    for (; i + 8 <= L; i += 8)
        attention_rows<8>(q + i * ld, v, ld, L, Lp, d, kt, bias ? bias + i * ldb : nullptr, ldb, S,
                          out + i * ldo, ldo);
    const float* qi = q + i * ld;
    const float* bi = bias ? bias + i * ldb : nullptr;
    float* oi = out + i * ldo;
    switch (L - i) {
        case 7: attention_rows<7>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        case 6: attention_rows<6>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        case 5: attention_rows<5>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        case 4: attention_rows<4>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        case 3: attention_rows<3>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        case 2: attention_rows<2>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        case 1: attention_rows<1>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        default: break;
    }
}

namespace {

// q = round(x * mul * 127 / a) + 128, a = max|x * mul| (found by the caller); returns a / 127.
float quantize_known_max(const float* x, int64_t n, const float* mul, float a, uint8_t* q) {
    if (!(a > 0.0f)) {
        for (int64_t j = 0; j < n; ++j) q[j] = 128;
        return 0.0f;
    }
    __m512 inv = _mm512_set1_ps(127.0f / a);
    __m512i lo = _mm512_set1_epi32(-127), hi = _mm512_set1_epi32(127), off = _mm512_set1_epi32(128);
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 m = tail_mask(n - j);
        __m512 t = _mm512_maskz_loadu_ps(m, x + j);
        if (mul) t = _mm512_mul_ps(t, _mm512_maskz_loadu_ps(m, mul + j));
        __m512i i = _mm512_cvtps_epi32(_mm512_mul_ps(t, inv));
        i = _mm512_add_epi32(_mm512_min_epi32(_mm512_max_epi32(i, lo), hi), off);
        _mm512_mask_cvtusepi32_storeu_epi8(q + j, m, i);
    }
    return a / 127.0f;
}

}  // namespace

float enc_quantize_row_avx512(const float* x, int64_t n, const float* shift, const float* mul,
                              uint8_t* q, float* tmp) {
    const float* t = x;
    if (shift || mul) {
        for (int64_t j = 0; j < n; j += 16) {
            __mmask16 m = tail_mask(n - j);
            __m512 v = _mm512_maskz_loadu_ps(m, x + j);
            if (shift) v = _mm512_sub_ps(v, _mm512_maskz_loadu_ps(m, shift + j));
            if (mul) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, mul + j));
            _mm512_mask_storeu_ps(tmp + j, m, v);
        }
        t = tmp;
    }
    __m512 amax = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 m = tail_mask(n - j);
        amax = _mm512_max_ps(amax, _mm512_abs_ps(_mm512_maskz_loadu_ps(m, t + j)));
    }
    return quantize_known_max(t, n, nullptr, _mm512_reduce_max_ps(amax), q);
}

namespace {

// GELU (erf form) of 16 lanes: erf(z) = z P(z^2) / Q(z^2) on z clamped to [-3.925, 3.925]
// (a rational fit, absolute error below 4e-7 in float), the division by a refined reciprocal.
inline __m512 gelu16(__m512 v) {
    const __m512 c = _mm512_set1_ps(3.925f);
    __m512 z = _mm512_mul_ps(v, _mm512_set1_ps(0.70710678118654752f));
    z = _mm512_min_ps(_mm512_max_ps(z, _mm512_sub_ps(_mm512_setzero_ps(), c)), c);
    const __m512 z2 = _mm512_mul_ps(z, z);
    __m512 p = _mm512_set1_ps(2.086939730361337e-06f);
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(0.00028648643638007343f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(0.0037359942216426134f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(0.052660588175058365f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(0.18941472470760345f));
    p = _mm512_fmadd_ps(p, z2, _mm512_set1_ps(1.1283791065216064f));
    __m512 q = _mm512_set1_ps(3.8558413507416844e-05f);
    q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(0.001159676699899137f));
    q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(0.014906398020684719f));
    q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(0.1137390062212944f));
    q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(0.5011966824531555f));
    q = _mm512_fmadd_ps(q, z2, _mm512_set1_ps(1.0f));
    __m512 r = _mm512_rcp14_ps(q);  // one Newton step: relative error ~2^-28
    r = _mm512_mul_ps(r, _mm512_fnmadd_ps(q, r, _mm512_set1_ps(2.0f)));
    const __m512 e = _mm512_mul_ps(_mm512_mul_ps(z, p), r);
    const __m512 h = _mm512_mul_ps(_mm512_set1_ps(0.5f), v);
    return _mm512_fmadd_ps(h, e, h);
}

}  // namespace

void enc_gelu_row_avx512(float* x, int64_t n) {
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 m = tail_mask(n - j);
        _mm512_mask_storeu_ps(x + j, m, gelu16(_mm512_maskz_loadu_ps(m, x + j)));
    }
}


float enc_gelu_quantize_row_avx512(float* x, int64_t n, const float* mul, uint8_t* q) {
    __m512 amax = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
        __mmask16 m = tail_mask(n - j);
        __m512 g = gelu16(_mm512_maskz_loadu_ps(m, x + j));
        _mm512_mask_storeu_ps(x + j, m, g);
        if (mul) g = _mm512_mul_ps(g, _mm512_maskz_loadu_ps(m, mul + j));
        amax = _mm512_max_ps(amax, _mm512_abs_ps(g));
    }
    return quantize_known_max(x, n, mul, _mm512_reduce_max_ps(amax), q);
}

void enc_sgemm_packed_avx512(const float* a, int64_t m, int64_t lda, const float* bp, int64_t n,
                             int64_t k, int64_t p0, int64_t p1, float* c, int64_t ldc) {
    // Row blocks keep a slice of A in cache while the panels stream past.
    const int64_t kRowBlock = 64;
    for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
        int64_t mi = m - i0 < kRowBlock ? m - i0 : kRowBlock;
        const float* ai = a + i0 * lda;
        float* ci = c + i0 * ldc;
        int64_t p = p0;
        for (; p + 2 <= p1; p += 2) {
            int64_t j = p * 16;
            int w0 = static_cast<int>(n - j < 16 ? n - j : 16);
            int w1 = static_cast<int>(n - j - 16 < 16 ? n - j - 16 : 16);
            sgemm_rows_avx512<2>(ai, mi, lda, bp + p * 16 * k, bp + (p + 1) * 16 * k, k, ci + j, ldc,
                                 w0, w1);
        }
        if (p < p1) {
            int64_t j = p * 16;
            int w0 = static_cast<int>(n - j < 16 ? n - j : 16);
            sgemm_rows_avx512<1>(ai, mi, lda, bp + p * 16 * k, nullptr, k, ci + j, ldc, w0, 0);
        }
    }
}

namespace {

// LayerNorm of y + res into out; returns max |out * mul| when want_max (mul may be null).
inline float layernorm512(const float* y, const float* res, int64_t n, const float* g,
                          const float* b, float eps, float* out, bool want_max, const float* mul) {
    // v = y + res into out, with the sum; then the centred sum of squares; then the affine map.
    __m512 s0 = _mm512_setzero_ps(), s1 = s0;
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m512 v0 = _mm512_loadu_ps(y + j), v1 = _mm512_loadu_ps(y + j + 16);
        if (res) {
            v0 = _mm512_add_ps(v0, _mm512_loadu_ps(res + j));
            v1 = _mm512_add_ps(v1, _mm512_loadu_ps(res + j + 16));
        }
        _mm512_storeu_ps(out + j, v0);
        _mm512_storeu_ps(out + j + 16, v1);
        s0 = _mm512_add_ps(s0, v0);
        s1 = _mm512_add_ps(s1, v1);
    }
    for (; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        __m512 v = _mm512_maskz_loadu_ps(m, y + j);
        if (res) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m, res + j));
        _mm512_mask_storeu_ps(out + j, m, v);
        s0 = _mm512_add_ps(s0, v);
    }
    const float mean = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / static_cast<float>(n);
    const __m512 vm = _mm512_set1_ps(mean);
    s0 = _mm512_setzero_ps();
    s1 = s0;
    for (j = 0; j + 32 <= n; j += 32) {
        __m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(out + j), vm);
        __m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(out + j + 16), vm);
        s0 = _mm512_fmadd_ps(d0, d0, s0);
        s1 = _mm512_fmadd_ps(d1, d1, s1);
    }
    for (; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        __m512 d = _mm512_maskz_sub_ps(m, _mm512_maskz_loadu_ps(m, out + j), vm);
        s0 = _mm512_fmadd_ps(d, d, s0);
    }
    const float var = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1)) / static_cast<float>(n);
    const __m512 rstd = _mm512_set1_ps(1.0f / __builtin_sqrtf(var + eps));
    __m512 amax = _mm512_setzero_ps();
    for (j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        __m512 d = _mm512_mul_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, out + j), vm), rstd);
        __m512 r = _mm512_fmadd_ps(d, _mm512_maskz_loadu_ps(m, g + j), _mm512_maskz_loadu_ps(m, b + j));
        _mm512_mask_storeu_ps(out + j, m, r);
        if (want_max) {
            if (mul) r = _mm512_mul_ps(r, _mm512_maskz_loadu_ps(m, mul + j));
            amax = _mm512_max_ps(amax, _mm512_abs_ps(r));
        }
    }
    return want_max ? _mm512_reduce_max_ps(amax) : 0.0f;
}

}  // namespace

void enc_add_layernorm_row_avx512(const float* y, const float* res, int64_t n, const float* g,
                                  const float* b, float eps, float* out) {
    layernorm512(y, res, n, g, b, eps, out, false, nullptr);
}

float enc_add_layernorm_quantize_row_avx512(const float* y, const float* res, int64_t n,
                                            const float* g, const float* b, float eps, float* out,
                                            const float* mul, uint8_t* q) {
    return quantize_known_max(out, n, mul, layernorm512(y, res, n, g, b, eps, out, true, mul), q);
}

namespace {

// SwiGLU's up * silu(gate), silu(g) = g / (1 + exp(-g)) (exp512 clamps: a large |g| gives g or
// 0, never NaN); GeGLU's gelu(x) * gate.
inline __m512 swiglu16(__m512 up, __m512 g) {
    const __m512 t = _mm512_add_ps(_mm512_set1_ps(1.0f), exp512(_mm512_sub_ps(_mm512_setzero_ps(), g)));
    return _mm512_mul_ps(up, _mm512_div_ps(g, t));
}

inline __m512 geglu16(__m512 x, __m512 gate) { return _mm512_mul_ps(gelu16(x), gate); }

// out = glu(a, b), 16 lanes at a time (out may be a: each block is read before it is
// written); returns max |out * mul| (mul may be null). The lanes past n load as 0 and give 0.
template <bool kSilu>
inline float glu_row512(const float* a, const float* b, int64_t n, float* out, const float* mul) {
    __m512 amax = _mm512_setzero_ps();
    for (int64_t j = 0; j < n; j += 16) {
        const __mmask16 m = tail_mask(n - j);
        const __m512 x = _mm512_maskz_loadu_ps(m, a + j), y = _mm512_maskz_loadu_ps(m, b + j);
        __m512 v = kSilu ? swiglu16(x, y) : geglu16(x, y);
        _mm512_mask_storeu_ps(out + j, m, v);
        if (mul) v = _mm512_mul_ps(v, _mm512_maskz_loadu_ps(m, mul + j));
        amax = _mm512_max_ps(amax, _mm512_abs_ps(v));
    }
    return _mm512_reduce_max_ps(amax);
}

}  // namespace

void enc_swiglu_row_avx512(const float* up, const float* gate, int64_t n, float* out) {
    glu_row512<true>(up, gate, n, out, nullptr);
}

float enc_swiglu_quantize_row_avx512(const float* up, const float* gate, int64_t n, float* out,
                                     const float* mul, uint8_t* q) {
    return quantize_known_max(out, n, mul, glu_row512<true>(up, gate, n, out, mul), q);
}

void enc_geglu_row_avx512(const float* x, const float* gate, int64_t n, float* out) {
    glu_row512<false>(x, gate, n, out, nullptr);
}

float enc_geglu_quantize_row_avx512(const float* x, const float* gate, int64_t n, float* out,
                                    const float* mul, uint8_t* q) {
    return quantize_known_max(out, n, mul, glu_row512<false>(x, gate, n, out, mul), q);
}

}  // namespace embedrt
