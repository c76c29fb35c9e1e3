// AVX-512 path of embedding_bag: rows of up to 128 floats summed whole in up to 8 zmm
// accumulators, wider rows in tiles of 64 floats; rows prefetched a few ids ahead for tables
// that do not fit in cache.
#include <immintrin.h>

#include <cstdint>

#include "kernels/embedding_bag.h"

namespace embedrt {
namespace {

inline __m512 mul_rounded(__m512 w, __m512 x) {
    __m512 p = _mm512_mul_ps(w, x);
    __asm__("" : "+v"(p));  // no fusing into an FMA: the product is rounded, as on every path
    return p;
}

inline __mmask16 tail_mask(int64_t left) {
    if (left >= 16) return __mmask16(0xffff);
    if (left <= 0) return __mmask16(0);
    return __mmask16((1u << left) - 1);
}

// Every cache line of a row of at most 64 * V bytes (rows need not start on one): V
// prefetches 64 bytes apart from its start and one of its last byte, a fixed count (a loop
// over the exact lines costs more than the duplicates it saves).
template <int V>
inline void prefetch_row(const float* r, int64_t bytes) {
    const char* c = reinterpret_cast<const char*>(r);
    for (int v = 0; v < V; ++v) _mm_prefetch(c + 64 * v, _MM_HINT_T0);
    _mm_prefetch(c + bytes - 1, _MM_HINT_T0);
}

// Whole rows of up to 16 * V floats held in V accumulators. With V >= 2 the last vector is
// the row's last 16 floats (overlapping the one before when dim is not a multiple of 16):
// its lanes sum the same elements in the same order, so storing it last is exact, and no
// load is masked. V == 1 masks the load and the store.
template <int V>
void bags_narrow(const float* table, int64_t dim, const int64_t* ids, const int64_t* offsets,
                 int64_t b0, int64_t b1, const float* weights, int mode, int64_t prefetch,
                 float* out) {
    const __mmask16 kl = V == 1 ? tail_mask(dim) : __mmask16(0xffff);
    const int64_t tail = V == 1 ? 0 : dim - 16;
    const int64_t end_all = offsets[b1];
    const int64_t row_bytes = dim * 4;
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t s = offsets[b], e = offsets[b + 1];
        __m512 acc[V];
        for (int v = 0; v < V; ++v) acc[v] = _mm512_setzero_ps();
        for (int64_t p = s; p < e; ++p) {
            if (prefetch && p + prefetch < end_all)
                prefetch_row<V>(table + ids[p + prefetch] * dim, row_bytes);
            const float* row = table + ids[p] * dim;
            __m512 x[V];
            for (int v = 0; v + 1 < V; ++v) x[v] = _mm512_loadu_ps(row + 16 * v);
            x[V - 1] = V == 1 ? _mm512_maskz_loadu_ps(kl, row) : _mm512_loadu_ps(row + tail);
            if (weights) {
                const __m512 w = _mm512_set1_ps(weights[p]);
                for (int v = 0; v < V; ++v) x[v] = mul_rounded(w, x[v]);
            }
            for (int v = 0; v < V; ++v) acc[v] = _mm512_add_ps(acc[v], x[v]);
        }
        if (mode == 1 && e > s) {
            const __m512 c = _mm512_set1_ps(float(e - s));
            for (int v = 0; v < V; ++v) acc[v] = _mm512_div_ps(acc[v], c);
        }
        float* o = out + b * dim;
        for (int v = 0; v + 1 < V; ++v) _mm512_storeu_ps(o + 16 * v, acc[v]);
        if (V == 1)
            _mm512_mask_storeu_ps(o, kl, acc[0]);
        else
            _mm512_storeu_ps(o + tail, acc[V - 1]);
    }
}

}  // namespace

void embedding_bag_avx512(const float* table, int64_t dim, const int64_t* ids,
                          const int64_t* offsets, int64_t b0, int64_t b1, const float* weights,
                          int mode, int64_t prefetch, float* out) {
    switch ((dim + 15) / 16) {
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
        const __m512 inv = _mm512_set1_ps(float(e - s));
        for (int64_t t = 0; t < dim; t += 64) {
            const __mmask16 k0 = tail_mask(dim - t), k1 = tail_mask(dim - t - 16),
                            k2 = tail_mask(dim - t - 32), k3 = tail_mask(dim - t - 48);
            __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
            __m512 a2 = _mm512_setzero_ps(), a3 = _mm512_setzero_ps();
            for (int64_t p = s; p < e; ++p) {
                if (prefetch && t == 0 && p + prefetch < end_all) {
                    const float* r = table + ids[p + prefetch] * dim;
                    for (int64_t c = 0; c < dim; c += 128)
                        prefetch_row<8>(r + c, (dim - c < 128 ? dim - c : 128) * 4);
                }
                const float* row = table + ids[p] * dim + t;
                __m512 x0 = _mm512_maskz_loadu_ps(k0, row);
                __m512 x1 = _mm512_maskz_loadu_ps(k1, row + 16);
                __m512 x2 = _mm512_maskz_loadu_ps(k2, row + 32);
                __m512 x3 = _mm512_maskz_loadu_ps(k3, row + 48);
                if (weights) {
                    const __m512 w = _mm512_set1_ps(weights[p]);
                    x0 = mul_rounded(w, x0);
                    x1 = mul_rounded(w, x1);
                    x2 = mul_rounded(w, x2);
                    x3 = mul_rounded(w, x3);
                }
                a0 = _mm512_add_ps(a0, x0);
                a1 = _mm512_add_ps(a1, x1);
                a2 = _mm512_add_ps(a2, x2);
                a3 = _mm512_add_ps(a3, x3);
            }
            if (mode == 1 && e > s) {
                a0 = _mm512_div_ps(a0, inv);
                a1 = _mm512_div_ps(a1, inv);
                a2 = _mm512_div_ps(a2, inv);
                a3 = _mm512_div_ps(a3, inv);
            }
            _mm512_mask_storeu_ps(o + t, k0, a0);
            _mm512_mask_storeu_ps(o + t + 16, k1, a1);
            _mm512_mask_storeu_ps(o + t + 32, k2, a2);
            _mm512_mask_storeu_ps(o + t + 48, k3, a3);
        }
    }
}

}  // namespace embedrt
