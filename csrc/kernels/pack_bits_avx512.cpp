// AVX-512 sign packing: 16 floats per compare into a mask (bit t = element t), four masks
// make 64 bits, whose bytes are then bit-reversed into MSB-first order.
#include <immintrin.h>

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
        for (int64_t c = 0; c < d; c += 64) {
            uint64_t bits = 0;
            for (int64_t s = 0; s < 4; ++s) {
                const int64_t c0 = c + 16 * s;
                if (c0 >= d) break;
                const int64_t left = d - c0;
                const __mmask16 lm = left >= 16 ? __mmask16(0xFFFF) : static_cast<__mmask16>((1u << left) - 1);
                const __m512 v = _mm512_maskz_loadu_ps(lm, row + c0);
                nan |= _mm512_mask_cmp_ps_mask(lm, v, v, _CMP_UNORD_Q);
                bits |= static_cast<uint64_t>(_mm512_mask_cmp_ps_mask(lm, v, zero, _CMP_GT_OQ)) << (16 * s);
            }
            bits = reverse_bits_in_bytes(bits);  // little-endian: byte t of `bits` = elements 8t..8t+7
            const int64_t bytes = (d - c + 7) / 8 < 8 ? (d - c + 7) / 8 : 8;
            const __mmask64 sm = bytes == 8 ? __mmask64(0xFF) : ((__mmask64(1) << bytes) - 1);
            _mm512_mask_storeu_epi8(o + c / 8, sm, _mm512_set1_epi64(static_cast<long long>(bits)));
        }
    }
    return nan == 0;
}

}  // namespace embedrt
