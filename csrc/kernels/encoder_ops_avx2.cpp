// AVX2 + FMA encoder operations on ymm (8 floats), the design of encoder_ops_avx512.cpp:
// a 6 x 16 register-blocked fp32 matrix product; one attention head with K transposed in
// 8 x 8 register blocks, scores for 6 query rows x 16 keys at a time, a vectorized exp and the
// context scaled by 1 / sum at the store; LayerNorm (fused with the int8 quantization, the
// row's maximum found in the LayerNorm pass), erf GELU (fused likewise) and the quantization.
// Row tails use masked loads and stores (vmaskmovps), which never touch memory past the row;
// enc_bias_row comes from encoder_ops_generic.inc, vectorized by the compiler for this target.
#include <immintrin.h>

#include "kernels/encoder_ops.h"

namespace embedrt {

#define ENC_FN(name) name##_avx2
#define ENC_OWN_ATTENTION 1
#define ENC_OWN_LAYERNORM 1
#define ENC_OWN_QUANTIZE_GELU 1
#define ENC_OWN_GLU 1
#include "kernels/encoder_ops_generic.inc"

namespace {

// Lanes l < left set (left may be <= 0 or >= 8), as a vmaskmovps mask.
inline __m256i tail_mask(int64_t left) {
    const int n = left <= 0 ? 0 : left >= 8 ? 8 : static_cast<int>(left);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// The accumulators live in registers only while every loop over them is unrolled: an array
// indexed in a rolled loop is kept in memory, and each k step then stores all twelve.
template <int MR>
void sgemm_tile_avx2(const float* a, int64_t lda, const float* b, int64_t k, float* c, int64_t ldc,
                     int w) {
    __m256 lo[MR], hi[MR];
#pragma GCC unroll 6
    for (int r = 0; r < MR; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
    for (int64_t kk = 0; kk < k; ++kk) {
        __m256 b0 = _mm256_loadu_ps(b + kk * 16);
        __m256 b1 = _mm256_loadu_ps(b + kk * 16 + 8);
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
            __m256 av = _mm256_broadcast_ss(a + r * lda + kk);
            lo[r] = _mm256_fmadd_ps(av, b0, lo[r]);
            hi[r] = _mm256_fmadd_ps(av, b1, hi[r]);
        }
    }
    if (w == 16) {
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
            _mm256_storeu_ps(c + r * ldc, lo[r]);
            _mm256_storeu_ps(c + r * ldc + 8, hi[r]);
        }
    } else {
        const __m256i m0 = tail_mask(w), m1 = tail_mask(w - 8);
#pragma GCC unroll 6
        for (int r = 0; r < MR; ++r) {
            _mm256_maskstore_ps(c + r * ldc, m0, lo[r]);
            _mm256_maskstore_ps(c + r * ldc + 8, m1, hi[r]);
        }
    }
}

inline __m256 load_m(const float* p, __m256i m) { return _mm256_maskload_ps(p, m); }
inline void store_m(float* p, __m256i m, __m256 v) { _mm256_maskstore_ps(p, m, v); }
inline __m256 zero_past(__m256i m, __m256 v) { return _mm256_and_ps(_mm256_castsi256_ps(m), v); }
inline __m256 abs8(__m256 v) { return _mm256_andnot_ps(_mm256_set1_ps(-0.0f), v); }

inline float reduce_add(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

inline float reduce_max(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// exp(x) on 8 lanes (same polynomial as gen_exp; 2^n built in the exponent field, which the
// clamp keeps in the normal range).
inline __m256 exp8(__m256 x) {
    x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                     _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.9875691500e-4f);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 y = _mm256_fmadd_ps(_mm256_mul_ps(p, r), r, _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    return _mm256_mul_ps(y, _mm256_castsi256_ps(e));
}

// In-register transpose of an 8 x 8 float block: r[i] lane j <- r[j] lane i.
inline void transpose8(__m256 r[8]) {
    const __m256 t0 = _mm256_unpacklo_ps(r[0], r[1]), t1 = _mm256_unpackhi_ps(r[0], r[1]);
    const __m256 t2 = _mm256_unpacklo_ps(r[2], r[3]), t3 = _mm256_unpackhi_ps(r[2], r[3]);
    const __m256 t4 = _mm256_unpacklo_ps(r[4], r[5]), t5 = _mm256_unpackhi_ps(r[4], r[5]);
    const __m256 t6 = _mm256_unpacklo_ps(r[6], r[7]), t7 = _mm256_unpackhi_ps(r[6], r[7]);
    // u[c] (c < 4): rows 0..3 of columns c and c + 4 in its two 128-bit halves; u[4 + c] rows 4..7.
    const __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    const __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    const __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    const __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    r[0] = _mm256_permute2f128_ps(u0, u4, 0x20);
    r[1] = _mm256_permute2f128_ps(u1, u5, 0x20);
    r[2] = _mm256_permute2f128_ps(u2, u6, 0x20);
    r[3] = _mm256_permute2f128_ps(u3, u7, 0x20);
    r[4] = _mm256_permute2f128_ps(u0, u4, 0x31);
    r[5] = _mm256_permute2f128_ps(u1, u5, 0x31);
    r[6] = _mm256_permute2f128_ps(u2, u6, 0x31);
    r[7] = _mm256_permute2f128_ps(u3, u7, 0x31);
}

// The context of R query rows over NV vectors of 8 columns starting at c0 (NV * 8 columns, the
// last vector masked by m1 when !full): sum_j e_j v_j, times inv[r] at the store.
template <int R, int NV>
inline void attention_context(const float* v, int64_t ld, int64_t L, int64_t Lp, const float* S,
                              const float* inv, float* out, int64_t ldo, int64_t c0, bool full,
                              __m256i m1) {
    __m256 a0[R], a1[R];
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
    const float* vr = v + c0;
    if (full) {
        for (int64_t j = 0; j < L; ++j, vr += ld) {
            const __m256 v0 = _mm256_loadu_ps(vr);
            const __m256 v1 = NV > 1 ? _mm256_loadu_ps(vr + 8) : v0;
#pragma GCC unroll 6
            for (int r = 0; r < R; ++r) {
                const __m256 p = _mm256_broadcast_ss(S + r * Lp + j);
                a0[r] = _mm256_fmadd_ps(p, v0, a0[r]);
                if (NV > 1) a1[r] = _mm256_fmadd_ps(p, v1, a1[r]);
            }
        }
    } else {
        const __m256i m0 = NV > 1 ? _mm256_set1_epi32(-1) : m1;
        for (int64_t j = 0; j < L; ++j, vr += ld) {
            const __m256 v0 = load_m(vr, m0);
            const __m256 v1 = NV > 1 ? load_m(vr + 8, m1) : v0;
#pragma GCC unroll 6
            for (int r = 0; r < R; ++r) {
                const __m256 p = _mm256_broadcast_ss(S + r * Lp + j);
                a0[r] = _mm256_fmadd_ps(p, v0, a0[r]);
                if (NV > 1) a1[r] = _mm256_fmadd_ps(p, v1, a1[r]);
            }
        }
    }
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
        const __m256 sc = _mm256_set1_ps(inv[r]);
        float* o = out + r * ldo + c0;
        if (full) {
            _mm256_storeu_ps(o, _mm256_mul_ps(a0[r], sc));
            if (NV > 1) _mm256_storeu_ps(o + 8, _mm256_mul_ps(a1[r], sc));
        } else if (NV > 1) {
            _mm256_storeu_ps(o, _mm256_mul_ps(a0[r], sc));
            store_m(o + 8, m1, _mm256_mul_ps(a1[r], sc));
        } else {
            store_m(o, m1, _mm256_mul_ps(a0[r], sc));
        }
    }
}

// R query rows [i0, i0 + R) of one head: scores (with each row's running maximum), then
// e = exp(s - max) and its sum, then the context sum_j e_j v_j scaled by 1 / sum at the store.
template <int R>
void attention_rows(const float* q, const float* v, int64_t ld, int64_t L, int64_t Lp, int64_t d,
                    const float* kt, const float* bias, int64_t ldb, float* S, float* out,
                    int64_t ldo) {
    const __m256 lowest = _mm256_set1_ps(-3.4e38f);
    __m256 mx[R];
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) mx[r] = lowest;
    for (int64_t j = 0; j < Lp; j += 16) {
        __m256 a0[R], a1[R];
#pragma GCC unroll 6
        for (int r = 0; r < R; ++r) a0[r] = a1[r] = _mm256_setzero_ps();
        const float* kc = kt + j;
        for (int64_t c = 0; c < d; ++c, kc += Lp) {
            const __m256 k0 = _mm256_loadu_ps(kc), k1 = _mm256_loadu_ps(kc + 8);
#pragma GCC unroll 6
            for (int r = 0; r < R; ++r) {
                const __m256 qv = _mm256_broadcast_ss(q + r * ld + c);
                a0[r] = _mm256_fmadd_ps(qv, k0, a0[r]);
                a1[r] = _mm256_fmadd_ps(qv, k1, a1[r]);
            }
        }
        if (j + 16 <= L) {
            if (bias) {
#pragma GCC unroll 6
                for (int r = 0; r < R; ++r) {
                    a0[r] = _mm256_add_ps(a0[r], _mm256_loadu_ps(bias + r * ldb + j));
                    a1[r] = _mm256_add_ps(a1[r], _mm256_loadu_ps(bias + r * ldb + j + 8));
                }
            }
#pragma GCC unroll 6
            for (int r = 0; r < R; ++r) {
                _mm256_storeu_ps(S + r * Lp + j, a0[r]);
                _mm256_storeu_ps(S + r * Lp + j + 8, a1[r]);
                mx[r] = _mm256_max_ps(mx[r], _mm256_max_ps(a0[r], a1[r]));
            }
        } else {
            // the last block: lanes past L are left out of the maximum, and no bias past L is read
            const __m256i m0 = tail_mask(L - j), m1 = tail_mask(L - j - 8);
            if (bias) {
#pragma GCC unroll 6
                for (int r = 0; r < R; ++r) {
                    a0[r] = _mm256_add_ps(a0[r], load_m(bias + r * ldb + j, m0));
                    a1[r] = _mm256_add_ps(a1[r], load_m(bias + r * ldb + j + 8, m1));
                }
            }
#pragma GCC unroll 6
            for (int r = 0; r < R; ++r) {
                _mm256_storeu_ps(S + r * Lp + j, a0[r]);
                _mm256_storeu_ps(S + r * Lp + j + 8, a1[r]);
                const __m256 b0 = _mm256_blendv_ps(lowest, a0[r], _mm256_castsi256_ps(m0));
                const __m256 b1 = _mm256_blendv_ps(lowest, a1[r], _mm256_castsi256_ps(m1));
                mx[r] = _mm256_max_ps(mx[r], _mm256_max_ps(b0, b1));
            }
        }
    }
    float inv[R];
    for (int r = 0; r < R; ++r) {
        float* sr = S + r * Lp;
        const __m256 vmax = _mm256_set1_ps(reduce_max(mx[r]));
        __m256 sum = _mm256_setzero_ps();
        int64_t j = 0;
        for (; j + 8 <= L; j += 8) {
            const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(sr + j), vmax));
            sum = _mm256_add_ps(sum, e);
            _mm256_storeu_ps(sr + j, e);
        }
        if (j < L) {  // S holds Lp >= j + 8 columns
            const __m256 e = zero_past(tail_mask(L - j), exp8(_mm256_sub_ps(_mm256_loadu_ps(sr + j), vmax)));
            sum = _mm256_add_ps(sum, e);
            _mm256_storeu_ps(sr + j, e);
        }
        inv[r] = 1.0f / reduce_add(sum);
    }
    const __m256i all = _mm256_set1_epi32(-1);
    int64_t c0 = 0;
    for (; c0 + 16 <= d; c0 += 16)
        attention_context<R, 2>(v, ld, L, Lp, S, inv, out, ldo, c0, true, all);
    if (d - c0 > 8)
        attention_context<R, 2>(v, ld, L, Lp, S, inv, out, ldo, c0, false, tail_mask(d - c0 - 8));
    else if (d - c0 == 8)
        attention_context<R, 1>(v, ld, L, Lp, S, inv, out, ldo, c0, true, all);
    else if (d > c0)
        attention_context<R, 1>(v, ld, L, Lp, S, inv, out, ldo, c0, false, tail_mask(d - c0));
}

}  // namespace

