// Symmetric distance calculation (SDC) between multi-bit binary codes (BEBR).
//
// A code of u bit planes stores each dimension as the odd level
//     level = sum_i 2^(u-1-i) * b_i,   b_i in {-1, +1}   (plane 0 is the most significant),
// so a dimension takes one of the 2^u values -(2^u-1), ..., -1, +1, ..., 2^u-1.
// Layout of one code: [u][nb] bytes, plane after plane, bits packed MSB-first within a byte
// (numpy.packbits order), bit 1 meaning +1. Bits past the last dimension must be zero.
//
// The score of a query code q and a database code d is the exact integer
//     S(q, d) = sum_dims level_q * level_d
//             = sum_ij w_i w_j (dim - 2 popcount(q_i XOR d_j)),   w_i = 2^(u-1-i),
// computed from the bits only. Internally the kernels compute
//     X(q, d) = sum_ij w_i w_j popcount(q_i XOR d_j)
// (smaller X = larger score) on "packed" operands:
//   queries:   [m][u][W] uint64, W = ceil(nb / 8), zero padded;
//   database:  groups of 8 codes, [groups][u][W][8] uint64 (word w of plane j of the 8 codes
//              side by side), zero padded.
// Results are identical on every ISA path.
#pragma once

#include <cstdint>

namespace embedrt {

constexpr int kSdcMaxBits = 4;

// The largest |score| for codes of `nb` bytes per plane and `u` planes: 8 nb (2^u - 1)^2.
// Callers check that it fits in int32.
int64_t sdc_max_abs_score(int u, int64_t nb);

// scores[i * n + j] = S(q_i, d_j) for q [m][u][nb], db [n][u][nb] (uint8), dims <= 8 nb.
// Split across the worker pool.
void sdc_scores(const uint8_t* q, int64_t m, const uint8_t* db, int64_t n, int u, int64_t nb,
                int64_t dim, int32_t* scores);

// The k (k <= n) largest scores per query, best first, ties by the smaller id:
// scores [m][k], ids [m][k]. Split across the worker pool over queries and database blocks.
// dbpacked (may be null): the whole database as sdc_pack lays it out, so that the search
// reads it as it is instead of packing each block of db on the way (db is then not read).
void sdc_topk(const uint8_t* q, int64_t m, const uint8_t* db, int64_t n, int u, int64_t nb,
              int64_t dim, int64_t k, int32_t* scores, int64_t* ids,
              const uint64_t* dbpacked = nullptr);

// The search layout of codes [0, n): ceil(n / 8) groups of 8 codes, each [u][W][8] uint64
// (W = ceil(nb / 8) words per plane, word w of the 8 codes side by side), zero padded.
int64_t sdc_packed_words(int64_t n, int u, int64_t nb);
void sdc_pack(const uint8_t* db, int64_t n, int u, int64_t nb, uint64_t* out);

// Per-ISA tile kernels: x[i * ldx + 8 g + c] = X(query i, code c of group g) for i < m,
// g < groups. qpack [m][u][W], dbpack [groups][u][W][8].
// When mask is not null, mask[i * ldm + g] also gets bit c set iff X(i, 8 g + c) < thr[i]
// (the top-k scan then skips groups without a candidate).
void sdc_tile_scalar(const uint64_t* qpack, int64_t m, const uint64_t* dbpack, int64_t groups,
                     int u, int64_t W, int32_t* x, int64_t ldx, const int32_t* thr,
                     uint8_t* mask, int64_t ldm);
void sdc_tile_avx2(const uint64_t* qpack, int64_t m, const uint64_t* dbpack, int64_t groups,
                   int u, int64_t W, int32_t* x, int64_t ldx, const int32_t* thr,
                     uint8_t* mask, int64_t ldm);
void sdc_tile_avx512(const uint64_t* qpack, int64_t m, const uint64_t* dbpack, int64_t groups,
                     int u, int64_t W, int32_t* x, int64_t ldx, const int32_t* thr,
                     uint8_t* mask, int64_t ldm);
void sdc_tile_avx512icl(const uint64_t* qpack, int64_t m, const uint64_t* dbpack, int64_t groups,
                        int u, int64_t W, int32_t* x, int64_t ldx, const int32_t* thr,
                        uint8_t* mask, int64_t ldm);
// aarch64 builds only
void sdc_tile_neon(const uint64_t* qpack, int64_t m, const uint64_t* dbpack, int64_t groups,
                   int u, int64_t W, int32_t* x, int64_t ldx, const int32_t* thr,
                   uint8_t* mask, int64_t ldm);

}  // namespace embedrt
