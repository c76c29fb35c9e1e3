// AVX2 sign packing: 8 floats compared with 0 -> movemask (bit t = element t), then the byte
// is bit-reversed into MSB-first order.
#include <immintrin.h>

#include "kernels/pack_bits.h"

namespace embedrt {
namespace {

inline unsigned reverse8(unsigned b) {
    b = ((b & 0xF0u) >> 4) | ((b & 0x0Fu) << 4);
    b = ((b & 0xCCu) >> 2) | ((b & 0x33u) << 2);
    b = ((b & 0xAAu) >> 1) | ((b & 0x55u) << 1);
    return b;
}

}  // namespace

bool pack_bits_f32_avx2(const float* x, int64_t n, int64_t d, uint8_t* out) {
    const int64_t nb = (d + 7) / 8;
    const __m256 zero = _mm256_setzero_ps();
    __m256 nanacc = _mm256_setzero_ps();
    bool nan = false;
    for (int64_t i = 0; i < n; ++i) {
        const float* row = x + i * d;
        uint8_t* o = out + i * nb;
        int64_t b = 0;
        for (; 8 * b + 8 <= d; ++b) {
            const __m256 v = _mm256_loadu_ps(row + 8 * b);
            nanacc = _mm256_or_ps(nanacc, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
            const unsigned mask = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(v, zero, _CMP_GT_OQ)));
            o[b] = static_cast<uint8_t>(reverse8(mask));
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
    return !(nan || _mm256_movemask_ps(nanacc));
}

}  // namespace embedrt