void enc_attention_head_avx2(const float* q, const float* k, const float* v, int64_t ld, int64_t L,
                             int64_t d, const float* bias, int64_t ldb, float* out, int64_t ldo,
                             float* scratch) {
    const int64_t Lp = (L + 15) / 16 * 16;
    float* kt = scratch;     // [d][Lp]
    float* S = kt + d * Lp;  // [6][Lp] (enc_attention_scratch leaves room for 8)
    // K^T in 8 x 8 blocks through registers; tokens past L read as zeros, so the padding
    // columns up to Lp come out zero.
    for (int64_t t0 = 0; t0 < Lp; t0 += 8) {
        const int64_t nt = L - t0 < 0 ? 0 : L - t0 < 8 ? L - t0 : 8;
        for (int64_t c0 = 0; c0 < d; c0 += 8) {
            const bool full = d - c0 >= 8;
            const __m256i cm = tail_mask(d - c0);
            __m256 r[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; ++i) {
                const float* src = k + (t0 + i) * ld + c0;
                r[i] = i >= nt ? _mm256_setzero_ps() : full ? _mm256_loadu_ps(src) : load_m(src, cm);
            }
            transpose8(r);
            const int64_t nc = full ? 8 : d - c0;
            for (int64_t i = 0; i < nc; ++i) _mm256_storeu_ps(kt + (c0 + i) * Lp + t0, r[i]);
        }
    }
    int64_t i = 0;
    for (; i + 6 <= L; i += 6)
        attention_rows<6>(q + i * ld, v, ld, L, Lp, d, kt, bias ? bias + i * ldb : nullptr, ldb, S,
                          out + i * ldo, ldo);
    const float* qi = q + i * ld;
    const float* bi = bias ? bias + i * ldb : nullptr;
    float* oi = out + i * ldo;
    switch (L - i) {
        case 5: attention_rows<5>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        case 4: attention_rows<4>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        case 3: attention_rows<3>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        case 2: attention_rows<2>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        case 1: attention_rows<1>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        default: break;
    }
}

