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
// The table-lookup tiles (AVX2) compute the same X from per-query tables of 16 entries per
// nibble of a plane, over the blocks32 layout below. Results are identical on every ISA path.
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

// The search layouts of the database, chosen by the running variant (sdc_layout):
//   groups8:  ceil(n / 8) groups of 8 codes, each [u][W][8] uint64 (W = ceil(nb / 8) words
//             per plane, word w of the 8 codes side by side), zero padded (the popcount tiles);
//   blocks32: ceil(n / 32) blocks of 32 codes, each [u][nb][32] bytes: for plane p and byte b,
//             byte i of 32 holds a nibble of code lut_code(i) in its low half and the same
//             nibble of code 16 + lut_code(i) in its high half, the high nibble of byte b of
//             those codes (dimensions 8b .. 8b+3) in bytes 0-15 and the low nibble
//             (dimensions 8b+4 .. 8b+7) in bytes 16-31; zero padded (the table-lookup tiles).
enum class SdcLayout : int { groups8 = 0, blocks32 = 1 };
// The code (0..15) whose nibble byte i of a 16-byte half of a blocks32 row holds (low half).
inline int sdc_lut_code(int i) { return (i & 1) * 8 + (i >> 1); }
int64_t sdc_layout_codes(SdcLayout layout);  // codes per group / block: 8 or 32

// The layout the variant that runs now (active_isa(), u) searches.
SdcLayout sdc_layout(int u);
// The kernel variant that runs now for u planes, as cpu_info() names it.
const char* sdc_variant_name(int u);

// The k (k <= n) largest scores per query, best first, ties by the smaller id:
// scores [m][k], ids [m][k]. Split across the worker pool over queries and database blocks.
// dbpacked (may be null): the whole database as sdc_pack lays it out in `layout`, so that the
// search reads it as it is instead of packing each block of db on the way (db is then not
// read). A layout other than the running variant's is not read (db is packed on the way).
void sdc_topk(const uint8_t* q, int64_t m, const uint8_t* db, int64_t n, int u, int64_t nb,
              int64_t dim, int64_t k, int32_t* scores, int64_t* ids,
              const uint64_t* dbpacked = nullptr, SdcLayout layout = SdcLayout::groups8);

// The search layout of codes [0, n) in `layout`, as uint64 words (zero padded).
int64_t sdc_packed_words(int64_t n, int u, int64_t nb, SdcLayout layout = SdcLayout::groups8);
void sdc_pack(const uint8_t* db, int64_t n, int u, int64_t nb, uint64_t* out,
              SdcLayout layout = SdcLayout::groups8);

// Rows [r0, r1) (r1 - r0 a multiple of 16) of one blocks32 block: code[c] the bytes of code c
// of the block ([u][nb], rows r < u nb), null past the last code; out the block (rows of 32).
void sdc_pack32_avx2(const uint8_t* const code[32], int64_t r0, int64_t r1, uint8_t* out);

// Table-lookup tiles (blocks32 layout). Per query i: tables [nb][32] bytes (lut + i * nb * 32:
// for byte b, bytes 0-15 give the contribution of the high nibble's 4 dimensions, bytes 16-31
// of the low nibble's, each entry t(v) = sum over the nibble's dimensions d where the bit of v
// agrees with the sign of the query's level of |level_q(d)| (0 past dim), at most
// 4 (2^u - 1)) and bias[i] = (dim (2^u - 1)^2 + (2^u - 1) sum_d |level_q(d)|) / 2, so that
//     X(q, d) = bias - sum_p 2^(u-1-p) sum_b t_b(nibbles of plane p, byte b of d).
// x, thr, mask as for the popcount tiles, over `blocks` blocks of 32 codes (4 groups each).
void sdc_lut_tile_avx2(const uint8_t* lut, const int32_t* bias, int64_t m, const uint8_t* dbblk,
                       int64_t blocks, int u, int64_t nb, int32_t* x, int64_t ldx,
                       const int32_t* thr, uint8_t* mask, int64_t ldm);

// Per-ISA tile kernels: x[i * ldx + 8 g + c] = X(query i, code c of group g) for i < m,
// g < groups. qpack [m][u][W], dbpack [groups][u][W][8].
// When mask is not null, mask[i * ldm + g] also gets bit c set iff X(i, 8 g + c) < thr[i]
// (the top-k scan then skips groups without a candidate).
void sdc_tile_scalar(const uint64_t* qpack, int64_t m, const uint64_t* dbpack, int64_t groups,
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
