// NEON (aarch64) encoder operations: a 4 x 16 register-blocked fp32 matrix product with
// fused multiply-adds by lane, and an attention head that works on 4 query rows at a time
// with the same tile for the scores; the other row operations come from
// encoder_ops_generic.inc, vectorized by the compiler for this target. Compiled only for
// aarch64 builds.
#include <arm_neon.h>

#include "kernels/encoder_ops.h"

namespace embedrt {

#define ENC_FN(name) name##_neon
#define ENC_OWN_ATTENTION 1
#include "kernels/encoder_ops_generic.inc"

namespace {

// Rows [0, MR) of A times one panel of 16 columns (row kk at b + kk * ldb; ldb = 16 for the
// packed layout) into C (w <= 16 columns). Four k at a time: one 4-float load per row of A
// feeds 16 multiply-adds by lane.
template <int MR>
void sgemm_tile_neon(const float* a, int64_t lda, const float* b, int64_t ldb, int64_t k, float* c,
                     int64_t ldc, int w) {
    float32x4_t acc[MR][4];
#pragma GCC unroll 4
    for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
        for (int q = 0; q < 4; ++q) acc[r][q] = vdupq_n_f32(0.0f);
    int64_t kk = 0;
    for (; kk + 4 <= k; kk += 4) {
        float32x4_t av[MR];
#pragma GCC unroll 4
        for (int r = 0; r < MR; ++r) av[r] = vld1q_f32(a + r * lda + kk);
        const float* bk = b + kk * ldb;
#define EMBEDRT_NEON_SGEMM_STEP(L)                                                  \
    {                                                                               \
        const float32x4_t b0 = vld1q_f32(bk + (L) * ldb);                           \
        const float32x4_t b1 = vld1q_f32(bk + (L) * ldb + 4);                       \
        const float32x4_t b2 = vld1q_f32(bk + (L) * ldb + 8);                       \
        const float32x4_t b3 = vld1q_f32(bk + (L) * ldb + 12);                      \
        _Pragma("GCC unroll 4") for (int r = 0; r < MR; ++r) {                      \
            acc[r][0] = vfmaq_laneq_f32(acc[r][0], b0, av[r], L);                   \
            acc[r][1] = vfmaq_laneq_f32(acc[r][1], b1, av[r], L);                   \
            acc[r][2] = vfmaq_laneq_f32(acc[r][2], b2, av[r], L);                   \
            acc[r][3] = vfmaq_laneq_f32(acc[r][3], b3, av[r], L);                   \
        }                                                                           \
    }
        EMBEDRT_NEON_SGEMM_STEP(0)
        EMBEDRT_NEON_SGEMM_STEP(1)
        EMBEDRT_NEON_SGEMM_STEP(2)
        EMBEDRT_NEON_SGEMM_STEP(3)
#undef EMBEDRT_NEON_SGEMM_STEP
    }
    for (; kk < k; ++kk) {  // the last k % 4
        const float* bk = b + kk * ldb;
        const float32x4_t b0 = vld1q_f32(bk), b1 = vld1q_f32(bk + 4);
        const float32x4_t b2 = vld1q_f32(bk + 8), b3 = vld1q_f32(bk + 12);
#pragma GCC unroll 4
        for (int r = 0; r < MR; ++r) {
            const float s = a[r * lda + kk];
            acc[r][0] = vfmaq_n_f32(acc[r][0], b0, s);
            acc[r][1] = vfmaq_n_f32(acc[r][1], b1, s);
            acc[r][2] = vfmaq_n_f32(acc[r][2], b2, s);
            acc[r][3] = vfmaq_n_f32(acc[r][3], b3, s);
        }
    }
    if (w == 16) {
#pragma GCC unroll 4
        for (int r = 0; r < MR; ++r)
#pragma GCC unroll 4
            for (int q = 0; q < 4; ++q) vst1q_f32(c + r * ldc + 4 * q, acc[r][q]);
    } else {
        float buf[16];
        for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
            for (int q = 0; q < 4; ++q) vst1q_f32(buf + 4 * q, acc[r][q]);
            for (int l = 0; l < w; ++l) c[r * ldc + l] = buf[l];
        }
    }
}

}  // namespace