namespace {

// Codes of 8 int32 values (already rounded): clamp to [-127, 127], + 128, as 8 bytes in the
// low half.
inline __m128i codes8(__m256i i) {
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    const __m128i b = _mm_max_epi8(_mm_packs_epi16(w, w), _mm_set1_epi8(-127));
    return _mm_xor_si128(b, _mm_set1_epi8(static_cast<char>(0x80)));
}

// q = round(x * mul * 127 / a) + 128, a = max|x * mul| (found by the caller); returns a / 127.
// Rounding by vcvtps2dq (the MXCSR default, to nearest even), as the other paths round.
float quantize_known_max(const float* x, int64_t n, const float* mul, float a, uint8_t* q) {
    if (!(a > 0.0f)) {
        for (int64_t j = 0; j < n; ++j) q[j] = 128;
        return 0.0f;
    }
    const __m256 inv = _mm256_set1_ps(127.0f / a);
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256 t0 = _mm256_loadu_ps(x + j), t1 = _mm256_loadu_ps(x + j + 8);
        __m256 t2 = _mm256_loadu_ps(x + j + 16), t3 = _mm256_loadu_ps(x + j + 24);
        if (mul) {
            t0 = _mm256_mul_ps(t0, _mm256_loadu_ps(mul + j));
            t1 = _mm256_mul_ps(t1, _mm256_loadu_ps(mul + j + 8));
            t2 = _mm256_mul_ps(t2, _mm256_loadu_ps(mul + j + 16));
            t3 = _mm256_mul_ps(t3, _mm256_loadu_ps(mul + j + 24));
        }
        const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(t0, inv));
        const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(t1, inv));
        const __m256i i2 = _mm256_cvtps_epi32(_mm256_mul_ps(t2, inv));
        const __m256i i3 = _mm256_cvtps_epi32(_mm256_mul_ps(t3, inv));
        // int16 then int8 with saturation (127 caps the top), per 128-bit half: the 4-byte
        // groups come out as i0 i1 i2 i3 (lanes 0..3) | i0 i1 i2 i3 (lanes 4..7)
        __m256i b = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
        b = _mm256_max_epi8(b, _mm256_set1_epi8(-127));
        b = _mm256_xor_si256(b, _mm256_set1_epi8(static_cast<char>(0x80)));
        b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + j), b);
    }
    for (; j + 8 <= n; j += 8) {
        __m256 t = _mm256_loadu_ps(x + j);
        if (mul) t = _mm256_mul_ps(t, _mm256_loadu_ps(mul + j));
        _mm_storel_epi64(reinterpret_cast<__m128i*>(q + j), codes8(_mm256_cvtps_epi32(_mm256_mul_ps(t, inv))));
    }
    if (j < n) {
        const __m256i m = tail_mask(n - j);
        __m256 t = load_m(x + j, m);
        if (mul) t = _mm256_mul_ps(t, load_m(mul + j, m));
        alignas(16) uint8_t buf[16];
        _mm_store_si128(reinterpret_cast<__m128i*>(buf), codes8(_mm256_cvtps_epi32(_mm256_mul_ps(t, inv))));
        for (int64_t l = 0; l < n - j; ++l) q[j + l] = buf[l];
    }
    return a / 127.0f;
}

}  // namespace

