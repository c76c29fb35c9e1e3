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

// Codes of W <= 8 words: the transposed block lives in registers.
template <int W>
void scan_small(const HammingScan& s, int64_t j0, int64_t j1) {
    const bool prefetch = s.m <= 4;  // streaming one or few queries: stay ahead of memory
    for (int64_t jb = j0; jb < j1; jb += 8) {
        const int64_t cnt = j1 - jb < 8 ? j1 - jb : 8;
        const uint8_t* base = s.db + jb * s.ldb;
        if (prefetch)
            for (int r = 0; r < 8; ++r) _mm_prefetch(reinterpret_cast<const char*>(base + (64 + r) * s.ldb), _MM_HINT_T0);
        __m512i t[8];
        load_transpose(base, s.ldb, cnt, 0, s.nbytes, s.lastmask, t);
        const __mmask8 valid = static_cast<__mmask8>((1u << cnt) - 1);
        const uint64_t* qi = s.q;
        for (int64_t i = 0; i < s.m; ++i, qi += W) {
            __m512i acc = _mm512_popcnt_epi64(_mm512_xor_si512(t[0], _mm512_set1_epi64(static_cast<long long>(qi[0]))));
            for (int w = 1; w < W; ++w)
                acc = _mm512_add_epi64(acc, _mm512_popcnt_epi64(_mm512_xor_si512(
                                                t[w], _mm512_set1_epi64(static_cast<long long>(qi[w])))));
            emit(s, i, acc, valid, jb, j0);
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

}  // namespace

void hamming_scan_avx512(const HammingScan& s, int64_t j0, int64_t j1) {
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

}  // namespace embedrt
