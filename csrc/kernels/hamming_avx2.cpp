// AVX2 Hamming scan: the block of 8 database codes is transposed into 64-bit words (two
// ymm per word), popcounts are nibble lookups (vpshufb) accumulated in bytes, and folded
// into 64-bit sums with vpsadbw every 31 words (8 * 31 < 256, so bytes never overflow).
//
// Measured against the POPCNT instruction on 64-bit words (integer pipes), alone (blocks of
// 64 codes in L1, every query passing) and beside the lookups (1 to 4 codes of each step of
// 9 to 12 through POPCNT while the vector pipes take the other 8), on Zen 4 at avx2,
// BinaryIndex.search of 64 queries over 512-bit codes and the all-pairs matrix: the lookups
// alone were the fastest (POPCNT alone 2.3x slower, the mixes 7-80% slower), so they stay.
#include <immintrin.h>

#include <cstring>

#include "kernels/hamming.h"

namespace embedrt {
namespace {

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

inline __m256i popcount_bytes(__m256i x, __m256i lut, __m256i low) {
    const __m256i lo = _mm256_and_si256(x, low);
    const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);
    return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

// Distances of one query (W words) against the transposed block T ([W][8] words): two
// vectors of four 64-bit sums (codes 0-3, 4-7).
template <int W>
inline void block_distances(const uint64_t* T, const uint64_t* qi, int64_t wdyn, __m256i lut, __m256i low,
                            __m256i* s0, __m256i* s1) {
    const __m256i zero = _mm256_setzero_si256();
    const int64_t nw = W > 0 ? W : wdyn;
    __m256i r0 = zero, r1 = zero;
    for (int64_t w0 = 0; w0 < nw; w0 += 31) {
        const int64_t w1 = nw - w0 < 31 ? nw : w0 + 31;
        __m256i b0 = zero, b1 = zero;  // byte counts
        for (int64_t w = w0; w < w1; ++w) {
            const __m256i qw = _mm256_set1_epi64x(static_cast<long long>(qi[w]));
            const __m256i x0 = _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(T + w * 8)), qw);
            const __m256i x1 = _mm256_xor_si256(_mm256_load_si256(reinterpret_cast<const __m256i*>(T + w * 8 + 4)), qw);
            b0 = _mm256_add_epi8(b0, popcount_bytes(x0, lut, low));
            b1 = _mm256_add_epi8(b1, popcount_bytes(x1, lut, low));
        }
        r0 = _mm256_add_epi64(r0, _mm256_sad_epu8(b0, zero));
        r1 = _mm256_add_epi64(r1, _mm256_sad_epu8(b1, zero));
    }
    *s0 = r0;
    *s1 = r1;
}

template <int W>
void scan(const HammingScan& s, int64_t j0, int64_t j1) {
    const int64_t Wd = s.W;
    uint64_t* T = s.scratch;  // [W][8], 64-byte aligned
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0F);
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
        const unsigned valid = (1u << cnt) - 1;
        const uint64_t* qi = s.q;
        for (int64_t i = 0; i < m; ++i, qi += Wd) {
            __m256i s0, s1;
            block_distances<W>(T, qi, Wd, lut, low, &s0, &s1);
            if (out) {
                // 64-bit sums -> 32-bit: take the low halves (elements 0, 2, 4, 6)
                const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
                const __m128i lo = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(s0, idx));
                const __m128i hi = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(s1, idx));
                uint32_t* o = out + i * ldo + (jb - j0);
                if (cnt == 8) {
                    _mm_storeu_si128(reinterpret_cast<__m128i*>(o), lo);
                    _mm_storeu_si128(reinterpret_cast<__m128i*>(o + 4), hi);
                } else {
                    alignas(16) uint32_t d[8];
                    _mm_store_si128(reinterpret_cast<__m128i*>(d), lo);
                    _mm_store_si128(reinterpret_cast<__m128i*>(d + 4), hi);
                    for (int64_t r = 0; r < cnt; ++r) o[r] = d[r];
                }
            }
            if (heaps) {
                const __m256i t = _mm256_set1_epi64x(static_cast<long long>(heaps->bound[i]));
                unsigned hit = static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(t, s0)))) |
                               (static_cast<unsigned>(_mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(t, s1)))) << 4);
                hit &= valid;
                if (hit) {
                    alignas(32) uint64_t d[8];
                    _mm256_store_si256(reinterpret_cast<__m256i*>(d), s0);
                    _mm256_store_si256(reinterpret_cast<__m256i*>(d + 4), s1);
                    while (hit) {
                        const int r = __builtin_ctz(hit);
                        hit &= hit - 1;
                        if (d[r] < static_cast<uint32_t>(heaps->bound[i]))
                            topk::offer(*heaps, i, static_cast<int32_t>(d[r]), jb + r);
                    }
                }
            }
        }
    }
}

}  // namespace

void hamming_scan_avx2(const HammingScan& s, int64_t j0, int64_t j1) {
    switch (s.W) {
        case 1: scan<1>(s, j0, j1); break;
        case 2: scan<2>(s, j0, j1); break;
        case 4: scan<4>(s, j0, j1); break;
        case 6: scan<6>(s, j0, j1); break;
        case 8: scan<8>(s, j0, j1); break;
        case 12: scan<12>(s, j0, j1); break;
        case 16: scan<16>(s, j0, j1); break;
        default: scan<0>(s, j0, j1); break;
    }
}

}  // namespace embedrt