float enc_quantize_row_avx2(const float* x, int64_t n, const float* shift, const float* mul,
                            uint8_t* q, float* tmp) {
    // t = (x - shift) * mul into tmp when either is given, its max |t| in the same pass
    const float* t = x;
    __m256 amax = _mm256_setzero_ps();
    int64_t j = 0;
    if (shift || mul) {
        for (; j + 8 <= n; j += 8) {
            __m256 v = _mm256_loadu_ps(x + j);
            if (shift) v = _mm256_sub_ps(v, _mm256_loadu_ps(shift + j));
            if (mul) v = _mm256_mul_ps(v, _mm256_loadu_ps(mul + j));
            _mm256_storeu_ps(tmp + j, v);
            amax = _mm256_max_ps(amax, abs8(v));
        }
        if (j < n) {
            const __m256i m = tail_mask(n - j);
            __m256 v = load_m(x + j, m);
            if (shift) v = _mm256_sub_ps(v, load_m(shift + j, m));
            if (mul) v = _mm256_mul_ps(v, load_m(mul + j, m));
            store_m(tmp + j, m, v);
            amax = _mm256_max_ps(amax, abs8(v));
        }
        t = tmp;
    } else {
        __m256 amax1 = amax;
        for (; j + 16 <= n; j += 16) {
            amax = _mm256_max_ps(amax, abs8(_mm256_loadu_ps(x + j)));
            amax1 = _mm256_max_ps(amax1, abs8(_mm256_loadu_ps(x + j + 8)));
        }
        for (; j + 8 <= n; j += 8) amax = _mm256_max_ps(amax, abs8(_mm256_loadu_ps(x + j)));
        if (j < n) amax = _mm256_max_ps(amax, abs8(load_m(x + j, tail_mask(n - j))));
        amax = _mm256_max_ps(amax, amax1);
    }
    return quantize_known_max(t, n, nullptr, reduce_max(amax), q);
}

