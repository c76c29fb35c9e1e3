// AVX-512 Hamming scan (F + BW + VPOPCNTDQ): 8 database codes are loaded with byte-masked
// loads (no reads past a code, tails zero), transposed 8 x 8 in 64-bit words, and each query
// costs per word one broadcast XOR, one VPOPCNTQ and one add for 8 distances at once.
// Codes of up to 64 bytes stay in registers; wider codes go through an L1 scratch block.
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
    for (int r = 0; r < 8; ++r)
        v[r] = r < cnt ? _mm512_maskz_loadu_epi8(lm, base + r * ldb + b0) : _mm512_setzero_si512();
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

inline void emit(const HammingScan& s, int64_t i, __m512i acc, __mmask8 valid, int64_t jb, int64_t j0) {
    if (s.out)
        _mm256_mask_storeu_epi32(s.out + i * s.ldo + (jb - j0), valid, _mm512_cvtepi64_epi32(acc));
    if (s.heaps) {
        const __mmask8 hit = _mm512_mask_cmplt_epu64_mask(valid, acc, _mm512_set1_epi64(s.heaps->thr[i]));
        if (hit) {
            alignas(64) uint64_t d[8];
            _mm512_store_si512(reinterpret_cast<__m512i*>(d), acc);
            unsigned bits = hit;
            while (bits) {
                const int r = __builtin_ctz(bits);
                bits &= bits - 1;
                if (d[r] < s.heaps->thr[i])
                    heapdetail::heap_offer(s.heaps, i, static_cast<int32_t>(d[r]), jb + r);
            }
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

// Codes of W <= 8 words, 16 codes per step: the two transposed blocks live in registers and
// each query word is broadcast once for both. TOPK: offer to heaps, else store distances.
template <int W, bool TOPK>
void scan_small(const HammingScan& s, int64_t j0, int64_t j1) {
    const bool prefetch = s.m <= 4;  // streaming one or few queries: stay ahead of memory
    const int64_t m = s.m, ldb = s.ldb, ldo = s.ldo;
    const uint64_t* const q = s.q;
    uint32_t* const out = s.out;
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
            if (TOPK) {
                const __m512i thr = _mm512_set1_epi64(static_cast<long long>(heaps->thr[i]));
                const unsigned h0 = _mm512_mask_cmplt_epu64_mask(v0, a0, thr);
                const unsigned h1 = _mm512_mask_cmplt_epu64_mask(v1, a1, thr);
                if (__builtin_expect((h0 | h1) != 0, 0)) {
                    if (h0) offer_hits(heaps, i, a0, h0, jb);
                    if (h1) offer_hits(heaps, i, a1, h1, jb + 8);
                }
            } else {
                uint32_t* o = out + i * ldo + (jb - j0);
                _mm256_mask_storeu_epi32(o, v0, _mm512_cvtepi64_epi32(a0));
                _mm256_mask_storeu_epi32(o + 8, v1, _mm512_cvtepi64_epi32(a1));
            }
        }
    }
}

// Wider codes: the transposed block goes to the scratch buffer ([W][8] words).
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
            emit(s, i, _mm512_add_epi64(a0, a1), valid, jb, j0);
        }
    }
}

template <bool TOPK>
void scan_dispatch(const HammingScan& s, int64_t j0, int64_t j1) {
    switch (s.W) {
        case 1: scan_small<1, TOPK>(s, j0, j1); break;
        case 2: scan_small<2, TOPK>(s, j0, j1); break;
        case 3: scan_small<3, TOPK>(s, j0, j1); break;
        case 4: scan_small<4, TOPK>(s, j0, j1); break;
        case 5: scan_small<5, TOPK>(s, j0, j1); break;
        case 6: scan_small<6, TOPK>(s, j0, j1); break;
        case 7: scan_small<7, TOPK>(s, j0, j1); break;
        case 8: scan_small<8, TOPK>(s, j0, j1); break;
        default: scan_wide(s, j0, j1); break;
    }
}

}  // namespace

void hamming_scan_avx512(const HammingScan& s, int64_t j0, int64_t j1) {
    // one mode per call: distances out, or top-k heaps (the heap path needs ids in order)
    if (s.heaps) {
        scan_dispatch<true>(s, j0, j1);
        if (s.out) {
            HammingScan o = s;
            o.heaps = nullptr;
            scan_dispatch<false>(o, j0, j1);
        }
    } else if (s.out) {
        scan_dispatch<false>(s, j0, j1);
    }
}

}  // namespace embedrt
