// aarch64 int8 GEMM with the dot-product extension (sdot: s8 x s8, no compensation needed).
//
// A rows are packed per call into micro panels of 4 rows, [kp / 4][4][4] int8 (a uint8 A is
// turned into a - 128 = a xor 0x80). A 16-byte slice of a B panel holds 4 columns x 4 k;
// vdotq_laneq_s32 multiplies it by the 4 bytes of one A row picked from a 16-byte A vector.
// The microkernel keeps a 4 x 16 block of C in 16 int32x4 accumulators.
#include <arm_neon.h>

#include <cmath>
#include <cstring>

#include "kernels/int8_gemm.h"

namespace embedrt {

namespace {

constexpr int kMR = 4;

void pack_a(const Int8GemmArgs& g, int8_t* dst) {
    const int64_t kp = g.kp, k = g.k;
    const uint8_t flip = g.a_u8 ? 0x80 : 0x00;
    for (int64_t i0 = 0; i0 < g.m; i0 += kMR) {
        int8_t* panel = dst + i0 * kp;
        for (int r = 0; r < kMR; ++r) {
            int8_t* d = panel + r * 4;
            if (i0 + r >= g.m) {
                for (int64_t q = 0; q < kp / 4; ++q) std::memset(d + q * 4 * kMR, 0, 4);
                continue;
            }
            const uint8_t* src = static_cast<const uint8_t*>(g.a) + (i0 + r) * g.lda;
            for (int64_t kk = 0; kk < kp; ++kk) {
                uint8_t v = kk < k ? uint8_t(src[kk] ^ flip) : uint8_t(0);
                d[(kk / 4) * 4 * kMR + (kk % 4)] = static_cast<int8_t>(v);
            }
        }
    }
}

template <int MR>
void micro(const Int8GemmArgs& g, const int8_t* ap, int64_t i0, int64_t p, int64_t j0,
           int64_t j1) {
    const int64_t kp = g.kp;
    const int64_t groups = kp / 4;
    const int8_t* bp = g.b + p * 16 * kp;
    int32x4_t acc[kMR][4];
    for (int r = 0; r < kMR; ++r)
        for (int s = 0; s < 4; ++s) acc[r][s] = vdupq_n_s32(0);
    for (int64_t q = 0; q < groups; ++q) {
        // The 4 rows' 4 bytes are contiguous: one 16-byte load, lanes picked per row.
        int8x16_t a = vld1q_s8(ap + q * 16);
        int8x16_t b0 = vld1q_s8(bp + q * 64);
        int8x16_t b1 = vld1q_s8(bp + q * 64 + 16);
        int8x16_t b2 = vld1q_s8(bp + q * 64 + 32);
        int8x16_t b3 = vld1q_s8(bp + q * 64 + 48);
#define EMBEDRT_ROW(r)                                       \
        if (MR > r) {                                        \
            acc[r][0] = vdotq_laneq_s32(acc[r][0], b0, a, r); \
            acc[r][1] = vdotq_laneq_s32(acc[r][1], b1, a, r); \
            acc[r][2] = vdotq_laneq_s32(acc[r][2], b2, a, r); \
            acc[r][3] = vdotq_laneq_s32(acc[r][3], b3, a, r); \
        }
        EMBEDRT_ROW(0)
        EMBEDRT_ROW(1)
        EMBEDRT_ROW(2)
        EMBEDRT_ROW(3)
#undef EMBEDRT_ROW
    }
    const int64_t c0 = p * 16;
    const int64_t lo = j0 > c0 ? j0 - c0 : 0;
    const int64_t hi = j1 - c0 < 16 ? j1 - c0 : 16;
    for (int r = 0; r < MR; ++r) {
        const int64_t i = i0 + r;
        int32_t out[16];
        for (int s = 0; s < 4; ++s) vst1q_s32(out + 4 * s, acc[r][s]);
        if (g.c32) {
            for (int64_t t = lo; t < hi; ++t) g.c32[i * g.ldc + c0 + t] = out[t];
        } else {
            const float as = g.a_scale ? g.a_scale[i] : 1.0f;
            for (int64_t t = lo; t < hi; ++t) {
                const int64_t j = c0 + t;
                float s = as * (g.b_scale ? g.b_scale[j] : 1.0f);
                float d = float(out[t]);
                g.cf[i * g.ldc + j] = g.bias ? std::fma(s, d, g.bias[j]) : s * d;
            }
        }
    }
}

}  // namespace

void int8_gemm_neon(const Int8GemmArgs& g, int64_t j0, int64_t j1) {
    if (g.m <= 0 || j1 <= j0) return;
    int8_t* ap = reinterpret_cast<int8_t*>(g.scratch);
    pack_a(g, ap);
    const int64_t pbeg = j0 / 16, pend = (j1 + 15) / 16;
    for (int64_t p = pbeg; p < pend; ++p) {
        for (int64_t i0 = 0; i0 < g.m; i0 += kMR) {
            const int8_t* a = ap + i0 * g.kp;
            switch (g.m - i0 >= kMR ? kMR : int(g.m - i0)) {
                case 4: micro<4>(g, a, i0, p, j0, j1); break;
                case 3: micro<3>(g, a, i0, p, j0, j1); break;
                case 2: micro<2>(g, a, i0, p, j0, j1); break;
                default: micro<1>(g, a, i0, p, j0, j1); break;
            }
        }
    }
}

}  // namespace embedrt
