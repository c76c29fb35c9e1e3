// AVX-512 Hamming scan (F + BW + VPOPCNTDQ): 8 database codes are loaded (byte-masked where
// the width needs it: no reads past a code, tails zero), transposed 8 x 8 in 64-bit words, and
// each query costs per word one broadcast XOR, one VPOPCNTQ and one add for 8 distances.
//
// Top-k: 16 codes of up to 64 bytes per step stay in registers while every query of the chunk
// passes (wider codes: 8 per step from an L1 scratch block); a threshold compare per query
// lets almost no candidate reach the heap.
// Distances out: up to 256 codes are transposed into L1 first, then each query runs along them
// and writes a long contiguous run of its output row.
#include <immintrin.h>

#include "kernels/hamming.h"
#include "kernels/hamming_heap.h"

namespace embedrt {
namespace {

// Rows r < cnt of the block at `base` (stride ldb), bytes [64c, 64c + 64) of each code,
// transposed: t[w][r] = word w (of this chunk) of code r. Rows past cnt are zero.
inline void load_transpose(const uint8_t* base, int64_t ldb, int64_t cnt, int64_t c,
                           int64_t nbytes, uint8_t lastmask, __m512i t[8]) {
    const int64_t b0 = 64 * c;
    const int64_t nb = nbytes - b0 < 64 ? nbytes - b0 : 64;
    const __mmask64 lm = nb == 64 ? ~__mmask64(0) : ((__mmask64(1) << nb) - 1);
    __m512i v[8];
    // Plain loads where the width allows (masked loads are slower on some cores).
    if (nb == 64) {
        for (int r = 0; r < 8; ++r)
            v[r] = r < cnt ? _mm512_loadu_si512(base + r * ldb + b0) : _mm512_setzero_si512();
    } else if (nb == 32) {
        for (int r = 0; r < 8; ++r)
            v[r] = r < cnt ? _mm512_zextsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(base + r * ldb + b0)))
                           : _mm512_setzero_si512();
    } else {
        for (int r = 0; r < 8; ++r)
            v[r] = r < cnt ? _mm512_maskz_loadu_epi8(lm, base + r * ldb + b0) : _mm512_setzero_si512();
    }
    if (lastmask != 0xFF && b0 + nb == nbytes) {
        // every byte 0xFF except the last used one, which keeps only the first bits
        const __m512i mv = _mm512_mask_set1_epi8(_mm512_set1_epi8(-1), __mmask64(1) << (nb - 1),
                                                 static_cast<char>(lastmask));
        for (int r = 0; r < 8; ++r) v[r] = _mm512_and_si512(v[r], mv);
    }
    const __m512i t0 = _mm512_unpacklo_epi64(v[0], v[1]), t1 = _mm512_unpackhi_epi64(v[0], v[1]);
    const __m512i t2 = _mm512_unpacklo_epi64(v[2], v[3]), t3 = _mm512_unpackhi_epi64(v[2], v[3]);
    const __m512i t4 = _mm512_unpacklo_epi64(v[4], v[5]), t5 = _mm512_unpackhi_epi64(v[4], v[5]);
    const __m512i t6 = _mm512_unpacklo_epi64(v[6], v[7]), t7 = _mm512_unpackhi_epi64(v[6], v[7]);
    const __m512i s0 = _mm512_shuffle_i64x2(t0, t2, 0x88), s1 = _mm512_shuffle_i64x2(t0, t2, 0xDD);
    const __m512i s2 = _mm512_shuffle_i64x2(t4, t6, 0x88), s3 = _mm512_shuffle_i64x2(t4, t6, 0xDD);
    const __m512i u0 = _mm512_shuffle_i64x2(t1, t3, 0x88), u1 = _mm512_shuffle_i64x2(t1, t3, 0xDD);
    const __m512i u2 = _mm512_shuffle_i64x2(t5, t7, 0x88), u3 = _mm512_shuffle_i64x2(t5, t7, 0xDD);
    t[0] = _mm512_shuffle_i64x2(s0, s2, 0x88);
    t[4] = _mm512_shuffle_i64x2(s0, s2, 0xDD);
    t[2] = _mm512_shuffle_i64x2(s1, s3, 0x88);
    t[6] = _mm512_shuffle_i64x2(s1, s3, 0xDD);
    t[1] = _mm512_shuffle_i64x2(u0, u2, 0x88);
    t[5] = _mm512_shuffle_i64x2(u0, u2, 0xDD);
    t[3] = _mm512_shuffle_i64x2(u1, u3, 0x88);
    t[7] = _mm512_shuffle_i64x2(u1, u3, 0xDD);
}

