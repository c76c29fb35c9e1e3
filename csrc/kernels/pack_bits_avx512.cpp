// AVX-512 sign packing: 16 floats per compare into a mask (bit t = element t), four masks
// make 64 bits, whose bytes are then bit-reversed into MSB-first order.
#include <immintrin.h>

#include <cstring>

#include "kernels/pack_bits.h"

namespace embedrt {
namespace {

inline uint64_t reverse_bits_in_bytes(uint64_t v) {
    v = ((v & 0xF0F0F0F0F0F0F0F0ULL) >> 4) | ((v & 0x0F0F0F0F0F0F0F0FULL) << 4);
    v = ((v & 0xCCCCCCCCCCCCCCCCULL) >> 2) | ((v & 0x3333333333333333ULL) << 2);
    v = ((v & 0xAAAAAAAAAAAAAAAAULL) >> 1) | ((v & 0x5555555555555555ULL) << 1);
    return v;
}

}  // namespace

bool pack_bits_f32_avx512(const float* x, int64_t n, int64_t d, uint8_t* out) {
    const int64_t nb = (d + 7) / 8;
    const __m512 zero = _mm512_setzero_ps();
    __mmask16 nan = 0;
    for (int64_t i = 0; i < n; ++i) {
        const float* row = x + i * d;
        uint8_t* o = out + i * nb;
        int64_t c = 0;
        for (; c + 64 <= d; c += 64) {  // full steps: plain loads and an 8-byte store
            uint64_t bits = 0;
            for (int s = 0; s < 4; ++s) {
                const __m512 v = _mm512_loadu_ps(row + c + 16 * s);
                nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                bits |= static_cast<uint64_t>(_mm512_cmp_ps_mask(v, zero, _CMP_GT_OQ)) << (16 * s);
            }
            bits = reverse_bits_in_bytes(bits);  // little-endian: byte t = elements 8t..8t+7
            std::memcpy(o + c / 8, &bits, 8);
        }
        if (c < d) {  // tail: masked loads (zeros past d pack as 0 bits)
            uint64_t bits = 0;
            for (int s = 0; s < 4 && c + 16 * s < d; ++s) {
                const int64_t left = d - c - 16 * s;
                const __mmask16 lm = left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
                const __m512 v = _mm512_maskz_loadu_ps(lm, row + c + 16 * s);
                nan |= _mm512_mask_cmp_ps_mask(lm, v, v, _CMP_UNORD_Q);
                bits |= static_cast<uint64_t>(_mm512_mask_cmp_ps_mask(lm, v, zero, _CMP_GT_OQ)) << (16 * s);
            }
            bits = reverse_bits_in_bytes(bits);
            const int64_t bytes = (d - c + 7) / 8;
            for (int64_t t = 0; t < bytes; ++t) o[c / 8 + t] = static_cast<uint8_t>(bits >> (8 * t));
        }
    }
    return nan == 0;
}

}  // namespace embedrt
