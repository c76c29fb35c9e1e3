// Hamming distances between packed bit codes (MSB-first bytes, as numpy.packbits), their
// top-k and the +/-1 dot products derived from them.
//
// Every function takes `nbits`: only the first nbits bits of each code count (the unused low
// bits of the last byte are masked), and row strides in bytes, so a code may be wider than
// ceil(nbits / 8) bytes. Results are integers, identical on every ISA path and thread count.
//
// The inner scans work on a block of 8 database codes transposed into 64-bit words (word w of
// the 8 codes side by side), so that one query against 8 codes is W times
// "xor with a broadcast word, popcount, add" with no horizontal reduction.
#pragma once

#include <cstdint>

#include "kernels/topk.h"

namespace embedrt {

// One bounded top-k heap per query (topk.h), ordered by (distance, id). Scans offer a
// candidate only when its distance is below bound[i] (INT32_MAX while the heap is not full,
// else its worst distance: ids arrive in increasing order, so an equal distance never
// displaces an entry).
using HammingHeaps = TopKHeaps<int32_t, Best::smallest>;

// One scan: queries (already padded into W 64-bit words each, tail bits zero) against
// database codes j0 <= j < j1 (row j at db + j * ldb, nbytes bytes used, the last byte ANDed
// with lastmask). Writes distances to out[i * ldo + (j - j0)] when out is set, and offers
// every (distance, j) to heap i when heaps is set (ids are scanned in increasing order).
struct HammingScan {
    const uint64_t* q = nullptr;
    int64_t m = 0, W = 0;
    const uint8_t* db = nullptr;
    int64_t ldb = 0, nbytes = 0;
    uint8_t lastmask = 0xFF;
    uint32_t* out = nullptr;
    int64_t ldo = 0;
    HammingHeaps* heaps = nullptr;
    uint64_t* scratch = nullptr;  // W <= 8: 256 * W words, else 64 * roundup(W, 8) (64-byte aligned)
};

void hamming_scan_scalar(const HammingScan& s, int64_t j0, int64_t j1);
void hamming_scan_avx2(const HammingScan& s, int64_t j0, int64_t j1);
void hamming_scan_avx512(const HammingScan& s, int64_t j0, int64_t j1);     // AVX512-BW lookups
void hamming_scan_avx512icl(const HammingScan& s, int64_t j0, int64_t j1);  // VPOPCNTQ
void hamming_scan_neon(const HammingScan& s, int64_t j0, int64_t j1);  // aarch64 builds only
void hamming_scan(const HammingScan& s, int64_t j0, int64_t j1);  // dispatches on active_isa()

// The table-lookup scan (AVX2; also run by the AVX-512 levels without VPOPCNTDQ): per query a
// 16-entry table per nibble of the code, 32 database codes per VPSHUFB, the nibble split of the
// codes shared by the queries. It pays from a few queries on (below, the block transpose costs
// more than it saves) and covers codes of up to kHammingLutMaxBytes bytes (16-bit sums).
constexpr int64_t kHammingLutMinQueries = 4;
constexpr int64_t kHammingLutMaxBytes = 4095;
inline bool hamming_lut_fits(const HammingScan& s) {
    return s.m >= kHammingLutMinQueries && s.nbytes <= kHammingLutMaxBytes;
}
void hamming_scan_lut_avx2(const HammingScan& s, int64_t j0, int64_t j1);

// out[i, j] = popcount(a_i XOR b_j) over the first nbits bits; uint32 [m, n], row stride ldo.
// Threaded over tiles of (queries x codes).
void hamming_matrix(const uint8_t* a, int64_t m, int64_t lda, const uint8_t* b, int64_t n,
                    int64_t ldb, int64_t nbits, uint32_t* out, int64_t ldo);

// The k' = min(k, n) nearest codes of each query: ascending distance, ties by smaller id.
// out_dist / out_ids are [m, k'] (row stride k'). Threaded over queries and code blocks.
// k' <= 512: bounded heaps fed by a per-query threshold test inside the scan (few codes pass
// it); larger k': distances of a few queries at a time, then a counting select over the
// integer distances 0..nbits, which emits (distance, id) already in order.
void hamming_topk(const uint8_t* q, int64_t m, int64_t ldq, const uint8_t* db, int64_t n,
                  int64_t ldb, int64_t nbits, int64_t k, int32_t* out_dist, int64_t* out_ids);

// out[i, j] = nbits - 2 * hamming(a_i, b_j) over the first nbits bits: the dot product of the
// codes read as +/-1 vectors (bit 1 -> +1, bit 0 -> -1). int32 [m, n].
void binary_matmul(const uint8_t* a, int64_t m, int64_t lda, const uint8_t* b, int64_t n,
                   int64_t ldb, int64_t nbits, int32_t* out, int64_t ldo);

}  // namespace embedrt
