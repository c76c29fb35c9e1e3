// AVX2 Hamming scans. Few queries (hamming_scan_avx2): the block of 8 database codes is transposed into 64-bit words (two
// ymm per word), popcounts are nibble lookups (vpshufb) accumulated in bytes, and folded
// into 64-bit sums with vpsadbw every 31 words (8 * 31 < 256, so bytes never overflow).
//
// Measured against the POPCNT instruction on 64-bit words (integer pipes), alone (blocks of
// 64 codes in L1, every query passing) and beside the lookups (1 to 4 codes of each step of
// 9 to 12 through POPCNT while the vector pipes take the other 8), on Zen 4 at avx2,
// BinaryIndex.search of 64 queries over 512-bit codes and the all-pairs matrix: the lookups
// alone were the fastest (POPCNT alone 2.3x slower, the mixes 7-80% slower), so they stay.
// Several queries (hamming_scan_lut_avx2): 4-bit query tables, below.
#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/hamming.h"
#include "kernels/sdc.h"

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

// ---- Table lookups over 32 codes per step (several queries) --------------------------------
//
// Per query one 32-byte table per code byte b (tab[b]): bytes 0-15 give, for each value v of
// the byte's high nibble, popcount((q_hi ^ v) & mask_hi), bytes 16-31 the same for the low
// nibble (mask: the bits of the byte that count, the last byte's lastmask). A block of 32
// codes is laid out as the blocks32 layout of sdc.h with one plane (sdc_pack32_avx2): row b
// holds byte b of the 32 codes, byte i of the low 128 bits the high nibble of code
// sdc_lut_code(i) (low half) and of code 16 + sdc_lut_code(i) (high half), the high 128 bits
// the low nibbles alike. Then one VPSHUFB of the table with the row's low nibbles gives 16
// codes' high- and low-nibble distances, one more with the high nibbles the other 16 codes':
// two lookups and two adds per query for 32 codes x 8 bits, where the popcount of XORed
// words costs eight operations per 4 codes x 64 bits. The nibble split of a row (two ANDs
// and a shift) is shared by the queries of a tile.
//
// Sums: bytes for up to 63 rows (at most 4 per row), then 16-bit sums of the even and odd
// bytes (the pair sum, and the odd bytes apart: one shift and two adds a run), so distances
// up to 8 * 4095 bits fit. Even bytes hold codes 0-7 of a half, odd bytes codes 8-15.
//
// The blocks are packed on the way, into L1, and shared by every query of the scan (the
// transpose of a block costs about two queries' lookups of it), so no second copy of the
// database is kept; with fewer than kHammingLutMinQueries queries the XOR-popcount scan runs.
constexpr int64_t kLutRun = 63;         // rows per byte-sum run

// Tables of queries [0, m) of s: tab + i * nbytes * 32.
void lut_tables(const HammingScan& s, uint8_t* tab) {
    const __m256i pop = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i iota = _mm256_setr_epi8(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15,
                                          0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const int64_t nb = s.nbytes;
    for (int64_t i = 0; i < s.m; ++i) {
        const uint8_t* q = reinterpret_cast<const uint8_t*>(s.q + i * s.W);
        uint8_t* t = tab + i * nb * 32;
        for (int64_t b = 0; b < nb; ++b) {
            const unsigned mk = b == nb - 1 ? s.lastmask : 0xFFu;
            const unsigned qb = q[b];
            const __m256i qn = _mm256_setr_m128i(_mm_set1_epi8(static_cast<char>(qb >> 4)),
                                                 _mm_set1_epi8(static_cast<char>(qb & 15u)));
            const __m256i mn = _mm256_setr_m128i(_mm_set1_epi8(static_cast<char>(mk >> 4)),
                                                 _mm_set1_epi8(static_cast<char>(mk & 15u)));
            const __m256i e = _mm256_shuffle_epi8(pop, _mm256_and_si256(_mm256_xor_si256(iota, qn), mn));
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(t + b * 32), e);
        }
    }
}

// Codes [jb, jb + cnt) (cnt <= 32) of s as one block of nbytes rows of 32 bytes.
void lut_pack(const HammingScan& s, int64_t jb, int64_t cnt, uint8_t* out) {
    const int64_t nb = s.nbytes;
    const uint8_t* code[32];
    for (int c = 0; c < 32; ++c) code[c] = c < cnt ? s.db + (jb + c) * s.ldb : nullptr;
    const int64_t r0 = nb / 16 * 16;
    if (r0) sdc_pack32_avx2(code, 0, r0, out);
    if (r0 == nb) return;
    std::memset(out + r0 * 32, 0, static_cast<size_t>((nb - r0) * 32));
    for (int i = 0; i < 16; ++i) {
        const int ca = sdc_lut_code(i);
        const uint8_t* pa = code[ca];
        const uint8_t* pb = code[16 + ca];
        if (!pa) continue;  // missing codes are at the end: 16 + ca is missing too
        uint8_t* o = out + r0 * 32 + i;
        for (int64_t r = r0; r < nb; ++r, o += 32) {
            const unsigned va = pa[r], vb = pb ? pb[r] : 0u;
            o[0] = static_cast<uint8_t>((va >> 4) | (vb & 0xF0u));
            o[16] = static_cast<uint8_t>((va & 0x0Fu) | ((vb & 0x0Fu) << 4));
        }
    }
}