namespace {

// GELU (erf form) of 8 lanes: erf(z) = z P(z^2) / Q(z^2) on z clamped to [-3.925, 3.925]
// (a rational fit, absolute error below 4e-7 in float), the division by a reciprocal refined
// by one Newton step (vrcpps has relative error below 1.5 * 2^-12 on every x86 CPU, so the
// refined one below 2^-22 before rounding).
inline __m256 gelu8(__m256 v) {
    const __m256 c = _mm256_set1_ps(3.925f);
    __m256 z = _mm256_mul_ps(v, _mm256_set1_ps(0.70710678118654752f));
    z = _mm256_min_ps(_mm256_max_ps(z, _mm256_set1_ps(-3.925f)), c);
    const __m256 z2 = _mm256_mul_ps(z, z);
    __m256 p = _mm256_set1_ps(2.086939730361337e-06f);
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(0.00028648643638007343f));
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(0.0037359942216426134f));
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(0.052660588175058365f));
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(0.18941472470760345f));
    p = _mm256_fmadd_ps(p, z2, _mm256_set1_ps(1.1283791065216064f));
    __m256 qq = _mm256_set1_ps(3.8558413507416844e-05f);
    qq = _mm256_fmadd_ps(qq, z2, _mm256_set1_ps(0.001159676699899137f));
    qq = _mm256_fmadd_ps(qq, z2, _mm256_set1_ps(0.014906398020684719f));
    qq = _mm256_fmadd_ps(qq, z2, _mm256_set1_ps(0.1137390062212944f));
    qq = _mm256_fmadd_ps(qq, z2, _mm256_set1_ps(0.5011966824531555f));
    qq = _mm256_fmadd_ps(qq, z2, _mm256_set1_ps(1.0f));
    __m256 r = _mm256_rcp_ps(qq);
    r = _mm256_mul_ps(r, _mm256_fnmadd_ps(qq, r, _mm256_set1_ps(2.0f)));
    const __m256 e = _mm256_mul_ps(_mm256_mul_ps(z, p), r);
    const __m256 h = _mm256_mul_ps(_mm256_set1_ps(0.5f), v);
    return _mm256_fmadd_ps(h, e, h);
}

}  // namespace

