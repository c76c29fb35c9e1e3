// Portable SDC tile kernel (baseline x86-64 / any CPU).
#include "kernels/sdc.h"

namespace embedrt {
namespace {

inline int popcount64(uint64_t v) {
    v = v - ((v >> 1) & 0x5555555555555555ULL);
    v = (v & 0x3333333333333333ULL) + ((v >> 2) & 0x3333333333333333ULL);
    v = (v + (v >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return static_cast<int>((v * 0x0101010101010101ULL) >> 56);
}

}  // namespace

void sdc_tile_scalar(const uint64_t* qpack, int64_t m, const uint64_t* dbpack, int64_t groups,
                     int u, int64_t W, int32_t* x, int64_t ldx, const int32_t* thr,
                     uint8_t* mask, int64_t ldm) {
    const int64_t qstride = static_cast<int64_t>(u) * W;
    const int64_t gstride = qstride * 8;
    for (int64_t g = 0; g < groups; ++g) {
        const uint64_t* dg = dbpack + g * gstride;
        for (int64_t qi = 0; qi < m; ++qi) {
            const uint64_t* qp = qpack + qi * qstride;
            int64_t acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int i = 0; i < u; ++i) {
                for (int j = 0; j < u; ++j) {
                    const int shift = 2 * (u - 1) - i - j;
                    int64_t part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                    for (int64_t w = 0; w < W; ++w) {
                        const uint64_t qw = qp[i * W + w];
                        const uint64_t* dw = dg + (j * W + w) * 8;
                        for (int c = 0; c < 8; ++c) part[c] += popcount64(qw ^ dw[c]);
                    }
                    for (int c = 0; c < 8; ++c) acc[c] += part[c] << shift;
                }
            }
            int32_t* out = x + qi * ldx + g * 8;
            for (int c = 0; c < 8; ++c) out[c] = static_cast<int32_t>(acc[c]);
            if (mask) {
                unsigned bits = 0;
                for (int c = 0; c < 8; ++c) bits |= static_cast<unsigned>(acc[c] < thr[qi]) << c;
                mask[qi * ldm + g] = static_cast<uint8_t>(bits);
            }
        }
    }
}

}  // namespace embedrt