// Offers the distances of one query against codes jb..jb+7 (those set in `valid`) to its heap.
inline void emit(const HammingScan& s, int64_t i, __m512i acc, __mmask8 valid, int64_t jb) {
    const __mmask8 hit = _mm512_mask_cmplt_epu64_mask(valid, acc, _mm512_set1_epi64(s.heaps->thr[i]));
    if (hit) {
        alignas(64) uint64_t d[8];
        _mm512_store_si512(reinterpret_cast<__m512i*>(d), acc);
        unsigned bits = hit;
        while (bits) {
            const int r = __builtin_ctz(bits);
            bits &= bits - 1;
            if (d[r] < s.heaps->thr[i]) heapdetail::heap_offer(s.heaps, i, static_cast<int32_t>(d[r]), jb + r);
        }
    }
}

// Offers the hits of one query against codes jb + r (r set in `hit`) to its heap.
inline void offer_hits(HammingHeaps* h, int64_t i, __m512i acc, unsigned hit, int64_t jb) {
    alignas(64) uint64_t d[8];
    _mm512_store_si512(reinterpret_cast<__m512i*>(d), acc);
    while (hit) {
        const int r = __builtin_ctz(hit);
        hit &= hit - 1;
        if (d[r] < h->thr[i]) heapdetail::heap_offer(h, i, static_cast<int32_t>(d[r]), jb + r);
    }
}

// Top-k, codes of W <= 8 words, 16 codes per step: the two transposed blocks live in
// registers and each query word is broadcast once for both.
template <int W>
void scan_small(const HammingScan& s, int64_t j0, int64_t j1) {
    const bool prefetch = s.m <= 4;  // streaming one or few queries: stay ahead of memory
    const int64_t m = s.m, ldb = s.ldb;
    const uint64_t* const q = s.q;
    HammingHeaps* const heaps = s.heaps;
    for (int64_t jb = j0; jb < j1; jb += 16) {
        const int64_t cnt = j1 - jb < 16 ? j1 - jb : 16;
        const uint8_t* base = s.db + jb * ldb;
        if (prefetch)
            for (int r = 0; r < 16; ++r)
                _mm_prefetch(reinterpret_cast<const char*>(base + (128 + r) * ldb), _MM_HINT_T0);
        __m512i t0[8], t1[8];
        load_transpose(base, ldb, cnt < 8 ? cnt : 8, 0, s.nbytes, s.lastmask, t0);
        load_transpose(base + 8 * ldb, ldb, cnt > 8 ? cnt - 8 : 0, 0, s.nbytes, s.lastmask, t1);
        const __mmask8 v0 = static_cast<__mmask8>(cnt >= 8 ? 0xFFu : (1u << cnt) - 1);
        const __mmask8 v1 = static_cast<__mmask8>(cnt >= 16 ? 0xFFu : cnt > 8 ? (1u << (cnt - 8)) - 1 : 0u);
        const uint64_t* qi = q;
        for (int64_t i = 0; i < m; ++i, qi += W) {
            __m512i b = _mm512_set1_epi64(static_cast<long long>(qi[0]));
            __m512i a0 = _mm512_popcnt_epi64(_mm512_xor_si512(t0[0], b));
            __m512i a1 = _mm512_popcnt_epi64(_mm512_xor_si512(t1[0], b));
            for (int w = 1; w < W; ++w) {
                b = _mm512_set1_epi64(static_cast<long long>(qi[w]));
                a0 = _mm512_add_epi64(a0, _mm512_popcnt_epi64(_mm512_xor_si512(t0[w], b)));
                a1 = _mm512_add_epi64(a1, _mm512_popcnt_epi64(_mm512_xor_si512(t1[w], b)));
            }
            const __m512i thr = _mm512_set1_epi64(static_cast<long long>(heaps->thr[i]));
            const unsigned h0 = _mm512_mask_cmplt_epu64_mask(v0, a0, thr);
            const unsigned h1 = _mm512_mask_cmplt_epu64_mask(v1, a1, thr);
            if (__builtin_expect((h0 | h1) != 0, 0)) {
                if (h0) offer_hits(heaps, i, a0, h0, jb);
                if (h1) offer_hits(heaps, i, a1, h1, jb + 8);
            }
        }
    }
}