void enc_gelu_row_avx2(float* x, int64_t n) {
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) _mm256_storeu_ps(x + j, gelu8(_mm256_loadu_ps(x + j)));
    if (j < n) {
        const __m256i m = tail_mask(n - j);
        store_m(x + j, m, gelu8(load_m(x + j, m)));
    }
}

float enc_gelu_quantize_row_avx2(float* x, int64_t n, const float* mul, uint8_t* q) {
    __m256 amax = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 g = gelu8(_mm256_loadu_ps(x + j));
        _mm256_storeu_ps(x + j, g);
        if (mul) g = _mm256_mul_ps(g, _mm256_loadu_ps(mul + j));
        amax = _mm256_max_ps(amax, abs8(g));
    }
    if (j < n) {
        const __m256i m = tail_mask(n - j);
        __m256 g = gelu8(load_m(x + j, m));  // gelu(0) = 0 in the lanes past n
        store_m(x + j, m, g);
        if (mul) g = _mm256_mul_ps(g, load_m(mul + j, m));
        amax = _mm256_max_ps(amax, abs8(g));
    }
    return quantize_known_max(x, n, mul, reduce_max(amax), q);
}

void enc_sgemm_packed_avx2(const float* a, int64_t m, int64_t lda, const float* bp, int64_t n,
                           int64_t k, int64_t p0, int64_t p1, float* c, int64_t ldc) {
    const int64_t kRowBlock = 48;
    for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
        int64_t mi = m - i0 < kRowBlock ? m - i0 : kRowBlock;
        for (int64_t p = p0; p < p1; ++p) {
            int64_t j = p * 16;
            int w = static_cast<int>(n - j < 16 ? n - j : 16);
            const float* b = bp + p * 16 * k;
            int64_t i = 0;
            for (; i + 6 <= mi; i += 6)
                sgemm_tile_avx2<6>(a + (i0 + i) * lda, lda, b, k, c + (i0 + i) * ldc + j, ldc, w);
            const float* ai = a + (i0 + i) * lda;
            float* ci = c + (i0 + i) * ldc + j;
            switch (mi - i) {
                case 5: sgemm_tile_avx2<5>(ai, lda, b, k, ci, ldc, w); break;
                case 4: sgemm_tile_avx2<4>(ai, lda, b, k, ci, ldc, w); break;
                case 3: sgemm_tile_avx2<3>(ai, lda, b, k, ci, ldc, w); break;
                case 2: sgemm_tile_avx2<2>(ai, lda, b, k, ci, ldc, w); break;
                case 1: sgemm_tile_avx2<1>(ai, lda, b, k, ci, ldc, w); break;
                default: break;
            }
        }
    }
}

