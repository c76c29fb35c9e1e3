#include "kernels/pack_bits.h"

namespace embedrt {

bool pack_bits_f32_scalar(const float* x, int64_t n, int64_t d, uint8_t* out) {
    const int64_t nb = (d + 7) / 8;
    bool nan = false;
    for (int64_t i = 0; i < n; ++i) {
        const float* row = x + i * d;
        uint8_t* o = out + i * nb;
        for (int64_t b = 0; b < nb; ++b) {
            unsigned byte = 0;
            for (int64_t t = 0; t < 8; ++t) {
                const int64_t c = 8 * b + t;
                const float v = c < d ? row[c] : 0.0f;
                nan |= (v != v);
                byte |= static_cast<unsigned>(v > 0.0f) << (7 - t);
            }
            o[b] = static_cast<uint8_t>(byte);
        }
    }
    return !nan;
}

}  // namespace embedrt