// Distances out, codes of W <= 8 words: up to kStoreCodes codes are transposed into the L1
// scratch first, then each query (its words held in registers) runs along them and writes a
// long contiguous run of its output row, instead of one cache line per row per step (rows a
// power of two apart would fight over the same cache sets).
constexpr int64_t kStoreCodes = 256;

template <int W>
void scan_store(const HammingScan& s, int64_t j0, int64_t j1) {
    __m512i* T = reinterpret_cast<__m512i*>(s.scratch);  // [group][W]
    for (int64_t js = j0; js < j1; js += kStoreCodes) {
        const int64_t cnt = j1 - js < kStoreCodes ? j1 - js : kStoreCodes;
        const int64_t groups = (cnt + 7) / 8;
        for (int64_t g = 0; g < groups; ++g) {
            __m512i t[8];
            const int64_t c = cnt - 8 * g < 8 ? cnt - 8 * g : 8;
            load_transpose(s.db + (js + 8 * g) * s.ldb, s.ldb, c, 0, s.nbytes, s.lastmask, t);
            for (int w = 0; w < W; ++w) _mm512_store_si512(T + g * W + w, t[w]);
        }
        const int64_t full = cnt / 8;
        const __mmask8 tail = static_cast<__mmask8>((1u << (cnt % 8)) - 1);
        const uint64_t* qi = s.q;
        for (int64_t i = 0; i < s.m; ++i, qi += W) {
            __m512i qv[W];
            for (int w = 0; w < W; ++w) qv[w] = _mm512_set1_epi64(static_cast<long long>(qi[w]));
            uint32_t* o = s.out + i * s.ldo + (js - j0);
            const __m512i* tg = T;
            for (int64_t g = 0; g < full; ++g, tg += W, o += 8) {
                __m512i acc = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(tg), qv[0]));
                for (int w = 1; w < W; ++w)
                    acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(tg + w), qv[w])));
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), _mm512_cvtepi64_epi32(acc));
            }
            if (tail) {
                __m512i acc = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(tg), qv[0]));
                for (int w = 1; w < W; ++w)
                    acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(tg + w), qv[w])));
                _mm256_mask_storeu_epi32(o, tail, _mm512_cvtepi64_epi32(acc));
            }
        }
    }
}

// Distances out, wider codes: as scan_store with 64 codes per pass, their words padded to a
// multiple of 8 (the padding is zero); each query runs along them once per 8 words with those
// words in registers, adding into its (L1-resident) run of the output row.
void scan_store_wide(const HammingScan& s, int64_t j0, int64_t j1) {
    const int64_t W = s.W, chunks = (W + 7) / 8, Wp = 8 * chunks;
    constexpr int64_t kCodes = 64;
    __m512i* T = reinterpret_cast<__m512i*>(s.scratch);  // [group][Wp]
    for (int64_t js = j0; js < j1; js += kCodes) {
        const int64_t cnt = j1 - js < kCodes ? j1 - js : kCodes;
        const int64_t groups = (cnt + 7) / 8;
        for (int64_t g = 0; g < groups; ++g) {
            const int64_t c = cnt - 8 * g < 8 ? cnt - 8 * g : 8;
            for (int64_t ch = 0; ch < chunks; ++ch) {
                __m512i t[8];
                load_transpose(s.db + (js + 8 * g) * s.ldb, s.ldb, c, ch, s.nbytes, s.lastmask, t);
                for (int w = 0; w < 8; ++w) _mm512_store_si512(T + g * Wp + 8 * ch + w, t[w]);
            }
        }
        const uint64_t* qi = s.q;
        for (int64_t i = 0; i < s.m; ++i, qi += W) {
            uint32_t* o = s.out + i * s.ldo + (js - j0);
            for (int64_t ch = 0; ch < chunks; ++ch) {
                __m512i qv[8];
                for (int w = 0; w < 8; ++w)
                    qv[w] = 8 * ch + w < W ? _mm512_set1_epi64(static_cast<long long>(qi[8 * ch + w]))
                                           : _mm512_setzero_si512();
                for (int64_t g = 0; g < groups; ++g) {
                    const __m512i* tg = T + g * Wp + 8 * ch;
                    __m512i a0 = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(tg), qv[0]));
                    __m512i a1 = _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(tg + 1), qv[1]));
                    for (int w = 2; w < 8; w += 2) {
                        a0 = _mm512_add_epi64(a0, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(tg + w), qv[w])));
                        a1 = _mm512_add_epi64(a1, _mm512_popcnt_epi64(_mm512_xor_si512(_mm512_load_si512(tg + w + 1), qv[w + 1])));
                    }
                    __m256i d = _mm512_cvtepi64_epi32(_mm512_add_epi64(a0, a1));
                    const int64_t c = cnt - 8 * g;
                    const __mmask8 vm = c >= 8 ? __mmask8(0xFF) : static_cast<__mmask8>((1u << c) - 1);
                    uint32_t* og = o + 8 * g;
                    if (ch > 0) d = _mm256_add_epi32(d, _mm256_maskz_loadu_epi32(vm, og));
                    if (c >= 8)
                        _mm256_storeu_si256(reinterpret_cast<__m256i*>(og), d);
                    else
                        _mm256_mask_storeu_epi32(og, vm, d);
                }
            }
        }
    }
}