namespace {

// LayerNorm of y + res into out; returns max |out * mul| when want_max (mul may be null).
inline float layernorm256(const float* y, const float* res, int64_t n, const float* g,
                          const float* b, float eps, float* out, bool want_max, const float* mul) {
    // v = y + res into out, with the sum; then the centred sum of squares; then the affine map.
    __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    int64_t j = 0;
    for (; j + 32 <= n; j += 32) {
        __m256 v0 = _mm256_loadu_ps(y + j), v1 = _mm256_loadu_ps(y + j + 8);
        __m256 v2 = _mm256_loadu_ps(y + j + 16), v3 = _mm256_loadu_ps(y + j + 24);
        if (res) {
            v0 = _mm256_add_ps(v0, _mm256_loadu_ps(res + j));
            v1 = _mm256_add_ps(v1, _mm256_loadu_ps(res + j + 8));
            v2 = _mm256_add_ps(v2, _mm256_loadu_ps(res + j + 16));
            v3 = _mm256_add_ps(v3, _mm256_loadu_ps(res + j + 24));
        }
        _mm256_storeu_ps(out + j, v0);
        _mm256_storeu_ps(out + j + 8, v1);
        _mm256_storeu_ps(out + j + 16, v2);
        _mm256_storeu_ps(out + j + 24, v3);
        s0 = _mm256_add_ps(s0, v0);
        s1 = _mm256_add_ps(s1, v1);
        s2 = _mm256_add_ps(s2, v2);
        s3 = _mm256_add_ps(s3, v3);
    }
    for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_loadu_ps(y + j);
        if (res) v = _mm256_add_ps(v, _mm256_loadu_ps(res + j));
        _mm256_storeu_ps(out + j, v);
        s0 = _mm256_add_ps(s0, v);
    }
    const __m256i mt = tail_mask(n - j);  // the last n % 8 floats
    const int64_t jt = j;
    if (jt < n) {
        __m256 v = load_m(y + j, mt);
        if (res) v = _mm256_add_ps(v, load_m(res + j, mt));
        store_m(out + j, mt, v);
        s1 = _mm256_add_ps(s1, v);
    }
    const float mean =
        reduce_add(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))) / static_cast<float>(n);
    const __m256 vm = _mm256_set1_ps(mean);
    s0 = s1 = s2 = s3 = _mm256_setzero_ps();
    for (j = 0; j + 32 <= n; j += 32) {
        const __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(out + j), vm);
        const __m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(out + j + 8), vm);
        const __m256 d2 = _mm256_sub_ps(_mm256_loadu_ps(out + j + 16), vm);
        const __m256 d3 = _mm256_sub_ps(_mm256_loadu_ps(out + j + 24), vm);
        s0 = _mm256_fmadd_ps(d0, d0, s0);
        s1 = _mm256_fmadd_ps(d1, d1, s1);
        s2 = _mm256_fmadd_ps(d2, d2, s2);
        s3 = _mm256_fmadd_ps(d3, d3, s3);
    }
    for (; j + 8 <= n; j += 8) {
        const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(out + j), vm);
        s0 = _mm256_fmadd_ps(d, d, s0);
    }
    if (jt < n) {
        const __m256 d = zero_past(mt, _mm256_sub_ps(load_m(out + jt, mt), vm));
        s1 = _mm256_fmadd_ps(d, d, s1);
    }
    const float var =
        reduce_add(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3))) / static_cast<float>(n);
    const __m256 rstd = _mm256_set1_ps(1.0f / __builtin_sqrtf(var + eps));
    __m256 amax0 = _mm256_setzero_ps(), amax1 = amax0;
    for (j = 0; j + 16 <= n; j += 16) {
        const __m256 d0 = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(out + j), vm), rstd);
        const __m256 d1 = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(out + j + 8), vm), rstd);
        __m256 r0 = _mm256_fmadd_ps(d0, _mm256_loadu_ps(g + j), _mm256_loadu_ps(b + j));
        __m256 r1 = _mm256_fmadd_ps(d1, _mm256_loadu_ps(g + j + 8), _mm256_loadu_ps(b + j + 8));
        _mm256_storeu_ps(out + j, r0);
        _mm256_storeu_ps(out + j + 8, r1);
        if (want_max) {
            if (mul) {
                r0 = _mm256_mul_ps(r0, _mm256_loadu_ps(mul + j));
                r1 = _mm256_mul_ps(r1, _mm256_loadu_ps(mul + j + 8));
            }
            amax0 = _mm256_max_ps(amax0, abs8(r0));
            amax1 = _mm256_max_ps(amax1, abs8(r1));
        }
    }
    for (; j + 8 <= n; j += 8) {
        const __m256 d = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(out + j), vm), rstd);
        __m256 r = _mm256_fmadd_ps(d, _mm256_loadu_ps(g + j), _mm256_loadu_ps(b + j));
        _mm256_storeu_ps(out + j, r);
        if (want_max) {
            if (mul) r = _mm256_mul_ps(r, _mm256_loadu_ps(mul + j));
            amax0 = _mm256_max_ps(amax0, abs8(r));
        }
    }
    if (j < n) {
        const __m256 d = _mm256_mul_ps(_mm256_sub_ps(load_m(out + j, mt), vm), rstd);
        __m256 r = _mm256_fmadd_ps(d, load_m(g + j, mt), load_m(b + j, mt));
        store_m(out + j, mt, r);
        if (want_max) {  // lanes past n are 0: g and b load as 0 there
            if (mul) r = _mm256_mul_ps(r, load_m(mul + j, mt));
            amax1 = _mm256_max_ps(amax1, abs8(r));
        }
    }
    return want_max ? reduce_max(_mm256_max_ps(amax0, amax1)) : 0.0f;
}

}  // namespace

