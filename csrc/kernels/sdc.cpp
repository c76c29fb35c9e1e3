// SDC dispatcher: packing of queries and database blocks, tiling, top-k selection, threads.
#include "kernels/sdc.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "dispatch.h"
#include "kernels/topk.h"
#include "parallel.h"

namespace embedrt {
namespace {

using SdcHeaps = TopKHeaps<int32_t, Best::smallest>;  // X: smaller is better

constexpr int64_t kBlockCodes = 256;  // database codes per packed block (a multiple of 8)
constexpr int64_t kQueryChunk = 64;   // queries per tile

inline int64_t words_of(int64_t nb) { return (nb + 7) / 8; }

// [m][u][W] uint64, zero padded.
void pack_queries(const uint8_t* q, int64_t m, int u, int64_t nb, int64_t W, uint64_t* out) {
    std::memset(out, 0, static_cast<size_t>(m * u * W) * sizeof(uint64_t));
    for (int64_t i = 0; i < m * u; ++i) std::memcpy(out + i * W, q + i * nb, static_cast<size_t>(nb));
}

// Codes [n0, n1) of db as (n1 - n0 + 7) / 8 groups [u][W][8], zero padded.
void pack_block(const uint8_t* db, int64_t n0, int64_t n1, int u, int64_t nb, int64_t W,
                uint64_t* out) {
    const int64_t groups = (n1 - n0 + 7) / 8;
    std::memset(out, 0, static_cast<size_t>(groups * u * W * 8) * sizeof(uint64_t));
    for (int64_t c = n0; c < n1; ++c) {
        const int64_t g = (c - n0) / 8, lane = (c - n0) % 8;
        uint64_t* og = out + g * u * W * 8 + lane;
        const uint8_t* code = db + c * u * nb;
        const int64_t full = nb / 8, tail = nb % 8;
        for (int p = 0; p < u; ++p) {
            const uint8_t* plane = code + p * nb;
            uint64_t* op = og + p * W * 8;
            for (int64_t w = 0; w < full; ++w) {
                uint64_t v;
                std::memcpy(&v, plane + 8 * w, 8);
                op[w * 8] = v;
            }
            if (tail) {
                uint64_t v = 0;
                std::memcpy(&v, plane + 8 * full, static_cast<size_t>(tail));
                op[full * 8] = v;
            }
        }
    }
}

void tile(const uint64_t* qpack, int64_t m, const uint64_t* dbpack, int64_t groups, int u,
          int64_t W, int32_t* x, int64_t ldx, const int32_t* thr = nullptr, uint8_t* mask = nullptr,
          int64_t ldm = 0) {
    switch (active_isa()) {
#if defined(EMBEDRT_HAVE_X86)
        case Isa::avx512: sdc_tile_avx512icl(qpack, m, dbpack, groups, u, W, x, ldx, thr, mask, ldm); return;
        case Isa::avx512_vnni:
        case Isa::avx512_skx: sdc_tile_avx512(qpack, m, dbpack, groups, u, W, x, ldx, thr, mask, ldm); return;
        case Isa::avx2: sdc_tile_avx2(qpack, m, dbpack, groups, u, W, x, ldx, thr, mask, ldm); return;
#endif
#if defined(EMBEDRT_HAVE_NEON)
        case Isa::neon: sdc_tile_neon(qpack, m, dbpack, groups, u, W, x, ldx, thr, mask, ldm); return;
#endif
        default: sdc_tile_scalar(qpack, m, dbpack, groups, u, W, x, ldx, thr, mask, ldm); return;
    }
}

// Asks for the codes [n0, n1) ahead of their packing.
void prefetch_codes(const uint8_t* db, int64_t n0, int64_t n1, int u, int64_t nb) {
    const uint8_t* p = db + n0 * u * nb;
    const uint8_t* e = db + n1 * u * nb;
    for (; p < e; p += 64) __builtin_prefetch(p, 0, 2);
}

inline int64_t full_weight_sq(int u) {
    const int64_t wt = (int64_t{1} << u) - 1;
    return wt * wt;
}

}  // namespace

int64_t sdc_max_abs_score(int u, int64_t nb) { return 8 * nb * full_weight_sq(u); }

void sdc_scores(const uint8_t* q, int64_t m, const uint8_t* db, int64_t n, int u, int64_t nb,
                int64_t dim, int32_t* scores) {
    if (m <= 0 || n <= 0) return;
    const int64_t W = words_of(nb);
    const int32_t base = static_cast<int32_t>(dim * full_weight_sq(u));
    std::vector<uint64_t> qpack(static_cast<size_t>(m * u * W));
    pack_queries(q, m, u, nb, W, qpack.data());
    const int64_t nblocks = (n + kBlockCodes - 1) / kBlockCodes;
    const int64_t nchunks = (m + kQueryChunk - 1) / kQueryChunk;
    // Tasks: database block x query chunk (block-major, so a task range shares blocks).
    parallel_for(nblocks * nchunks, 1, [&](int64_t t0, int64_t t1) {
        std::vector<uint64_t> dbpack(static_cast<size_t>(kBlockCodes * u * W));
        std::vector<int32_t> x(static_cast<size_t>(kQueryChunk * kBlockCodes));
        int64_t packed = -1;
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t b = t / nchunks, i0 = (t % nchunks) * kQueryChunk;
            const int64_t n0 = b * kBlockCodes, n1 = std::min(n, n0 + kBlockCodes);
            const int64_t groups = (n1 - n0 + 7) / 8;
            if (packed != b) {
                pack_block(db, n0, n1, u, nb, W, dbpack.data());
                packed = b;
            }
            const int64_t mc = std::min(kQueryChunk, m - i0);
            tile(qpack.data() + i0 * u * W, mc, dbpack.data(), groups, u, W, x.data(), kBlockCodes);
            for (int64_t i = 0; i < mc; ++i) {
                const int32_t* xr = x.data() + i * kBlockCodes;
                int32_t* out = scores + (i0 + i) * n + n0;
                for (int64_t j = 0; j < n1 - n0; ++j) out[j] = base - 2 * xr[j];
            }
        }
    });
}

