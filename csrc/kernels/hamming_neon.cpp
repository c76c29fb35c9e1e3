// aarch64 Hamming scan (ASIMD): the block of 8 database codes is transposed into 64-bit words
// (four 128-bit vectors per word, two codes each), popcounts are per-byte counts (vcntq_u8)
// summed in bytes for up to 31 words (8 * 31 < 256, so bytes never overflow), then folded by
// pairwise widening adds into 32-bit sums: two per code, joined by one vpaddq_u32 per four codes.
// Codes of at most 192 bits (W <= 3) are summed in bytes to the end and widened once.
#include <arm_neon.h>

#include <cstring>

#include "kernels/hamming.h"

namespace embedrt {
namespace {

// Word w of a code: bytes [8w, 8w + 8) with bytes past nbytes zero and the last byte masked.
inline uint64_t code_word(const uint8_t* row, int64_t w, int64_t nbytes, uint8_t lastmask) {
    const int64_t b0 = 8 * w;
    uint64_t v;
    if (b0 + 8 < nbytes || (b0 + 8 == nbytes && lastmask == 0xFF)) {
        std::memcpy(&v, row + b0, 8);
        return v;
    }
    uint8_t buf[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    const int64_t cnt = nbytes - b0 < 8 ? nbytes - b0 : 8;
    std::memcpy(buf, row + b0, static_cast<size_t>(cnt));
    buf[cnt - 1] &= lastmask;
    std::memcpy(&v, buf, 8);
    return v;
}

// Distances of one query (nw words) against the transposed block T ([nw][8] words):
// d[0] = codes 0-3, d[1] = codes 4-7.
template <int W>
inline void block_distances(const uint64_t* T, const uint64_t* qi, int64_t wdyn, uint32x4_t d[2]) {
    const int64_t nw = W > 0 ? W : wdyn;
    if (W > 0 && W <= 3) {
        // at most 192 bits: a distance fits in a byte, so sum the 8 byte counts of each code
        // with three rounds of pairwise byte adds, then widen once
        uint8x16_t b0 = vdupq_n_u8(0), b1 = b0, b2 = b0, b3 = b0;
        for (int64_t w = 0; w < W; ++w) {
            const uint64x2_t qw = vdupq_n_u64(qi[w]);
            const uint64_t* t = T + w * 8;
            b0 = vaddq_u8(b0, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(t), qw))));
            b1 = vaddq_u8(b1, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(t + 2), qw))));
            b2 = vaddq_u8(b2, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(t + 4), qw))));
            b3 = vaddq_u8(b3, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(t + 6), qw))));
        }
        const uint8x16_t p = vpaddq_u8(vpaddq_u8(b0, b1), vpaddq_u8(b2, b3));  // 2 lanes per code
        const uint16x8_t h = vmovl_u8(vget_low_u8(vpaddq_u8(p, p)));          // codes 0-7
        d[0] = vmovl_u16(vget_low_u16(h));
        d[1] = vmovl_high_u16(h);
        return;
    }
    uint32x4_t a0 = vdupq_n_u32(0), a1 = a0, a2 = a0, a3 = a0;  // two 32-bit halves per code
    for (int64_t w0 = 0; w0 < nw; w0 += 31) {
        const int64_t w1 = nw - w0 < 31 ? nw : w0 + 31;
        uint8x16_t b0 = vdupq_n_u8(0), b1 = b0, b2 = b0, b3 = b0;  // byte counts
        for (int64_t w = w0; w < w1; ++w) {
            const uint64x2_t qw = vdupq_n_u64(qi[w]);
            const uint64_t* t = T + w * 8;
            b0 = vaddq_u8(b0, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(t), qw))));
            b1 = vaddq_u8(b1, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(t + 2), qw))));
            b2 = vaddq_u8(b2, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(t + 4), qw))));
            b3 = vaddq_u8(b3, vcntq_u8(vreinterpretq_u8_u64(veorq_u64(vld1q_u64(t + 6), qw))));
        }
        a0 = vpadalq_u16(a0, vpaddlq_u8(b0));
        a1 = vpadalq_u16(a1, vpaddlq_u8(b1));
        a2 = vpadalq_u16(a2, vpaddlq_u8(b2));
        a3 = vpadalq_u16(a3, vpaddlq_u8(b3));
    }
    d[0] = vpaddq_u32(a0, a1);
    d[1] = vpaddq_u32(a2, a3);
}

template <int W>
void scan(const HammingScan& s, int64_t j0, int64_t j1) {
    const int64_t Wd = s.W;
    uint64_t* T = s.scratch;  // [W][8]
    const int64_t m = s.m, ldo = s.ldo;
    uint32_t* const out = s.out;
    HammingHeaps* const heaps = s.heaps;
    for (int64_t jb = j0; jb < j1; jb += 8) {
        const int64_t cnt = j1 - jb < 8 ? j1 - jb : 8;
        for (int64_t r = 0; r < 8; ++r) {
            if (r < cnt) {
                const uint8_t* row = s.db + (jb + r) * s.ldb;
                for (int64_t w = 0; w < Wd; ++w) T[w * 8 + r] = code_word(row, w, s.nbytes, s.lastmask);
            } else {
                for (int64_t w = 0; w < Wd; ++w) T[w * 8 + r] = 0;
            }
        }
        const uint64_t* qi = s.q;
        for (int64_t i = 0; i < m; ++i, qi += Wd) {
            uint32x4_t d[2];
            block_distances<W>(T, qi, Wd, d);
            if (out) {
                uint32_t* o = out + i * ldo + (jb - j0);
                if (cnt == 8) {
                    vst1q_u32(o, d[0]);
                    vst1q_u32(o + 4, d[1]);
                } else {
                    uint32_t buf[8];
                    vst1q_u32(buf, d[0]);
                    vst1q_u32(buf + 4, d[1]);
                    for (int64_t r = 0; r < cnt; ++r) o[r] = buf[r];
                }
            }
            if (heaps) {
                const uint32x4_t t = vdupq_n_u32(static_cast<uint32_t>(heaps->bound[i]));
                const uint32x4_t hit = vorrq_u32(vcltq_u32(d[0], t), vcltq_u32(d[1], t));
                if (vmaxvq_u32(hit) != 0) {
                    uint32_t buf[8];
                    vst1q_u32(buf, d[0]);
                    vst1q_u32(buf + 4, d[1]);
                    // the threshold can only fall while the block's codes are offered
                    for (int64_t r = 0; r < cnt; ++r)
                        if (buf[r] < static_cast<uint32_t>(heaps->bound[i]))
                            topk::offer(*heaps, i, static_cast<int32_t>(buf[r]), jb + r);
                }
            }
        }
    }
}

}  // namespace

void hamming_scan_neon(const HammingScan& s, int64_t j0, int64_t j1) {
    switch (s.W) {
        case 1: scan<1>(s, j0, j1); break;
        case 2: scan<2>(s, j0, j1); break;
        case 3: scan<3>(s, j0, j1); break;
        case 4: scan<4>(s, j0, j1); break;
        case 6: scan<6>(s, j0, j1); break;
        case 8: scan<8>(s, j0, j1); break;
        case 12: scan<12>(s, j0, j1); break;
        case 16: scan<16>(s, j0, j1); break;
        default: scan<0>(s, j0, j1); break;
    }
}

}  // namespace embedrt
