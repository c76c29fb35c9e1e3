#include "kernels/pack_bits.h"

#include <algorithm>
#include <atomic>

#include "dispatch.h"
#include "parallel.h"

namespace embedrt {
namespace {

int64_t row_grain(int64_t d) { return std::max<int64_t>(1, (int64_t(1) << 16) / std::max<int64_t>(d, 1)); }

}  // namespace

bool pack_bits_f32(const float* x, int64_t n, int64_t d, uint8_t* out) {
    if (n <= 0 || d <= 0) return true;
    const int64_t nb = (d + 7) / 8;
    const Isa isa = active_isa();
    std::atomic<bool> ok{true};
    parallel_for(n, row_grain(d), [&](int64_t r0, int64_t r1) {
        bool good;
        switch (isa) {
#if defined(EMBEDRT_HAVE_X86)
            case Isa::avx512_skx:  // AVX-512 F/BW/DQ/VL only
            case Isa::avx512_vnni:
            case Isa::avx512: good = pack_bits_f32_avx512(x + r0 * d, r1 - r0, d, out + r0 * nb); break;
            case Isa::avx2: good = pack_bits_f32_avx2(x + r0 * d, r1 - r0, d, out + r0 * nb); break;
#endif
#if defined(EMBEDRT_HAVE_NEON)
            case Isa::neon: good = pack_bits_f32_neon(x + r0 * d, r1 - r0, d, out + r0 * nb); break;
#endif
            default: good = pack_bits_f32_scalar(x + r0 * d, r1 - r0, d, out + r0 * nb); break;
        }
        if (!good) ok.store(false);
    });
    return ok.load();
}

bool pack_bits_f64(const double* x, int64_t n, int64_t d, uint8_t* out) {
    if (n <= 0 || d <= 0) return true;
    const int64_t nb = (d + 7) / 8;
    std::atomic<bool> ok{true};
    parallel_for(n, row_grain(d), [&](int64_t r0, int64_t r1) {
        bool nan = false;
        for (int64_t i = r0; i < r1; ++i) {
            const double* row = x + i * d;
            uint8_t* o = out + i * nb;
            for (int64_t b = 0; b < nb; ++b) {
                unsigned byte = 0;
                for (int64_t t = 0; t < 8 && 8 * b + t < d; ++t) {
                    const double v = row[8 * b + t];
                    nan |= (v != v);
                    byte |= static_cast<unsigned>(v > 0.0) << (7 - t);
                }
                o[b] = static_cast<uint8_t>(byte);
            }
        }
        if (nan) ok.store(false);
    });
    return ok.load();
}

void pack_bits_u8(const uint8_t* x, int64_t n, int64_t d, uint8_t* out) {
    if (n <= 0 || d <= 0) return;
    const int64_t nb = (d + 7) / 8;
    parallel_for(n, row_grain(d), [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) {
            const uint8_t* row = x + i * d;
            uint8_t* o = out + i * nb;
            for (int64_t b = 0; b < nb; ++b) {
                unsigned byte = 0;
                for (int64_t t = 0; t < 8 && 8 * b + t < d; ++t)
                    byte |= static_cast<unsigned>(row[8 * b + t] != 0) << (7 - t);
                o[b] = static_cast<uint8_t>(byte);
            }
        }
    });
}

void unpack_bits(const uint8_t* codes, int64_t n, int64_t nbytes, int64_t d, uint8_t* out) {
    if (n <= 0 || d <= 0) return;
    parallel_for(n, row_grain(d), [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) {
            const uint8_t* c = codes + i * nbytes;
            uint8_t* o = out + i * d;
            for (int64_t t = 0; t < d; ++t) o[t] = (c[t >> 3] >> (7 - (t & 7))) & 1u;
        }
    });
}

}  // namespace embedrt