void enc_sgemm_packed_neon(const float* a, int64_t m, int64_t lda, const float* bp, int64_t n,
                           int64_t k, int64_t p0, int64_t p1, float* c, int64_t ldc) {
    // Row blocks keep a slice of A in cache while the panels stream past.
    const int64_t kRowBlock = 48;
    for (int64_t i0 = 0; i0 < m; i0 += kRowBlock) {
        const int64_t mi = m - i0 < kRowBlock ? m - i0 : kRowBlock;
        for (int64_t p = p0; p < p1; ++p) {
            const int64_t j = p * 16;
            const int w = static_cast<int>(n - j < 16 ? n - j : 16);
            const float* b = bp + p * 16 * k;
            int64_t i = 0;
            for (; i + 4 <= mi; i += 4)
                sgemm_tile_neon<4>(a + (i0 + i) * lda, lda, b, 16, k, c + (i0 + i) * ldc + j, ldc, w);
            const float* ai = a + (i0 + i) * lda;
            float* ci = c + (i0 + i) * ldc + j;
            switch (mi - i) {
                case 3: sgemm_tile_neon<3>(ai, lda, b, 16, k, ci, ldc, w); break;
                case 2: sgemm_tile_neon<2>(ai, lda, b, 16, k, ci, ldc, w); break;
                case 1: sgemm_tile_neon<1>(ai, lda, b, 16, k, ci, ldc, w); break;
                default: break;
            }
        }
    }
}

namespace {

// exp(x) on 4 lanes (the polynomial of gen_exp), the input clamped to the float range.
inline float32x4_t exp4(float32x4_t x) {
    x = vminq_f32(vmaxq_f32(x, vdupq_n_f32(-87.3f)), vdupq_n_f32(88.3f));
    const float32x4_t n = vrndnq_f32(vmulq_n_f32(x, 1.44269504088896341f));
    float32x4_t r = vfmsq_f32(x, n, vdupq_n_f32(0.693359375f));
    r = vfmsq_f32(r, n, vdupq_n_f32(-2.12194440e-4f));
    float32x4_t p = vdupq_n_f32(1.9875691500e-4f);
    p = vfmaq_f32(vdupq_n_f32(1.3981999507e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(8.3334519073e-3f), p, r);
    p = vfmaq_f32(vdupq_n_f32(4.1665795894e-2f), p, r);
    p = vfmaq_f32(vdupq_n_f32(1.6666665459e-1f), p, r);
    p = vfmaq_f32(vdupq_n_f32(5.0000001201e-1f), p, r);
    const float32x4_t y = vfmaq_f32(vaddq_f32(r, vdupq_n_f32(1.0f)), vmulq_f32(p, r), r);
    // 2^n from the exponent bits (n is in [-126, 127] after the clamp)
    const int32x4_t e = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(n), vdupq_n_s32(127)), 23);
    return vmulq_f32(y, vreinterpretq_f32_s32(e));
}

// Row r of the probabilities: e = exp(s - max) over the L scores in place (the padding up to
// the next multiple of 4 set to zero); returns 1 / sum e.
inline float softmax_row(float* s, int64_t L) {
    float32x4_t mx = vdupq_n_f32(-3.4e38f);
    int64_t j = 0;
    for (; j + 4 <= L; j += 4) mx = vmaxq_f32(mx, vld1q_f32(s + j));
    float m = vmaxvq_f32(mx);
    for (; j < L; ++j) m = s[j] > m ? s[j] : m;
    const float32x4_t vm = vdupq_n_f32(m);
    float32x4_t sum = vdupq_n_f32(0.0f);
    for (j = 0; j < L; j += 4) {  // s has room up to a multiple of 16 >= L
        vst1q_f32(s + j, exp4(vsubq_f32(vld1q_f32(s + j), vm)));
        for (int64_t t = L; t < j + 4; ++t) s[t] = 0.0f;
        sum = vaddq_f32(sum, vld1q_f32(s + j));
    }
    return 1.0f / vaddvq_f32(sum);
}

