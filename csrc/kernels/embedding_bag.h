// EmbeddingBag (PyTorch semantics): out[b, :] = reduce over ids[offsets[b] : offsets[b + 1]] of
// (weight *) table[id, :]. Empty bags give zeros.
//
// Sums run over the bag's ids in order, each output element on its own, starting from +0.0,
// so every ISA path returns the same floats. Weighted sums add the rounded product w * x
// (never a fused multiply-add). mean = sum / count (an IEEE division).
#pragma once

#include <cstdint>

namespace embedrt {

enum class BagMode : int { sum = 0, mean = 1 };

// Index of the first id outside [0, rows), or -1 when all are valid.
int64_t embedding_bag_first_invalid(const int64_t* ids, int64_t n, int64_t rows);

// offsets: n_bags + 1 non-decreasing entries, offsets[n_bags] = number of ids (checked by
// callers, as are the ids). weights: one per id, or null. Threaded over bags.
void embedding_bag(const float* table, int64_t rows, int64_t dim, const int64_t* ids,
                   const int64_t* offsets, int64_t n_bags, const float* weights, BagMode mode,
                   float* out);

// Quotient-remainder compositional embedding bags (Shi et al. 2020): id i uses row i / m of
// q [*, width] and row i % m of r [m, width], combined by op (mult: q * r, add: q + r,
// concat: [q, r], 2 * width wide); then pooled per bag as embedding_bag. Ids must be valid
// (checked by callers). Threaded over bags; one portable path (the same on every ISA level).
enum class QrOp : int { mult = 0, add = 1, concat = 2 };
void qr_embedding_bag(const float* q, const float* r, int64_t width, int64_t m, const int64_t* ids,
                      const int64_t* offsets, int64_t n_bags, const float* weights, BagMode mode,
                      QrOp op, float* out);

// Per-ISA: bags [b0, b1) on the calling thread. prefetch: when > 0, prefetch the rows of the
// id that many positions ahead (tables that do not fit in cache).
void embedding_bag_scalar(const float* table, int64_t dim, const int64_t* ids,
                          const int64_t* offsets, int64_t b0, int64_t b1, const float* weights,
                          int mode, int64_t prefetch, float* out);
#if defined(EMBEDRT_HAVE_X86)
void embedding_bag_avx2(const float* table, int64_t dim, const int64_t* ids,
                        const int64_t* offsets, int64_t b0, int64_t b1, const float* weights,
                        int mode, int64_t prefetch, float* out);
void embedding_bag_avx512(const float* table, int64_t dim, const int64_t* ids,
                          const int64_t* offsets, int64_t b0, int64_t b1, const float* weights,
                          int mode, int64_t prefetch, float* out);
#endif
#if defined(EMBEDRT_HAVE_NEON)
void embedding_bag_neon(const float* table, int64_t dim, const int64_t* ids,
                        const int64_t* offsets, int64_t b0, int64_t b1, const float* weights,
                        int mode, int64_t prefetch, float* out);
#endif

}  // namespace embedrt
