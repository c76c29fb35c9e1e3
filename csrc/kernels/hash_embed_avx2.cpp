// AVX2 paths: MurmurHash3 x64_128 across 4 keys per vector. AVX2 has no 64-bit multiply, so
// the low 64 bits of k * C are assembled from three 32 x 32 -> 64 products (vpmuludq).
// Outputs beyond 4 MB are written with non-temporal stores: directly when every row starts a
// 32-byte boundary, else through an L1 buffer of 4 rows copied out line by line.
#include <immintrin.h>

#include <cstdint>

#include "kernels/hash_embed.h"

namespace embedrt {
namespace {

// k * c mod 2^64 per lane, c a 64-bit constant.
inline __m256i mul64c(__m256i k, uint64_t c) {
    const __m256i clo = _mm256_set1_epi64x(int64_t(c & 0xffffffffULL));
    const __m256i chi = _mm256_set1_epi64x(int64_t(c >> 32));
    __m256i lo = _mm256_mul_epu32(k, clo);
    __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(k, chi),
                                     _mm256_mul_epu32(_mm256_srli_epi64(k, 32), clo));
    return _mm256_add_epi64(lo, _mm256_slli_epi64(cross, 32));
}

inline __m256i fmix4(__m256i k) {
    k = _mm256_xor_si256(k, _mm256_srli_epi64(k, 33));
    k = mul64c(k, 0xff51afd7ed558ccdULL);
    k = _mm256_xor_si256(k, _mm256_srli_epi64(k, 33));
    k = mul64c(k, 0xc4ceb9fe1a85ec53ULL);
    k = _mm256_xor_si256(k, _mm256_srli_epi64(k, 33));
    return k;
}

inline void murmur4(__m256i k, __m256i seed8, __m256i* h1o, __m256i* h2o) {
    k = mul64c(k, 0x87c37b91114253d5ULL);
    k = _mm256_or_si256(_mm256_slli_epi64(k, 31), _mm256_srli_epi64(k, 33));
    k = mul64c(k, 0x4cf5ad432745937fULL);
    __m256i h1 = _mm256_xor_si256(seed8, k);
    __m256i h2 = seed8;
    h1 = _mm256_add_epi64(h1, h2);
    h2 = _mm256_add_epi64(h2, h1);
    h1 = fmix4(h1);
    h2 = fmix4(h2);
    h1 = _mm256_add_epi64(h1, h2);
    h2 = _mm256_add_epi64(h2, h1);
    *h1o = h1;
    *h2o = h2;
}

// a % d per 64-bit lane holding a 32-bit a; mlo/mhi: halves of the fastmod multiplier.
inline __m256i fastmod4(__m256i a, __m256i mlo, __m256i mhi, __m256i d) {
    __m256i low = _mm256_add_epi64(_mm256_mul_epu32(a, mlo),
                                   _mm256_slli_epi64(_mm256_mul_epu32(a, mhi), 32));
    __m256i t = _mm256_srli_epi64(_mm256_mul_epu32(low, d), 32);
    __m256i u = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(low, 32), d), t);
    return _mm256_srli_epi64(u, 32);
}

inline __m256i load_keys(const uint64_t* p, int64_t cnt) {
    if (cnt >= 4) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p));
    const __m256i lane = _mm256_setr_epi64x(0, 1, 2, 3);
    __m256i mask = _mm256_cmpgt_epi64(_mm256_set1_epi64x(cnt), lane);
    return _mm256_maskload_epi64(reinterpret_cast<const long long*>(p), mask);
}

inline void prefetch_row(const float* r, int64_t dim) {
    // every cache line the row touches (rows need not start on one)
    uintptr_t a = reinterpret_cast<uintptr_t>(r) & ~uintptr_t(63);
    const uintptr_t last = reinterpret_cast<uintptr_t>(r) + uintptr_t(dim * 4) - 1;
    for (; a <= last; a += 64) _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T0);
}

