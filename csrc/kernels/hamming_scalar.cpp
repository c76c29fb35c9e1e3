// Portable Hamming scan: 64-bit words, SWAR popcount (the baseline x86-64 target has no
// POPCNT instruction).
#include <cstring>

#include "kernels/hamming.h"

namespace embedrt {
namespace {

inline uint64_t popcount64(uint64_t x) {
    x = x - ((x >> 1) & 0x5555555555555555ULL);
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (x * 0x0101010101010101ULL) >> 56;
}

// Word w of a code: bytes [8w, 8w + 8) with bytes past nbytes zero and the last byte masked.
inline uint64_t code_word(const uint8_t* row, int64_t w, int64_t nbytes, uint8_t lastmask) {
    uint8_t buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t b0 = 8 * w;
    int64_t cnt = nbytes - b0 < 8 ? nbytes - b0 : 8;
    std::memcpy(buf, row + b0, static_cast<size_t>(cnt));
    if (b0 + cnt == nbytes) buf[cnt - 1] &= lastmask;
    uint64_t v;
    std::memcpy(&v, buf, 8);
    return v;
}

}  // namespace

void hamming_scan_scalar(const HammingScan& s, int64_t j0, int64_t j1) {
    const int64_t W = s.W;
    uint64_t* T = s.scratch;  // [W][8]
    for (int64_t jb = j0; jb < j1; jb += 8) {
        const int64_t cnt = j1 - jb < 8 ? j1 - jb : 8;
        for (int64_t r = 0; r < 8; ++r) {
            if (r < cnt) {
                const uint8_t* row = s.db + (jb + r) * s.ldb;
                for (int64_t w = 0; w < W; ++w) T[w * 8 + r] = code_word(row, w, s.nbytes, s.lastmask);
            } else {
                for (int64_t w = 0; w < W; ++w) T[w * 8 + r] = 0;
            }
        }
        for (int64_t i = 0; i < s.m; ++i) {
            const uint64_t* qi = s.q + i * W;
            uint32_t d[8] = {0, 0, 0, 0, 0, 0, 0, 0};
            for (int64_t w = 0; w < W; ++w) {
                const uint64_t qw = qi[w];
                for (int r = 0; r < 8; ++r) d[r] += static_cast<uint32_t>(popcount64(qw ^ T[w * 8 + r]));
            }
            if (s.out) {
                uint32_t* o = s.out + i * s.ldo + (jb - j0);
                for (int64_t r = 0; r < cnt; ++r) o[r] = d[r];
            }
            if (s.heaps) {
                for (int64_t r = 0; r < cnt; ++r)
                    if (d[r] < static_cast<uint32_t>(s.heaps->bound[i]))
                        topk::offer(*s.heaps, i, static_cast<int32_t>(d[r]), jb + r);
            }
        }
    }
}

}  // namespace embedrt
