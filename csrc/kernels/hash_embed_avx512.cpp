// AVX-512 paths: MurmurHash3 x64_128 across 8 keys per vector (native 64-bit multiplies,
// vpmullq), fastmod of the four 32-bit words, then the gather + sum of 4 rows per id.
// Outputs beyond 4 MB are written with non-temporal stores: directly when every row starts a
// cache line, else through an L1 buffer of 8 rows copied out line by line.
#include <immintrin.h>

#include <cstdint>

#include "kernels/hash_embed.h"

namespace embedrt {
namespace {

inline __m512i fmix8(__m512i k) {
    k = _mm512_xor_si512(k, _mm512_srli_epi64(k, 33));
    k = _mm512_mullo_epi64(k, _mm512_set1_epi64(int64_t(0xff51afd7ed558ccdULL)));
    k = _mm512_xor_si512(k, _mm512_srli_epi64(k, 33));
    k = _mm512_mullo_epi64(k, _mm512_set1_epi64(int64_t(0xc4ceb9fe1a85ec53ULL)));
    k = _mm512_xor_si512(k, _mm512_srli_epi64(k, 33));
    return k;
}

// h1, h2 of MurmurHash3_x64_128 for 8 keys; seed8 = seed ^ 8 in every lane.
inline void murmur8(__m512i k, __m512i seed8, __m512i* h1o, __m512i* h2o) {
    k = _mm512_mullo_epi64(k, _mm512_set1_epi64(int64_t(0x87c37b91114253d5ULL)));
    k = _mm512_rol_epi64(k, 31);
    k = _mm512_mullo_epi64(k, _mm512_set1_epi64(int64_t(0x4cf5ad432745937fULL)));
    __m512i h1 = _mm512_xor_si512(seed8, k);
    __m512i h2 = seed8;
    h1 = _mm512_add_epi64(h1, h2);
    h2 = _mm512_add_epi64(h2, h1);
    h1 = fmix8(h1);
    h2 = fmix8(h2);
    h1 = _mm512_add_epi64(h1, h2);
    h2 = _mm512_add_epi64(h2, h1);
    *h1o = h1;
    *h2o = h2;
}

// a % d per 64-bit lane holding a 32-bit a (Lemire's fastmod; m = 2^64 / d rounded up).
inline __m512i fastmod8(__m512i a, __m512i m, __m512i d) {
    __m512i low = _mm512_mullo_epi64(a, m);
    __m512i t = _mm512_srli_epi64(_mm512_mul_epu32(low, d), 32);
    __m512i u = _mm512_add_epi64(_mm512_mul_epu32(_mm512_srli_epi64(low, 32), d), t);
    return _mm512_srli_epi64(u, 32);
}

// Row offsets (index * dim) of the 4 words of 8 keys: off[w * 8 + lane].
inline void row_offsets8(__m512i k, __m512i seed8, __m512i m, __m512i d, __m512i vdim,
                         int64_t* off) {
    __m512i h1, h2;
    murmur8(k, seed8, &h1, &h2);
    const __m512i lo32 = _mm512_set1_epi64(0xffffffffLL);
    __m512i w0 = fastmod8(_mm512_and_si512(h1, lo32), m, d);
    __m512i w1 = fastmod8(_mm512_srli_epi64(h1, 32), m, d);
    __m512i w2 = fastmod8(_mm512_and_si512(h2, lo32), m, d);
    __m512i w3 = fastmod8(_mm512_srli_epi64(h2, 32), m, d);
    _mm512_storeu_si512(off + 0, _mm512_mullo_epi64(w0, vdim));
    _mm512_storeu_si512(off + 8, _mm512_mullo_epi64(w1, vdim));
    _mm512_storeu_si512(off + 16, _mm512_mullo_epi64(w2, vdim));
    _mm512_storeu_si512(off + 24, _mm512_mullo_epi64(w3, vdim));
}

constexpr int64_t kStageFloats = 8 * 512;  // rows of up to 512 floats are staged

inline void prefetch_row(const float* r, int64_t dim) {
    // every cache line the row touches (rows need not start on one)
    uintptr_t a = reinterpret_cast<uintptr_t>(r) & ~uintptr_t(63);
    const uintptr_t last = reinterpret_cast<uintptr_t>(r) + uintptr_t(dim * 4) - 1;
    for (; a <= last; a += 64) _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
}

// o = (((0 + r0) + r1) + r2) + r3 over dim floats. Stream: o is 64-byte aligned and dim a
// multiple of 16; non-temporal stores (large outputs that would only evict the table).
template <bool Stream>
inline void sum4(const float* r0, const float* r1, const float* r2, const float* r3, int64_t dim,
                 float* o) {
    int64_t j = 0;
    if (Stream) {
        for (; j < dim; j += 16) {
            __m512 a = _mm512_add_ps(_mm512_setzero_ps(), _mm512_loadu_ps(r0 + j));
            a = _mm512_add_ps(a, _mm512_loadu_ps(r1 + j));
            a = _mm512_add_ps(a, _mm512_loadu_ps(r2 + j));
            a = _mm512_add_ps(a, _mm512_loadu_ps(r3 + j));
            _mm512_stream_ps(o + j, a);
        }
        return;
    }
    for (; j + 32 <= dim; j += 32) {
        __m512 a = _mm512_add_ps(_mm512_setzero_ps(), _mm512_loadu_ps(r0 + j));
        __m512 b = _mm512_add_ps(_mm512_setzero_ps(), _mm512_loadu_ps(r0 + j + 16));
        a = _mm512_add_ps(a, _mm512_loadu_ps(r1 + j));
        b = _mm512_add_ps(b, _mm512_loadu_ps(r1 + j + 16));
        a = _mm512_add_ps(a, _mm512_loadu_ps(r2 + j));
        b = _mm512_add_ps(b, _mm512_loadu_ps(r2 + j + 16));
        a = _mm512_add_ps(a, _mm512_loadu_ps(r3 + j));
        b = _mm512_add_ps(b, _mm512_loadu_ps(r3 + j + 16));
        _mm512_storeu_ps(o + j, a);
        _mm512_storeu_ps(o + j + 16, b);
    }
    // then at most one whole vector, and the rest as the last 16 floats of the row (rewriting
    // a few sums already stored with the same values), masked only for rows under 16 floats
    for (int pass = 0; pass < 2 && j < dim; ++pass) {
        __mmask16 mk = __mmask16(0xffff);
        if (j + 16 > dim) {
            if (dim >= 16)
                j = dim - 16;
            else
                mk = __mmask16((1u << (dim - j)) - 1);
        }
        __m512 a = _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(mk, r0 + j));
        a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(mk, r1 + j));
        a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(mk, r2 + j));
        a = _mm512_add_ps(a, _mm512_maskz_loadu_ps(mk, r3 + j));
        _mm512_mask_storeu_ps(o + j, mk, a);
        j += 16;
    }
}