// o = (((0 + r0) + r1) + r2) + r3 over dim floats. Stream: o is 32-byte aligned and dim a
// multiple of 8; non-temporal stores (large outputs that would only evict the table).
template <bool Stream>
inline void sum4(const float* r0, const float* r1, const float* r2, const float* r3, int64_t dim,
                 float* o) {
    int64_t j = 0;
    if (Stream) {
        for (; j < dim; j += 8) {
            __m256 a = _mm256_add_ps(_mm256_setzero_ps(), _mm256_loadu_ps(r0 + j));
            a = _mm256_add_ps(a, _mm256_loadu_ps(r1 + j));
            a = _mm256_add_ps(a, _mm256_loadu_ps(r2 + j));
            a = _mm256_add_ps(a, _mm256_loadu_ps(r3 + j));
            _mm256_stream_ps(o + j, a);
        }
        return;
    }
    for (; j + 16 <= dim; j += 16) {
        __m256 a = _mm256_add_ps(_mm256_setzero_ps(), _mm256_loadu_ps(r0 + j));
        __m256 b = _mm256_add_ps(_mm256_setzero_ps(), _mm256_loadu_ps(r0 + j + 8));
        a = _mm256_add_ps(a, _mm256_loadu_ps(r1 + j));
        b = _mm256_add_ps(b, _mm256_loadu_ps(r1 + j + 8));
        a = _mm256_add_ps(a, _mm256_loadu_ps(r2 + j));
        b = _mm256_add_ps(b, _mm256_loadu_ps(r2 + j + 8));
        a = _mm256_add_ps(a, _mm256_loadu_ps(r3 + j));
        b = _mm256_add_ps(b, _mm256_loadu_ps(r3 + j + 8));
        _mm256_storeu_ps(o + j, a);
        _mm256_storeu_ps(o + j + 8, b);
    }
    if (j + 8 <= dim) {
        __m256 a = _mm256_add_ps(_mm256_setzero_ps(), _mm256_loadu_ps(r0 + j));
        a = _mm256_add_ps(a, _mm256_loadu_ps(r1 + j));
        a = _mm256_add_ps(a, _mm256_loadu_ps(r2 + j));
        a = _mm256_add_ps(a, _mm256_loadu_ps(r3 + j));
        _mm256_storeu_ps(o + j, a);
        j += 8;
    }
    if (j < dim && dim >= 8) {
        // the last 8 floats (rewriting a few sums already stored with the same values)
        j = dim - 8;
        __m256 a = _mm256_add_ps(_mm256_setzero_ps(), _mm256_loadu_ps(r0 + j));
        a = _mm256_add_ps(a, _mm256_loadu_ps(r1 + j));
        a = _mm256_add_ps(a, _mm256_loadu_ps(r2 + j));
        a = _mm256_add_ps(a, _mm256_loadu_ps(r3 + j));
        _mm256_storeu_ps(o + j, a);
        return;
    }
    for (; j < dim; ++j) {
        float acc = 0.0f;
        acc += r0[j];
        acc += r1[j];
        acc += r2[j];
        acc += r3[j];
        o[j] = acc;
    }
}

constexpr int64_t kStageFloats = 8 * 512;  // rows of up to 512 floats are staged

// Copies n floats from src to dst: ordinary stores for the partial cache lines at either
// end, non-temporal stores for every whole line in between. dst is 4-byte aligned.
inline void copy_stream(const float* src, int64_t n, float* dst) {
    int64_t head = int64_t((64 - (reinterpret_cast<uintptr_t>(dst) & 63)) & 63) / 4;
    if (head > n) head = n;
    int64_t j = 0;
    for (; j < head; ++j) dst[j] = src[j];
    for (; j + 16 <= n; j += 16) {
        _mm256_stream_ps(dst + j, _mm256_loadu_ps(src + j));
        _mm256_stream_ps(dst + j + 8, _mm256_loadu_ps(src + j + 8));
    }
    for (; j < n; ++j) dst[j] = src[j];
}

}  // namespace

void murmur3_128_u64_avx2(const uint64_t* keys, int64_t n, uint32_t seed, uint32_t* out) {
    const __m256i seed8 = _mm256_set1_epi64x(int64_t(uint64_t(seed) ^ 8u));
    for (int64_t i = 0; i < n; i += 4) {
        int64_t cnt = n - i < 4 ? n - i : 4;
        __m256i h1, h2;
        murmur4(load_keys(keys + i, cnt), seed8, &h1, &h2);
        __m256i lo = _mm256_unpacklo_epi64(h1, h2);  // key0, key2
        __m256i hi = _mm256_unpackhi_epi64(h1, h2);  // key1, key3
        __m256i o0 = _mm256_permute2x128_si256(lo, hi, 0x20);
        __m256i o1 = _mm256_permute2x128_si256(lo, hi, 0x31);
        if (cnt == 4) {
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i * 4), o0);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i * 4 + 8), o1);
        } else {
            alignas(32) uint32_t tmp[16];
            _mm256_store_si256(reinterpret_cast<__m256i*>(tmp), o0);
            _mm256_store_si256(reinterpret_cast<__m256i*>(tmp + 8), o1);
            for (int64_t w = 0; w < cnt * 4; ++w) out[i * 4 + w] = tmp[w];
        }
    }
}