int64_t sdc_packed_words(int64_t n, int u, int64_t nb) { return (n + 7) / 8 * u * words_of(nb) * 8; }

void sdc_pack(const uint8_t* db, int64_t n, int u, int64_t nb, uint64_t* out) {
    if (n <= 0) return;
    const int64_t W = words_of(nb);
    const int64_t nblocks = (n + kBlockCodes - 1) / kBlockCodes;
    parallel_for(nblocks, 16, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t n0 = b * kBlockCodes, n1 = std::min(n, n0 + kBlockCodes);
            pack_block(db, n0, n1, u, nb, W, out + (n0 / 8) * u * W * 8);
        }
    });
}

void sdc_topk(const uint8_t* q, int64_t m, const uint8_t* db, int64_t n, int u, int64_t nb,
              int64_t dim, int64_t k, int32_t* scores, int64_t* ids, const uint64_t* dbpacked) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    k = std::min(k, n);
    const int64_t W = words_of(nb);
    const int32_t base = static_cast<int32_t>(dim * full_weight_sq(u));
    std::vector<uint64_t> qpack(static_cast<size_t>(m * u * W));
    pack_queries(q, m, u, nb, W, qpack.data());

    // Tasks: query chunks x database parts (whole blocks); each keeps its own heaps.
    const int64_t threads = get_num_threads();
    const int64_t nblocks = (n + kBlockCodes - 1) / kBlockCodes;
    int64_t pd = 1, pq = 1;
    if (threads > 1) {
        pd = std::min<int64_t>(nblocks, 2 * threads);
        if (pd < 2 * threads) pq = std::min<int64_t>((m + 7) / 8, (2 * threads + pd - 1) / pd);
        pq = std::max<int64_t>(pq, 1);
    }
    topk::Split split;
    split.qchunk = (m + pq - 1) / pq;
    split.parts = pd;
    split.align = kBlockCodes;

    topk::scan_topk<int32_t, Best::smallest>(
        m, n, k, split,
        [&](const SdcHeaps& h, int64_t qa, int64_t qb, int64_t ja, int64_t jb) {
            constexpr int64_t kGroups = kBlockCodes / 8;
            thread_local std::vector<uint64_t> dbpack;
            thread_local std::vector<int32_t> x;
            thread_local std::vector<uint8_t> mask;
            if (!dbpacked) dbpack.resize(static_cast<size_t>(kBlockCodes * u * W));
            x.resize(static_cast<size_t>(kQueryChunk * kBlockCodes));
            mask.resize(static_cast<size_t>(kQueryChunk * kGroups));
            for (int64_t n0 = ja; n0 < jb; n0 += kBlockCodes) {
                const int64_t n1 = std::min(n, n0 + kBlockCodes);
                const int64_t groups = (n1 - n0 + 7) / 8, len = n1 - n0;
                const uint64_t* blk = dbpack.data();
                if (dbpacked) {
                    blk = dbpacked + (n0 / 8) * u * W * 8;
                } else {
                    pack_block(db, n0, n1, u, nb, W, dbpack.data());
                    if (n1 < jb) prefetch_codes(db, n1, std::min(n, n1 + kBlockCodes), u, nb);
                }
                for (int64_t i0 = qa; i0 < qb; i0 += kQueryChunk) {
                    const int64_t mc = std::min(kQueryChunk, qb - i0);
                    // the heaps' bounds are the tile's thresholds (INT32_MAX until a heap is full)
                    tile(qpack.data() + i0 * u * W, mc, blk, groups, u, W, x.data(), kBlockCodes,
                         h.bound + (i0 - qa), mask.data(), kGroups);
                    for (int64_t i = 0; i < mc; ++i) {
                        const int32_t* xr = x.data() + i * kBlockCodes;
                        const uint8_t* mr = mask.data() + i * kGroups;
                        const int64_t row = i0 - qa + i;
                        // Ids grow within a part, so an equal X never displaces a kept entry.
                        for (int64_t g = 0; g < groups; ++g) {
                            unsigned bits = mr[g];
                            while (bits) {
                                const int64_t j = g * 8 + __builtin_ctz(bits);
                                bits &= bits - 1;
                                if (j >= len) break;
                                if (xr[j] < h.bound[row]) topk::offer(h, row, xr[j], n0 + j);
                            }
                        }
                    }
                }
            }
        },
        scores, ids);

    // X -> score (S = base - 2 X is decreasing in X, so the order is kept).
    for (int64_t e = 0; e < m * k; ++e) scores[e] = base - 2 * scores[e];
}

}  // namespace embedrt
