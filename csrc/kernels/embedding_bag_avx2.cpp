// AVX2 path of embedding_bag: rows of up to 64 floats summed whole in up to 8 ymm
// accumulators, wider rows in tiles of 32 floats (4 ymm accumulators), masked loads for the
// tail; rows prefetched a few ids ahead for tables that do not fit in cache.
#include <immintrin.h>

#include <cstdint>

#include "kernels/embedding_bag.h"

namespace embedrt {
namespace {

inline __m256 mul_rounded(__m256 w, __m256 x) {
    __m256 p = _mm256_mul_ps(w, x);
    __asm__("" : "+x"(p));  // no fusing into an FMA: the product is rounded, as on every path
    return p;
}

inline __m256i tail_mask(int64_t left) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    int32_t l = left >= 8 ? 8 : (left <= 0 ? 0 : int32_t(left));
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(l), lane);
}

// Every cache line of a row of at most 32 * V bytes (rows need not start on one): a fixed
// count of prefetches, one per 64 bytes from its start and one of its last byte.
template <int V>
inline void prefetch_row(const float* r, int64_t bytes) {
    const char* c = reinterpret_cast<const char*>(r);
    for (int v = 0; v < (V + 1) / 2; ++v) _mm_prefetch(c + 64 * v, _MM_HINT_T0);
    _mm_prefetch(c + bytes - 1, _MM_HINT_T0);
}

// Whole rows of up to 8 * V floats held in V accumulators. With V >= 2 the last vector is
// the row's last 8 floats (overlapping the one before when dim is not a multiple of 8): its
// lanes sum the same elements in the same order, so storing it last is exact, and no load is
// masked. V == 1 masks the load and the store.
template <int V>
void bags_narrow(const float* table, int64_t dim, const int64_t* ids, const int64_t* offsets,
                 int64_t b0, int64_t b1, const float* weights, int mode, int64_t prefetch,
                 float* out) {
    const __m256i kl = tail_mask(dim);
    const bool full = V > 1 || dim == 8;
    const int64_t tail = V == 1 ? 0 : dim - 8;
    const int64_t end_all = offsets[b1];
    const int64_t row_bytes = dim * 4;
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t s = offsets[b], e = offsets[b + 1];
        __m256 acc[V];
        for (int v = 0; v < V; ++v) acc[v] = _mm256_setzero_ps();
        for (int64_t p = s; p < e; ++p) {
            if (prefetch && p + prefetch < end_all)
                prefetch_row<V>(table + ids[p + prefetch] * dim, row_bytes);
            const float* row = table + ids[p] * dim;
            __m256 x[V];
            for (int v = 0; v + 1 < V; ++v) x[v] = _mm256_loadu_ps(row + 8 * v);
            x[V - 1] = full ? _mm256_loadu_ps(row + tail) : _mm256_maskload_ps(row, kl);
            if (weights) {
                const __m256 w = _mm256_set1_ps(weights[p]);
                for (int v = 0; v < V; ++v) x[v] = mul_rounded(w, x[v]);
            }
            for (int v = 0; v < V; ++v) acc[v] = _mm256_add_ps(acc[v], x[v]);
        }
        if (mode == 1 && e > s) {
            const __m256 c = _mm256_set1_ps(float(e - s));
            for (int v = 0; v < V; ++v) acc[v] = _mm256_div_ps(acc[v], c);
        }
        float* o = out + b * dim;
        for (int v = 0; v + 1 < V; ++v) _mm256_storeu_ps(o + 8 * v, acc[v]);
        if (full)
            _mm256_storeu_ps(o + tail, acc[V - 1]);
        else
            _mm256_maskstore_ps(o, kl, acc[0]);
    }
}

}  // namespace