void hash_embed_avx2(const uint64_t* ids, int64_t n, uint32_t seed, const float* table,
                     uint32_t rows, uint64_t fastmod_m, int64_t dim, int64_t c0, int64_t c1,
                     bool prefetch, float* out) {
    if (n <= 0 || c1 <= c0) return;
    const __m256i seed8 = _mm256_set1_epi64x(int64_t(uint64_t(seed) ^ 8u));
    const __m256i mlo = _mm256_set1_epi64x(int64_t(fastmod_m & 0xffffffffULL));
    const __m256i mhi = _mm256_set1_epi64x(int64_t(fastmod_m >> 32));
    const __m256i d = _mm256_set1_epi64x(int64_t(rows));
    const __m256i lo32 = _mm256_set1_epi64x(0xffffffffLL);
    const int64_t w = c1 - c0;
    const float* tab = table + c0;
    float* dst = out + c0;
    const bool stream = (reinterpret_cast<uintptr_t>(dst) & 31) == 0 && dim % 8 == 0 &&
                        w % 8 == 0 && uint64_t(n) * uint64_t(dim) * 4u > (4u << 20);
    // Whole rows that do not start 32-byte boundaries: the 4 rows of a block are summed into
    // an L1 buffer, then copied out with non-temporal stores on every whole cache line.
    alignas(32) float stage[kStageFloats];
    const bool staged = !stream && c0 == 0 && c1 == dim && dim * 4 <= kStageFloats &&
                        (reinterpret_cast<uintptr_t>(dst) & 3) == 0 &&
                        uint64_t(n) * uint64_t(dim) * 4u > (4u << 20);
    alignas(32) int64_t idx[2][16];
    auto block = [&](int64_t i, int64_t* o) {
        int64_t cnt = n - i < 4 ? n - i : 4;
        __m256i h1, h2;
        murmur4(load_keys(ids + i, cnt), seed8, &h1, &h2);
        _mm256_store_si256(reinterpret_cast<__m256i*>(o + 0),
                           fastmod4(_mm256_and_si256(h1, lo32), mlo, mhi, d));
        _mm256_store_si256(reinterpret_cast<__m256i*>(o + 4),
                           fastmod4(_mm256_srli_epi64(h1, 32), mlo, mhi, d));
        _mm256_store_si256(reinterpret_cast<__m256i*>(o + 8),
                           fastmod4(_mm256_and_si256(h2, lo32), mlo, mhi, d));
        _mm256_store_si256(reinterpret_cast<__m256i*>(o + 12),
                           fastmod4(_mm256_srli_epi64(h2, 32), mlo, mhi, d));
    };
    block(0, idx[0]);
    int cur = 0;
    for (int64_t i = 0; i < n; i += 4) {
        int64_t cnt = n - i < 4 ? n - i : 4;
        if (i + 4 < n) {
            block(i + 4, idx[cur ^ 1]);
            if (prefetch) {
                int64_t nc = n - i - 4 < 4 ? n - i - 4 : 4;
                for (int64_t l = 0; l < nc; ++l)
                    for (int r = 0; r < 4; ++r) prefetch_row(tab + idx[cur ^ 1][r * 4 + l] * dim, w);
            }
        }
        const int64_t* o = idx[cur];
        if (stream) {
            for (int64_t l = 0; l < cnt; ++l)
                sum4<true>(tab + o[l] * dim, tab + o[4 + l] * dim, tab + o[8 + l] * dim,
                           tab + o[12 + l] * dim, w, dst + (i + l) * dim);
        } else if (staged) {
            for (int64_t l = 0; l < cnt; ++l)
                sum4<false>(tab + o[l] * dim, tab + o[4 + l] * dim, tab + o[8 + l] * dim,
                            tab + o[12 + l] * dim, w, stage + l * dim);
            copy_stream(stage, cnt * dim, dst + i * dim);
        } else {
            for (int64_t l = 0; l < cnt; ++l)
                sum4<false>(tab + o[l] * dim, tab + o[4 + l] * dim, tab + o[8 + l] * dim,
                            tab + o[12 + l] * dim, w, dst + (i + l) * dim);
        }
        cur ^= 1;
    }
    if (stream || staged) _mm_sfence();
}

}  // namespace embedrt