// Copies n floats from src to dst: ordinary (masked) stores for the partial cache lines at
// either end, non-temporal stores for every whole line in between. dst is 4-byte aligned.
inline void copy_stream(const float* src, int64_t n, float* dst) {
    int64_t head = int64_t((64 - (reinterpret_cast<uintptr_t>(dst) & 63)) & 63) / 4;
    if (head > n) head = n;
    if (head) {
        const __mmask16 k = __mmask16((1u << head) - 1);
        _mm512_mask_storeu_ps(dst, k, _mm512_maskz_loadu_ps(k, src));
    }
    int64_t j = head;
    for (; j + 16 <= n; j += 16) _mm512_stream_ps(dst + j, _mm512_loadu_ps(src + j));
    if (j < n) {
        const __mmask16 k = __mmask16((1u << (n - j)) - 1);
        _mm512_mask_storeu_ps(dst + j, k, _mm512_maskz_loadu_ps(k, src + j));
    }
}

}  // namespace

void murmur3_128_u64_avx512(const uint64_t* keys, int64_t n, uint32_t seed, uint32_t* out) {
    const __m512i seed8 = _mm512_set1_epi64(int64_t(uint64_t(seed) ^ 8u));
    const __m512i idx0 = _mm512_setr_epi64(0, 8, 1, 9, 2, 10, 3, 11);
    const __m512i idx1 = _mm512_setr_epi64(4, 12, 5, 13, 6, 14, 7, 15);
    for (int64_t i = 0; i < n; i += 8) {
        int64_t cnt = n - i < 8 ? n - i : 8;
        __mmask8 mk = __mmask8((1u << cnt) - 1);
        __m512i k = _mm512_maskz_loadu_epi64(mk, keys + i);
        __m512i h1, h2;
        murmur8(k, seed8, &h1, &h2);
        __m512i o0 = _mm512_permutex2var_epi64(h1, idx0, h2);
        __m512i o1 = _mm512_permutex2var_epi64(h1, idx1, h2);
        // 4 uint32 words per key; keys 0-3 in o0, 4-7 in o1.
        __mmask8 m0 = __mmask8(cnt >= 4 ? 0xff : (1u << (2 * cnt)) - 1);
        __mmask8 m1 = __mmask8(cnt <= 4 ? 0 : (cnt >= 8 ? 0xff : (1u << (2 * (cnt - 4))) - 1));
        _mm512_mask_storeu_epi64(out + i * 4, m0, o0);
        _mm512_mask_storeu_epi64(out + i * 4 + 16, m1, o1);
    }
}

