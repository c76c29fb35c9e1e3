// aarch64 SDC tile kernel (ASIMD): 2 database codes per 128-bit vector (four per group of 8).
//
// For query plane i, the byte counts vcntq_u8(q_i XOR d_j) of the u database planes are
// weighted in bytes, sum_j 2^(u-1-j) cnt_j <= 8 (2^u - 1) = 120 < 256, then added pairwise
// into 16-bit lanes (vpadalq_u8, <= 240 per word and lane). Every 256 words (256 * 240 < 2^16)
// the 16-bit sums are widened, shifted by the query weight u-1-i and added into 32-bit sums
// (two per code), joined per code by vpaddq_u32 at the end. X < 2^31 (checked by callers).
#include <arm_neon.h>

#include "kernels/sdc.h"

namespace embedrt {
namespace {

constexpr int64_t kFoldWords = 256;

template <int U>
void tile_u(const uint64_t* qpack, int64_t m, const uint64_t* dbpack, int64_t groups, int64_t W,
            int32_t* x, int64_t ldx, const int32_t* thr, uint8_t* mask, int64_t ldm) {
    const int64_t qstride = static_cast<int64_t>(U) * W;
    const int64_t gstride = qstride * 8;
    static const uint32_t kBit[4] = {1, 2, 4, 8};
    const uint32x4_t bitw = vld1q_u32(kBit);
    for (int64_t g = 0; g < groups; ++g) {
        const uint64_t* dg = dbpack + g * gstride;
        for (int64_t qi = 0; qi < m; ++qi) {
            const uint64_t* qp = qpack + qi * qstride;
            uint32x4_t acc[4];
            for (int v = 0; v < 4; ++v) acc[v] = vdupq_n_u32(0);
            for (int64_t w0 = 0; w0 < W; w0 += kFoldWords) {
                const int64_t w1 = W - w0 < kFoldWords ? W : w0 + kFoldWords;
                uint16x8_t a16[U][4];
                for (int i = 0; i < U; ++i)
                    for (int v = 0; v < 4; ++v) a16[i][v] = vdupq_n_u16(0);
                for (int64_t w = w0; w < w1; ++w) {
                    for (int i = 0; i < U; ++i) {
                        const uint64x2_t qv = vdupq_n_u64(qp[i * W + w]);
                        uint8x16_t s[4];
                        for (int v = 0; v < 4; ++v) s[v] = vdupq_n_u8(0);
                        for (int j = 0; j < U; ++j) {
                            const uint64_t* dw = dg + (j * W + w) * 8;
                            for (int v = 0; v < 4; ++v) {
                                uint8x16_t c = vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(dw + 2 * v), qv)));
                                // weight 2^(U-1-j), a compile-time shift once unrolled
                                if (U - 1 - j == 3) c = vshlq_n_u8(c, 3);
                                else if (U - 1 - j == 2) c = vshlq_n_u8(c, 2);
                                else if (U - 1 - j == 1) c = vshlq_n_u8(c, 1);
                                s[v] = vaddq_u8(s[v], c);
                            }
                        }
                        for (int v = 0; v < 4; ++v) a16[i][v] = vpadalq_u8(a16[i][v], s[v]);
                    }
                }
                for (int i = 0; i < U; ++i) {
                    const int32x4_t sh = vdupq_n_s32(U - 1 - i);
                    for (int v = 0; v < 4; ++v)
                        acc[v] = vaddq_u32(acc[v], vshlq_u32(vpaddlq_u16(a16[i][v]), sh));
                }
            }
            const uint32x4_t r0 = vpaddq_u32(acc[0], acc[1]);  // codes 0-3
            const uint32x4_t r1 = vpaddq_u32(acc[2], acc[3]);  // codes 4-7
            int32_t* out = x + qi * ldx + g * 8;
            vst1q_s32(out, vreinterpretq_s32_u32(r0));
            vst1q_s32(out + 4, vreinterpretq_s32_u32(r1));
            if (mask) {
                const int32x4_t th = vdupq_n_s32(thr[qi]);
                const uint32x4_t lo = vandq_u32(vcltq_s32(vreinterpretq_s32_u32(r0), th), bitw);
                const uint32x4_t hi = vandq_u32(vcltq_s32(vreinterpretq_s32_u32(r1), th), bitw);
                mask[qi * ldm + g] = static_cast<uint8_t>(vaddvq_u32(lo) | (vaddvq_u32(hi) << 4));
            }
        }
    }
}

}  // namespace

void sdc_tile_neon(const uint64_t* qpack, int64_t m, const uint64_t* dbpack, int64_t groups,
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