// R query rows: out[r] = (sum_j p[r][j] v_j) * inv[r], with p in S (row stride Lp).
// Columns of V in blocks of 16, then 4, then one at a time.
template <int R>
void attention_context(const float* S, int64_t Lp, const float* inv, const float* v, int64_t ld,
                       int64_t L, int64_t d, float* out, int64_t ldo) {
    int64_t c0 = 0;
    for (; c0 + 16 <= d; c0 += 16) {
        float32x4_t acc[R][4];
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
            for (int q = 0; q < 4; ++q) acc[r][q] = vdupq_n_f32(0.0f);
        for (int64_t j = 0; j < L; ++j) {
            const float* vr = v + j * ld + c0;
            const float32x4_t v0 = vld1q_f32(vr), v1 = vld1q_f32(vr + 4);
            const float32x4_t v2 = vld1q_f32(vr + 8), v3 = vld1q_f32(vr + 12);
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r) {
                const float p = S[r * Lp + j];
                acc[r][0] = vfmaq_n_f32(acc[r][0], v0, p);
                acc[r][1] = vfmaq_n_f32(acc[r][1], v1, p);
                acc[r][2] = vfmaq_n_f32(acc[r][2], v2, p);
                acc[r][3] = vfmaq_n_f32(acc[r][3], v3, p);
            }
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
            for (int q = 0; q < 4; ++q)
                vst1q_f32(out + r * ldo + c0 + 4 * q, vmulq_n_f32(acc[r][q], inv[r]));
    }
    for (; c0 + 4 <= d; c0 += 4) {
        float32x4_t acc[R];
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) acc[r] = vdupq_n_f32(0.0f);
        for (int64_t j = 0; j < L; ++j) {
            const float32x4_t v0 = vld1q_f32(v + j * ld + c0);
#pragma GCC unroll 4
            for (int r = 0; r < R; ++r) acc[r] = vfmaq_n_f32(acc[r], v0, S[r * Lp + j]);
        }
#pragma GCC unroll 4
        for (int r = 0; r < R; ++r) vst1q_f32(out + r * ldo + c0, vmulq_n_f32(acc[r], inv[r]));
    }
    for (; c0 < d; ++c0) {
        for (int r = 0; r < R; ++r) {
            float o = 0.0f;
            for (int64_t j = 0; j < L; ++j) o += S[r * Lp + j] * v[j * ld + c0];
            out[r * ldo + c0] = o * inv[r];
        }
    }
}

// R query rows [i, i + R) of one head: the scores against K^T (kt, [d][Lp], zero padded
// columns) with the matrix-product tile, the softmax, then the context.
template <int R>
void attention_rows(const float* q, const float* v, int64_t ld, int64_t L, int64_t Lp, int64_t d,
                    const float* kt, const float* bias, int64_t ldb, float* S, float* out,
                    int64_t ldo) {
    for (int64_t j = 0; j < Lp; j += 16) sgemm_tile_neon<R>(q, ld, kt + j, Lp, d, S + j, Lp, 16);
    if (bias) {
        for (int r = 0; r < R; ++r) {
            float* sr = S + r * Lp;
            const float* br = bias + r * ldb;
            int64_t j = 0;
            for (; j + 4 <= L; j += 4) vst1q_f32(sr + j, vaddq_f32(vld1q_f32(sr + j), vld1q_f32(br + j)));
            for (; j < L; ++j) sr[j] += br[j];
        }
    }
    float inv[R];
    for (int r = 0; r < R; ++r) inv[r] = softmax_row(S + r * Lp, L);
    attention_context<R>(S, Lp, inv, v, ld, L, d, out, ldo);
}

}  // namespace

void enc_attention_head_neon(const float* q, const float* k, const float* v, int64_t ld, int64_t L,
                             int64_t d, const float* bias, int64_t ldb, float* out, int64_t ldo,
                             float* scratch) {
    const int64_t Lp = (L + 15) / 16 * 16;
    float* kt = scratch;     // [d][Lp]
    float* S = kt + d * Lp;  // [4][Lp]
    for (int64_t c = 0; c < d; ++c) {
        float* row = kt + c * Lp;
        for (int64_t t = 0; t < L; ++t) row[t] = k[t * ld + c];
        for (int64_t t = L; t < Lp; ++t) row[t] = 0.0f;
    }
    int64_t i = 0;
    for (; i + 4 <= L; i += 4)
        attention_rows<4>(q + i * ld, v, ld, L, Lp, d, kt, bias ? bias + i * ldb : nullptr, ldb, S,
                          out + i * ldo, ldo);
    const float* qi = q + i * ld;
    const float* bi = bias ? bias + i * ldb : nullptr;
    float* oi = out + i * ldo;
    switch (L - i) {
        case 3: attention_rows<3>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        case 2: attention_rows<2>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        case 1: attention_rows<1>(qi, v, ld, L, Lp, d, kt, bi, ldb, S, oi, ldo); break;
        default: break;
    }
}

}  // namespace embedrt