// Distances of Q queries (tables tq, tq + nb * 32, ...) to the 32 codes of block blk:
// d[q][0] codes 0-15, d[q][1] codes 16-31 (16-bit, in order). runs: the row bounds of the
// byte-sum runs (run r is rows [runs[r], runs[r + 1])), nruns of them.
template <int Q>
inline void lut_block(const uint8_t* tq, const uint8_t* blk, int64_t nb, const int64_t* runs,
                      int64_t nruns, __m256i d[][2]) {
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i zero = _mm256_setzero_si256();
    __m256i al[Q], hl[Q], ah[Q], hh[Q];
    for (int q = 0; q < Q; ++q) al[q] = hl[q] = ah[q] = hh[q] = zero;
    const int64_t qs = nb * 32;
    for (int64_t r = 0; r < nruns; ++r) {
        __m256i lo[Q], hi[Q];
        for (int q = 0; q < Q; ++q) lo[q] = hi[q] = zero;
        const uint8_t* row = blk + runs[r] * 32;
        const uint8_t* const end = blk + runs[r + 1] * 32;
        const uint8_t* t = tq + runs[r] * 32;
#pragma GCC unroll 4
        for (; row < end; row += 32, t += 32) {
            const __m256i v = _mm256_load_si256(reinterpret_cast<const __m256i*>(row));
            const __m256i il = _mm256_and_si256(v, low);
            const __m256i ih = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
            for (int q = 0; q < Q; ++q) {
                const __m256i tt = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(t + q * qs));
                lo[q] = _mm256_add_epi8(_mm256_shuffle_epi8(tt, il), lo[q]);
                hi[q] = _mm256_add_epi8(_mm256_shuffle_epi8(tt, ih), hi[q]);
            }
        }
        for (int q = 0; q < Q; ++q) {
            al[q] = _mm256_add_epi16(al[q], lo[q]);
            hl[q] = _mm256_add_epi16(hl[q], _mm256_srli_epi16(lo[q], 8));
            ah[q] = _mm256_add_epi16(ah[q], hi[q]);
            hh[q] = _mm256_add_epi16(hh[q], _mm256_srli_epi16(hi[q], 8));
        }
    }
    for (int q = 0; q < Q; ++q) {
        // 16-bit lanes: even bytes (codes 0-7 of a half), odd bytes (codes 8-15); the two
        // 128-bit halves are the high- and low-nibble distances of the same codes
        const __m256i el = _mm256_sub_epi16(al[q], _mm256_slli_epi16(hl[q], 8));
        const __m256i eh = _mm256_sub_epi16(ah[q], _mm256_slli_epi16(hh[q], 8));
        d[q][0] = _mm256_add_epi16(_mm256_permute2x128_si256(el, hl[q], 0x20),
                                   _mm256_permute2x128_si256(el, hl[q], 0x31));
        d[q][1] = _mm256_add_epi16(_mm256_permute2x128_si256(eh, hh[q], 0x20),
                                   _mm256_permute2x128_si256(eh, hh[q], 0x31));
    }
}

// The block's distances for query i (codes jb + r, r < cnt): to the output row and the heap.
inline void lut_emit(const HammingScan& s, int64_t i, const __m256i d[2], int64_t jb, int64_t cnt,
                     int64_t j0) {
    if (s.out) {
        uint32_t* o = s.out + i * s.ldo + (jb - j0);
        const __m256i w0 = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(d[0]));
        const __m256i w1 = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(d[0], 1));
        const __m256i w2 = _mm256_cvtepu16_epi32(_mm256_castsi256_si128(d[1]));
        const __m256i w3 = _mm256_cvtepu16_epi32(_mm256_extracti128_si256(d[1], 1));
        if (cnt == 32) {
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), w0);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 8), w1);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 16), w2);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 24), w3);
        } else {
            alignas(32) uint32_t t[32];
            _mm256_store_si256(reinterpret_cast<__m256i*>(t), w0);
            _mm256_store_si256(reinterpret_cast<__m256i*>(t + 8), w1);
            _mm256_store_si256(reinterpret_cast<__m256i*>(t + 16), w2);
            _mm256_store_si256(reinterpret_cast<__m256i*>(t + 24), w3);
            for (int64_t r = 0; r < cnt; ++r) o[r] = t[r];
        }
    }
    if (s.heaps) {
        HammingHeaps* const h = s.heaps;
        const int32_t bound = h->bound[i];
        const __m256i t = _mm256_set1_epi16(static_cast<short>(bound < 0x7FFF ? bound : 0x7FFF));
        // compare results as bytes, in code order: packs interleaves the 128-bit halves
        const __m256i c = _mm256_packs_epi16(_mm256_cmpgt_epi16(t, d[0]), _mm256_cmpgt_epi16(t, d[1]));
        uint32_t hit = static_cast<uint32_t>(_mm256_movemask_epi8(_mm256_permute4x64_epi64(c, 0xD8)));
        if (cnt < 32) hit &= (uint32_t(1) << cnt) - 1;
        if (__builtin_expect(hit != 0, 0)) {
            alignas(32) uint16_t dv[32];
            _mm256_store_si256(reinterpret_cast<__m256i*>(dv), d[0]);
            _mm256_store_si256(reinterpret_cast<__m256i*>(dv + 16), d[1]);
            while (hit) {
                const int r = __builtin_ctz(hit);
                hit &= hit - 1;
                if (dv[r] < h->bound[i]) topk::offer(*h, i, static_cast<int32_t>(dv[r]), jb + r);
            }
        }
    }
}