void hash_embed_avx512(const uint64_t* ids, int64_t n, uint32_t seed, const float* table,
                       uint32_t rows, uint64_t fastmod_m, int64_t dim, int64_t c0, int64_t c1,
                       bool prefetch, float* out) {
    if (n <= 0 || c1 <= c0) return;
    const __m512i seed8 = _mm512_set1_epi64(int64_t(uint64_t(seed) ^ 8u));
    const __m512i m = _mm512_set1_epi64(int64_t(fastmod_m));
    const __m512i d = _mm512_set1_epi64(int64_t(rows));
    const __m512i vdim = _mm512_set1_epi64(dim);
    const int64_t w = c1 - c0;
    const float* tab = table + c0;
    float* dst = out + c0;
    // Non-temporal stores when every row segment starts a cache line and the whole output
    // (not just this call's part) is larger than the caches would keep.
    const bool stream = (reinterpret_cast<uintptr_t>(dst) & 63) == 0 && dim % 16 == 0 &&
                        w % 16 == 0 && uint64_t(n) * uint64_t(dim) * 4u > (4u << 20);
    // Whole rows whose lines the rows do not start (dim not a multiple of 16): the 8 rows
    // of a block are summed into an L1 buffer, then copied out with non-temporal stores on
    // every whole line (the partial lines where blocks meet get ordinary stores).
    alignas(64) float stage[kStageFloats];
    const bool staged = !stream && c0 == 0 && c1 == dim && dim * 8 <= kStageFloats &&
                        (reinterpret_cast<uintptr_t>(dst) & 3) == 0 &&
                        uint64_t(n) * uint64_t(dim) * 4u > (4u << 20);
    alignas(64) int64_t off[2][32];
    auto block = [&](int64_t i, int64_t* o) {
        int64_t cnt = n - i < 8 ? n - i : 8;
        __m512i k = _mm512_maskz_loadu_epi64(__mmask8((1u << cnt) - 1), ids + i);
        row_offsets8(k, seed8, m, d, vdim, o);
    };
    block(0, off[0]);
    int cur = 0;
    for (int64_t i = 0; i < n; i += 8) {
        int64_t cnt = n - i < 8 ? n - i : 8;
        if (i + 8 < n) {
            block(i + 8, off[cur ^ 1]);
            if (prefetch) {
                int64_t nc = n - i - 8 < 8 ? n - i - 8 : 8;
                for (int64_t l = 0; l < nc; ++l)
                    for (int r = 0; r < 4; ++r) prefetch_row(tab + off[cur ^ 1][r * 8 + l], w);
            }
        }
        const int64_t* o = off[cur];
        if (stream) {
            for (int64_t l = 0; l < cnt; ++l)
                sum4<true>(tab + o[l], tab + o[8 + l], tab + o[16 + l], tab + o[24 + l], w,
                           dst + (i + l) * dim);
        } else if (staged) {
            for (int64_t l = 0; l < cnt; ++l)
                sum4<false>(tab + o[l], tab + o[8 + l], tab + o[16 + l], tab + o[24 + l], w,
                            stage + l * dim);
            copy_stream(stage, cnt * dim, dst + i * dim);
        } else {
            for (int64_t l = 0; l < cnt; ++l)
                sum4<false>(tab + o[l], tab + o[8 + l], tab + o[16 + l], tab + o[24 + l], w,
                            dst + (i + l) * dim);
        }
        cur ^= 1;
    }
    if (stream || staged) _mm_sfence();
}

}  // namespace embedrt