void enc_add_layernorm_row_avx2(const float* y, const float* res, int64_t n, const float* g,
                                const float* b, float eps, float* out) {
    layernorm256(y, res, n, g, b, eps, out, false, nullptr);
}

float enc_add_layernorm_quantize_row_avx2(const float* y, const float* res, int64_t n,
                                          const float* g, const float* b, float eps, float* out,
                                          const float* mul, uint8_t* q) {
    return quantize_known_max(out, n, mul, layernorm256(y, res, n, g, b, eps, out, true, mul), q);
}

namespace {

// SwiGLU's up * silu(gate), silu(g) = g / (1 + exp(-g)) (exp8 clamps: a large |g| gives g or 0,
// never NaN); GeGLU's gelu(x) * gate.
inline __m256 swiglu8(__m256 up, __m256 g) {
    const __m256 t = _mm256_add_ps(_mm256_set1_ps(1.0f), exp8(_mm256_sub_ps(_mm256_setzero_ps(), g)));
    return _mm256_mul_ps(up, _mm256_div_ps(g, t));
}

template <bool kSilu>
inline __m256 glu8(__m256 a, __m256 b) { return kSilu ? swiglu8(a, b) : _mm256_mul_ps(gelu8(a), b); }

// out = glu(a, b), 8 lanes at a time (out may be a: each block is read before it is written);
// returns max |out * mul| (mul may be null). The lanes past n load as 0 and give 0.
template <bool kSilu>
inline float glu_row256(const float* a, const float* b, int64_t n, float* out, const float* mul) {
    __m256 amax = _mm256_setzero_ps();
    int64_t j = 0;
    for (; j + 8 <= n; j += 8) {
        __m256 v = glu8<kSilu>(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j));
        _mm256_storeu_ps(out + j, v);
        if (mul) v = _mm256_mul_ps(v, _mm256_loadu_ps(mul + j));
        amax = _mm256_max_ps(amax, abs8(v));
    }
    if (j < n) {
        const __m256i m = tail_mask(n - j);
        __m256 v = glu8<kSilu>(load_m(a + j, m), load_m(b + j, m));
        store_m(out + j, m, v);
        if (mul) v = _mm256_mul_ps(v, load_m(mul + j, m));
        amax = _mm256_max_ps(amax, abs8(v));
    }
    return reduce_max(amax);
}

}  // namespace

void enc_swiglu_row_avx2(const float* up, const float* gate, int64_t n, float* out) {
    glu_row256<true>(up, gate, n, out, nullptr);
}

float enc_swiglu_quantize_row_avx2(const float* up, const float* gate, int64_t n, float* out,
                                   const float* mul, uint8_t* q) {
    return quantize_known_max(out, n, mul, glu_row256<true>(up, gate, n, out, mul), q);
}

void enc_geglu_row_avx2(const float* x, const float* gate, int64_t n, float* out) {
    glu_row256<false>(x, gate, n, out, nullptr);
}

float enc_geglu_quantize_row_avx2(const float* x, const float* gate, int64_t n, float* out,
                                  const float* mul, uint8_t* q) {
    return quantize_known_max(out, n, mul, glu_row256<false>(x, gate, n, out, mul), q);
}

}  // namespace embedrt