// Top-k, wider codes: the transposed block goes to the scratch buffer ([W][8] words).
void scan_wide(const HammingScan& s, int64_t j0, int64_t j1) {
    const int64_t W = s.W;
    const int64_t chunks = (W + 7) / 8;
    __m512i* T = reinterpret_cast<__m512i*>(s.scratch);
    for (int64_t jb = j0; jb < j1; jb += 8) {
        const int64_t cnt = j1 - jb < 8 ? j1 - jb : 8;
        const uint8_t* base = s.db + jb * s.ldb;
        for (int64_t c = 0; c < chunks; ++c) {
            __m512i t[8];
            load_transpose(base, s.ldb, cnt, c, s.nbytes, s.lastmask, t);
            for (int64_t w = 0; w < 8 && 8 * c + w < W; ++w) _mm512_storeu_si512(T + 8 * c + w, t[w]);
        }
        const __mmask8 valid = static_cast<__mmask8>((1u << cnt) - 1);
        const uint64_t* qi = s.q;
        for (int64_t i = 0; i < s.m; ++i, qi += W) {
            __m512i a0 = _mm512_setzero_si512(), a1 = _mm512_setzero_si512();
            int64_t w = 0;
            for (; w + 2 <= W; w += 2) {
                a0 = _mm512_add_epi64(a0, _mm512_popcnt_epi64(_mm512_xor_si512(
                                              _mm512_loadu_si512(T + w), _mm512_set1_epi64(static_cast<long long>(qi[w])))));
                a1 = _mm512_add_epi64(a1, _mm512_popcnt_epi64(_mm512_xor_si512(
                                              _mm512_loadu_si512(T + w + 1), _mm512_set1_epi64(static_cast<long long>(qi[w + 1])))));
            }
            if (w < W)
                a0 = _mm512_add_epi64(a0, _mm512_popcnt_epi64(_mm512_xor_si512(
                                              _mm512_loadu_si512(T + w), _mm512_set1_epi64(static_cast<long long>(qi[w])))));
            emit(s, i, _mm512_add_epi64(a0, a1), valid, jb);
        }
    }
}

void scan_topk(const HammingScan& s, int64_t j0, int64_t j1) {
    switch (s.W) {
        case 1: scan_small<1>(s, j0, j1); break;
        case 2: scan_small<2>(s, j0, j1); break;
        case 3: scan_small<3>(s, j0, j1); break;
        case 4: scan_small<4>(s, j0, j1); break;
        case 5: scan_small<5>(s, j0, j1); break;
        case 6: scan_small<6>(s, j0, j1); break;
        case 7: scan_small<7>(s, j0, j1); break;
        case 8: scan_small<8>(s, j0, j1); break;
        default: scan_wide(s, j0, j1); break;
    }
}

void scan_out(const HammingScan& s, int64_t j0, int64_t j1) {
    switch (s.W) {
        case 1: scan_store<1>(s, j0, j1); break;
        case 2: scan_store<2>(s, j0, j1); break;
        case 3: scan_store<3>(s, j0, j1); break;
        case 4: scan_store<4>(s, j0, j1); break;
        case 5: scan_store<5>(s, j0, j1); break;
        case 6: scan_store<6>(s, j0, j1); break;
        case 7: scan_store<7>(s, j0, j1); break;
        case 8: scan_store<8>(s, j0, j1); break;
        default: scan_store_wide(s, j0, j1); break;
    }
}

}  // namespace

void hamming_scan_avx512(const HammingScan& s, int64_t j0, int64_t j1) {
    if (s.heaps) scan_topk(s, j0, j1);
    if (s.out) scan_out(s, j0, j1);
}

}  // namespace embedrt