void embedding_bag_avx2(const float* table, int64_t dim, const int64_t* ids,
                        const int64_t* offsets, int64_t b0, int64_t b1, const float* weights,
                        int mode, int64_t prefetch, float* out) {
    switch ((dim + 7) / 8) {
        case 1: return bags_narrow<1>(table, dim, ids, offsets, b0, b1, weights, mode, prefetch, out);
        case 2: return bags_narrow<2>(table, dim, ids, offsets, b0, b1, weights, mode, prefetch, out);
        case 3: return bags_narrow<3>(table, dim, ids, offsets, b0, b1, weights, mode, prefetch, out);
        case 4: return bags_narrow<4>(table, dim, ids, offsets, b0, b1, weights, mode, prefetch, out);
        case 5: return bags_narrow<5>(table, dim, ids, offsets, b0, b1, weights, mode, prefetch, out);
        case 6: return bags_narrow<6>(table, dim, ids, offsets, b0, b1, weights, mode, prefetch, out);
        case 7: return bags_narrow<7>(table, dim, ids, offsets, b0, b1, weights, mode, prefetch, out);
        case 8: return bags_narrow<8>(table, dim, ids, offsets, b0, b1, weights, mode, prefetch, out);
        default: break;
    }
    const int64_t end_all = offsets[b1];
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t s = offsets[b], e = offsets[b + 1];
        float* o = out + b * dim;
        const __m256 inv = _mm256_set1_ps(float(e - s));
        for (int64_t t = 0; t < dim; t += 32) {
            const bool full = dim - t >= 32;
            const __m256i k0 = tail_mask(dim - t), k1 = tail_mask(dim - t - 8),
                          k2 = tail_mask(dim - t - 16), k3 = tail_mask(dim - t - 24);
            __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
            __m256 a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
            for (int64_t p = s; p < e; ++p) {
                if (prefetch && t == 0 && p + prefetch < end_all) {
                    const float* r = table + ids[p + prefetch] * dim;
                    for (int64_t c = 0; c < dim; c += 64)
                        prefetch_row<8>(r + c, (dim - c < 64 ? dim - c : 64) * 4);
                }
                const float* row = table + ids[p] * dim + t;
                __m256 x0, x1, x2, x3;
                if (full) {
                    x0 = _mm256_loadu_ps(row);
                    x1 = _mm256_loadu_ps(row + 8);
                    x2 = _mm256_loadu_ps(row + 16);
                    x3 = _mm256_loadu_ps(row + 24);
                } else {
                    x0 = _mm256_maskload_ps(row, k0);
                    x1 = _mm256_maskload_ps(row + 8, k1);
                    x2 = _mm256_maskload_ps(row + 16, k2);
                    x3 = _mm256_maskload_ps(row + 24, k3);
                }
                if (weights) {
                    const __m256 w = _mm256_set1_ps(weights[p]);
                    x0 = mul_rounded(w, x0);
                    x1 = mul_rounded(w, x1);
                    x2 = mul_rounded(w, x2);
                    x3 = mul_rounded(w, x3);
                }
                a0 = _mm256_add_ps(a0, x0);
                a1 = _mm256_add_ps(a1, x1);
                a2 = _mm256_add_ps(a2, x2);
                a3 = _mm256_add_ps(a3, x3);
            }
            if (mode == 1 && e > s) {
                a0 = _mm256_div_ps(a0, inv);
                a1 = _mm256_div_ps(a1, inv);
                a2 = _mm256_div_ps(a2, inv);
                a3 = _mm256_div_ps(a3, inv);
            }
            if (full) {
                _mm256_storeu_ps(o + t, a0);
                _mm256_storeu_ps(o + t + 8, a1);
                _mm256_storeu_ps(o + t + 16, a2);
                _mm256_storeu_ps(o + t + 24, a3);
            } else {
                _mm256_maskstore_ps(o + t, k0, a0);
                _mm256_maskstore_ps(o + t + 8, k1, a1);
                _mm256_maskstore_ps(o + t + 16, k2, a2);
                _mm256_maskstore_ps(o + t + 24, k3, a3);
            }
        }
    }
}

}  // namespace embedrt
