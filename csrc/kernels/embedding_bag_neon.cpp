// aarch64 path of embedding_bag (ASIMD): rows of up to 64 floats summed whole in up to 16
// accumulators of 4 floats, wider rows in tiles of 32 floats (8 accumulators); rows
// prefetched a few ids ahead for tables that do not fit in cache.
//
// A row (or last tile) whose width is not a multiple of 4 ends with the vector of its last 4
// floats, overlapping the one before: its lanes sum the same elements in the same order, so
// storing it last is exact and no load reads past the row. Rows narrower than 4 floats are
// summed one float at a time. Every element is the sum over the bag's ids in order from +0.0;
// weighted rows add the rounded product w * x (kept from fusing into an fmla), and mean
// divides by the count (fdiv, IEEE): the same floats as the scalar path.
#include <arm_neon.h>

#include <cstdint>

#include "kernels/embedding_bag.h"

namespace embedrt {
namespace {

inline float32x4_t mul_rounded(float32x4_t w, float32x4_t x) {
    float32x4_t p = vmulq_f32(w, x);
    __asm__("" : "+w"(p));  // no fusing into an fmla: the product is rounded, as on every path
    return p;
}

inline float mul_rounded1(float w, float x) {
    float p = w * x;
    __asm__("" : "+w"(p));
    return p;
}

inline void prefetch_row(const float* r, int64_t dim) {
    // every cache line the row touches (rows need not start on one)
    uintptr_t a = reinterpret_cast<uintptr_t>(r) & ~uintptr_t(63);
    const uintptr_t last = reinterpret_cast<uintptr_t>(r) + uintptr_t(dim * 4) - 1;
    for (; a <= last; a += 64) __builtin_prefetch(reinterpret_cast<const char*>(a));
}

// Columns [col, col + 4 (V - 1)) and [tail, tail + 4) of bag [s, e) into o: tail is
// col + 4 (V - 1), or the row's last 4 floats when its width is not a multiple of 4. Prefetches
// the row of the id pf positions ahead when pf is nonzero (first tile of a row only).
template <int V>
inline void bag_cols(const float* table, int64_t dim, const int64_t* ids, int64_t s, int64_t e,
                     int64_t end_all, const float* weights, int mode, int64_t pf, int64_t col,
                     int64_t tail, float* o) {
    float32x4_t acc[V];
    for (int v = 0; v < V; ++v) acc[v] = vdupq_n_f32(0.0f);
    for (int64_t p = s; p < e; ++p) {
        if (pf && p + pf < end_all) prefetch_row(table + ids[p + pf] * dim, dim);
        const float* row = table + ids[p] * dim;
        float32x4_t x[V];
        for (int v = 0; v + 1 < V; ++v) x[v] = vld1q_f32(row + col + 4 * v);
        x[V - 1] = vld1q_f32(row + tail);
        if (weights) {
            const float32x4_t w = vdupq_n_f32(weights[p]);
            for (int v = 0; v < V; ++v) x[v] = mul_rounded(w, x[v]);
        }
        for (int v = 0; v < V; ++v) acc[v] = vaddq_f32(acc[v], x[v]);
    }
    if (mode == 1 && e > s) {
        const float32x4_t c = vdupq_n_f32(float(e - s));
        for (int v = 0; v < V; ++v) acc[v] = vdivq_f32(acc[v], c);
    }
    for (int v = 0; v + 1 < V; ++v) vst1q_f32(o + col + 4 * v, acc[v]);
    vst1q_f32(o + tail, acc[V - 1]);
}

// bag_cols<nv> for nv = 1..16 (the number of vectors a row, or a row's last tile, needs).
inline void bag_span(int64_t nv, const float* table, int64_t dim, const int64_t* ids, int64_t s,
                     int64_t e, int64_t end_all, const float* weights, int mode, int64_t pf,
                     int64_t col, int64_t tail, float* o) {
#define EMBEDRT_BAG_CASE(V) \
    case V: return bag_cols<V>(table, dim, ids, s, e, end_all, weights, mode, pf, col, tail, o);
    switch (nv) {
        EMBEDRT_BAG_CASE(1) EMBEDRT_BAG_CASE(2) EMBEDRT_BAG_CASE(3) EMBEDRT_BAG_CASE(4)
        EMBEDRT_BAG_CASE(5) EMBEDRT_BAG_CASE(6) EMBEDRT_BAG_CASE(7) EMBEDRT_BAG_CASE(8)
        EMBEDRT_BAG_CASE(9) EMBEDRT_BAG_CASE(10) EMBEDRT_BAG_CASE(11) EMBEDRT_BAG_CASE(12)
        EMBEDRT_BAG_CASE(13) EMBEDRT_BAG_CASE(14) EMBEDRT_BAG_CASE(15) EMBEDRT_BAG_CASE(16)
        default: return;
    }
#undef EMBEDRT_BAG_CASE
}

// Rows of 1 to 3 floats: one float at a time, as the scalar path.
void bags_tiny(const float* table, int64_t dim, const int64_t* ids, const int64_t* offsets,
               int64_t b0, int64_t b1, const float* weights, int mode, float* out) {
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t s = offsets[b], e = offsets[b + 1];
        float acc[3] = {0.0f, 0.0f, 0.0f};
        for (int64_t p = s; p < e; ++p) {
            const float* row = table + ids[p] * dim;
            if (weights) {
                const float w = weights[p];
                for (int64_t j = 0; j < dim; ++j) acc[j] += mul_rounded1(w, row[j]);
            } else {
                for (int64_t j = 0; j < dim; ++j) acc[j] += row[j];
            }
        }
        if (mode == 1 && e > s) {
            const float c = float(e - s);
            for (int64_t j = 0; j < dim; ++j) acc[j] = acc[j] / c;
        }
        for (int64_t j = 0; j < dim; ++j) out[b * dim + j] = acc[j];
    }
}

}  // namespace

void embedding_bag_neon(const float* table, int64_t dim, const int64_t* ids,
                        const int64_t* offsets, int64_t b0, int64_t b1, const float* weights,
                        int mode, int64_t prefetch, float* out) {
    if (dim < 4) return bags_tiny(table, dim, ids, offsets, b0, b1, weights, mode, out);
    const int64_t end_all = offsets[b1];
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t s = offsets[b], e = offsets[b + 1];
        float* o = out + b * dim;
        if (dim <= 64) {
            bag_span((dim + 3) / 4, table, dim, ids, s, e, end_all, weights, mode, prefetch, 0,
                     dim - 4, o);
            continue;
        }
        for (int64_t t = 0; t < dim; t += 32) {
            const int64_t pf = t == 0 ? prefetch : 0;
            if (dim - t >= 32)
                bag_cols<8>(table, dim, ids, s, e, end_all, weights, mode, pf, t, t + 28, o);
            else
                bag_span((dim - t + 3) / 4, table, dim, ids, s, e, end_all, weights, mode, pf, t,
                         dim - 4, o);
        }
    }
}

}  // namespace embedrt
