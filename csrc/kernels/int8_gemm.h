// Exact int8 matrix product C[m, n] = A[m, k] . B[n, k]^T in int32.
//
// B (weights, stored documents) is packed once into an Int8Packed and reused for many A's.
// Results are bit-exact and identical on every ISA path. The packed layout is the same on
// every path, so a matrix packed under one ISA level can be used under another.
#pragma once

#include <cstdint>
#include <vector>

namespace embedrt {

// Largest k for which no int32 accumulator can overflow on any path (including the u8 x s8
// VNNI form, whose partial sums reach 255 * 128 * k before compensation).
constexpr int64_t kInt8MaxK = 65793;  // floor((2^31 - 1) / (255 * 128))

struct Int8Packed {
    int64_t n = 0, k = 0;    // logical shape of B
    int64_t kp = 0;          // k rounded up to a multiple of 4
    int64_t np = 0;          // n rounded up to a multiple of 16
    // Panels of 16 rows of B: [np / 16][kp / 4][16][4] int8, zero padded.
    std::vector<int8_t> data;
    // 128 * sum_k B[j, k] per row j (np entries): the compensation of the u8 x s8 trick.
    std::vector<int32_t> comp;
};

// Packs B[n, k] (row stride ldb). k must be <= kInt8MaxK (checked by callers).
void int8_pack(const int8_t* b, int64_t n, int64_t k, int64_t ldb, Int8Packed* out);

// C[i, j] for i < m and j0 <= j < j1 (j1 <= b.n); c points at C[0, 0], row stride ldc.
// Runs on the calling thread.
void int8_gemm_packed(const int8_t* a, int64_t m, int64_t lda, const Int8Packed& b, int64_t j0,
                      int64_t j1, int32_t* c, int64_t ldc);

// The same over the whole of C, split across the worker pool.
void int8_gemm_packed_mt(const int8_t* a, int64_t m, int64_t lda, const Int8Packed& b, int32_t* c,
                         int64_t ldc);

// Per-ISA entry points (defined in int8_gemm_<isa>.cpp).
void int8_gemm_packed_scalar(const int8_t* a, int64_t m, int64_t lda, const Int8Packed& b,
                             int64_t j0, int64_t j1, int32_t* c, int64_t ldc);

}  // namespace embedrt