template <int Q>
void lut_tile(const HammingScan& s, const uint8_t* tab, int64_t i0, const uint8_t* blocks,
              int64_t nblk, int64_t jb, int64_t j1, int64_t j0, const int64_t* runs, int64_t nruns) {
    const int64_t nb = s.nbytes;
    for (int64_t bk = 0; bk < nblk; ++bk) {
        const int64_t jc = jb + 32 * bk;
        const int64_t cnt = j1 - jc < 32 ? j1 - jc : 32;
        __m256i d[Q][2];
        lut_block<Q>(tab + i0 * nb * 32, blocks + bk * nb * 32, nb, runs, nruns, d);
        for (int q = 0; q < Q; ++q) lut_emit(s, i0 + q, d[q], jc, cnt, j0);
    }
}

// 3 queries per tile: their 6 byte sums, the nibbles of a row and a table fit the 16 ymm
// registers (4 spill the sums and ran 1.4x slower).
constexpr int kLutQ = 3;
constexpr int64_t kLutBlockBytes = 16384;  // packed blocks per pass (L1)

}  // namespace

void hamming_scan_lut_avx2(const HammingScan& s, int64_t j0, int64_t j1) {
    const int64_t nb = s.nbytes, m = s.m;
    thread_local std::vector<uint8_t> tbuf, bbuf;
    const size_t tneed = static_cast<size_t>(m * nb * 32);
    const int64_t per = std::max<int64_t>(1, std::min<int64_t>(8, kLutBlockBytes / (nb * 32)));
    const size_t bneed = static_cast<size_t>(per * nb * 32 + 32);
    if (tbuf.size() < tneed) tbuf.resize(tneed);
    if (bbuf.size() < bneed) bbuf.resize(bneed);
    uint8_t* const tab = tbuf.data();
    uint8_t* const blocks = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(bbuf.data()) + 31) & ~uintptr_t(31));
    lut_tables(s, tab);
    // runs of at most kLutRun rows, as even as possible
    const int64_t nruns = (nb + kLutRun - 1) / kLutRun;
    int64_t runs[kHammingLutMaxBytes / kLutRun + 2];
    for (int64_t r = 0; r <= nruns; ++r) runs[r] = nb * r / nruns;
    for (int64_t jb = j0; jb < j1; jb += 32 * per) {
        const int64_t codes = j1 - jb < 32 * per ? j1 - jb : 32 * per;
        const int64_t nblk = (codes + 31) / 32;
        // the next pass's codes, into L2 while this one is scanned
        const int64_t jn = jb + 32 * per, nn = j1 - jn < 32 * per ? j1 - jn : 32 * per;
        for (int64_t c = 0; c < nn; ++c) {
            const char* p = reinterpret_cast<const char*>(s.db + (jn + c) * s.ldb);
            for (int64_t o = 0; o < nb; o += 64) _mm_prefetch(p + o, _MM_HINT_T1);
        }
        for (int64_t bk = 0; bk < nblk; ++bk) {
            const int64_t jc = jb + 32 * bk;
            lut_pack(s, jc, j1 - jc < 32 ? j1 - jc : 32, blocks + bk * nb * 32);
        }
        int64_t i = 0;
        for (; i + kLutQ <= m; i += kLutQ) lut_tile<kLutQ>(s, tab, i, blocks, nblk, jb, j1, j0, runs, nruns);
        for (; i + 2 <= m; i += 2) lut_tile<2>(s, tab, i, blocks, nblk, jb, j1, j0, runs, nruns);
        for (; i < m; ++i) lut_tile<1>(s, tab, i, blocks, nblk, jb, j1, j0, runs, nruns);
    }
}


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
