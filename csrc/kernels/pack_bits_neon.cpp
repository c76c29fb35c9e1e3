// aarch64 sign packing (ASIMD): compare floats with 0 (all-ones lanes where x > 0), narrow
// the 32-bit masks to bytes, AND each byte with its bit weight (128, 64, ..., 1: MSB first)
// and sum neighbouring lanes with pairwise adds (the bits are disjoint, so a sum is an OR).
// 64 floats give 8 output bytes per step, then 8 floats per byte, then a scalar tail.
#include <arm_neon.h>

#include "kernels/pack_bits.h"

namespace embedrt {

bool pack_bits_f32_neon(const float* x, int64_t n, int64_t d, uint8_t* out) {
    const int64_t nb = (d + 7) / 8;
    static const uint8_t kWeights[16] = {128, 64, 32, 16, 8, 4, 2, 1, 128, 64, 32, 16, 8, 4, 2, 1};
    const uint8x16_t wq = vld1q_u8(kWeights);
    const uint8x8_t wd = vld1_u8(kWeights);
    const float32x4_t zero = vdupq_n_f32(0.0f);
    uint32x4_t ordered = vdupq_n_u32(0xFFFFFFFFu);  // lanes stay all-ones while no NaN is seen
    bool nan = false;
    for (int64_t i = 0; i < n; ++i) {
        const float* row = x + i * d;
        uint8_t* o = out + i * nb;
        int64_t b = 0;
        for (; 8 * b + 64 <= d; b += 8) {
            const float* p = row + 8 * b;
            uint8x16_t bytes[4];
            for (int l = 0; l < 4; ++l) {
                uint16x8_t h[2];
                for (int k = 0; k < 2; ++k) {
                    const float32x4_t v0 = vld1q_f32(p + 16 * l + 8 * k);
                    const float32x4_t v1 = vld1q_f32(p + 16 * l + 8 * k + 4);
                    ordered = vandq_u32(ordered, vandq_u32(vceqq_f32(v0, v0), vceqq_f32(v1, v1)));
                    h[k] = vcombine_u16(vmovn_u32(vcgtq_f32(v0, zero)), vmovn_u32(vcgtq_f32(v1, zero)));
                }
                bytes[l] = vandq_u8(vcombine_u8(vmovn_u16(h[0]), vmovn_u16(h[1])), wq);
            }
            const uint8x16_t p01 = vpaddq_u8(bytes[0], bytes[1]);  // 4 lanes per output byte
            const uint8x16_t p23 = vpaddq_u8(bytes[2], bytes[3]);
            const uint8x16_t q = vpaddq_u8(p01, p23);              // 2 lanes per output byte
            vst1_u8(o + b, vget_low_u8(vpaddq_u8(q, q)));
        }
        for (; 8 * b + 8 <= d; ++b) {
            const float32x4_t v0 = vld1q_f32(row + 8 * b);
            const float32x4_t v1 = vld1q_f32(row + 8 * b + 4);
            ordered = vandq_u32(ordered, vandq_u32(vceqq_f32(v0, v0), vceqq_f32(v1, v1)));
            const uint16x8_t h = vcombine_u16(vmovn_u32(vcgtq_f32(v0, zero)), vmovn_u32(vcgtq_f32(v1, zero)));
            o[b] = vaddv_u8(vand_u8(vmovn_u16(h), wd));
        }
        if (b < nb) {
            unsigned byte = 0;
            for (int64_t t = 0; 8 * b + t < d; ++t) {
                const float v = row[8 * b + t];
                nan |= (v != v);
                byte |= static_cast<unsigned>(v > 0.0f) << (7 - t);
            }
            o[b] = static_cast<uint8_t>(byte);
        }
    }
    return !(nan || vminvq_u32(ordered) == 0);
}

}  // namespace embedrt
