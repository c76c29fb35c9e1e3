// SDC dispatcher: packing of queries and database blocks, tiling, top-k selection, threads.
#include "kernels/sdc.h"

#include <algorithm>
#include <cstdint>
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

// Codes [n0, n1) of db as (n1 - n0 + 31) / 32 blocks [u][nb][32] bytes (SdcLayout::blocks32),
// zero padded.
void pack_block32(const uint8_t* db, int64_t n0, int64_t n1, int u, int64_t nb, uint8_t* out) {
    const int64_t blocks = (n1 - n0 + 31) / 32;
    const int64_t rows = u * nb;  // rows of 32 bytes per block
    for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t c0 = n0 + 32 * blk;
        const int64_t cnt = std::min<int64_t>(32, n1 - c0);
        const uint8_t* code[32];
        uint8_t* ob = out + blk * rows * 32;
        if (cnt < 32) std::memset(ob, 0, static_cast<size_t>(rows * 32));
        for (int c = 0; c < 32; ++c) code[c] = c < cnt ? db + (c0 + c) * rows : nullptr;
        int64_t r0 = 0;  // rows done by the vector transpose
#if defined(EMBEDRT_HAVE_X86)
        if (isa_at_least(active_isa(), Isa::avx2)) {
            r0 = rows / 16 * 16;
            sdc_pack32_avx2(code, 0, r0, ob);
        }
#endif
        if (r0 == rows) continue;
        for (int i = 0; i < 16; ++i) {
            const int ca = sdc_lut_code(i), cb = 16 + ca;
            const uint8_t* pa = code[ca];
            const uint8_t* pb = code[cb];
            if (!pa) continue;  // the missing codes are at the end: cb > ca is missing too
            uint8_t* o = ob + r0 * 32 + i;
            if (pb) {
                for (int64_t r = r0; r < rows; ++r, o += 32) {
                    const unsigned va = pa[r], vb = pb[r];
                    o[0] = static_cast<uint8_t>((va >> 4) | (vb & 0xF0u));
                    o[16] = static_cast<uint8_t>((va & 0x0Fu) | ((vb & 0x0Fu) << 4));
                }
            } else {
                for (int64_t r = r0; r < rows; ++r, o += 32) {
                    const unsigned va = pa[r];
                    o[0] = static_cast<uint8_t>(va >> 4);
                    o[16] = static_cast<uint8_t>(va & 0x0Fu);
                }
            }
        }
    }
}

// The query tables of the table-lookup tiles (see sdc.h): lut [m][nb][32], bias [m].
void lut_queries(const uint8_t* q, int64_t m, int u, int64_t nb, int64_t dim, uint8_t* lut,
                 int32_t* bias) {
    const int64_t top = (int64_t{1} << u) - 1;
    std::vector<int> level(static_cast<size_t>(8 * nb));
    for (int64_t i = 0; i < m; ++i) {
        const uint8_t* code = q + i * u * nb;
        int64_t asum = 0;
        for (int64_t d = 0; d < 8 * nb; ++d) {
            int lv = 0;
            if (d < dim) {
                for (int p = 0; p < u; ++p) {
                    const int bit = (code[p * nb + d / 8] >> (7 - d % 8)) & 1;
                    lv += (bit ? 1 : -1) * (1 << (u - 1 - p));
                }
            }
            level[static_cast<size_t>(d)] = lv;
            asum += lv < 0 ? -lv : lv;
        }
        bias[i] = static_cast<int32_t>((dim * top * top + top * asum) / 2);
        uint8_t* t = lut + i * nb * 32;
        for (int64_t b = 0; b < nb; ++b) {
            for (int half = 0; half < 2; ++half) {  // 0: dims 8b..8b+3 (high nibble), 1: 8b+4..
                const int* lv = level.data() + 8 * b + 4 * half;
                for (int v = 0; v < 16; ++v) {
                    int e = 0;
                    for (int t4 = 0; t4 < 4; ++t4) {
                        const int bit = (v >> (3 - t4)) & 1;
                        const int l = lv[t4];
                        if ((bit == 1 && l > 0) || (bit == 0 && l < 0)) e += l < 0 ? -l : l;
                    }
                    t[b * 32 + 16 * half + v] = static_cast<uint8_t>(e);
                }
            }
        }
    }
}

enum class Kind { scalar, avx512icl, neon, lut_avx2 };

struct Variant {
    Kind kind;
    SdcLayout layout;
};

// The variant for u planes at the active level (read once per call, so that one search runs
// one variant from start to end).
Variant choose(int u) {
    (void)u;
    switch (active_isa()) {
#if defined(EMBEDRT_HAVE_X86)
        case Isa::avx512: return {Kind::avx512icl, SdcLayout::groups8};
        // the table scan: faster than the popcount tiles for every u (1.3x at u = 1, 2-3x at
        // u = 2..4, 512 dimensions), and its layout is built as fast as theirs; without
        // VPOPCNTDQ also faster than the zmm nibble-count tiles (2.2x at 2 bits on a Zen 4
        // forced to avx512-skx), so the AVX-512 levels below avx512 run it too
        case Isa::avx512_vnni:
        case Isa::avx512_skx:
        case Isa::avx2: return {Kind::lut_avx2, SdcLayout::blocks32};
#endif
#if defined(EMBEDRT_HAVE_NEON)
        case Isa::neon: return {Kind::neon, SdcLayout::groups8};
#endif
        default: return {Kind::scalar, SdcLayout::groups8};
    }
}

// The queries as the variant reads them: packed words (groups8) or tables (blocks32).
struct Queries {
    Variant v;
    int u = 0;
    int64_t nb = 0, W = 0;
    std::vector<uint64_t> words;  // [m][u][W]
    std::vector<uint8_t> lut;     // [m][nb][32]
    std::vector<int32_t> bias;    // [m]

    Queries(Variant var, const uint8_t* q, int64_t m, int uu, int64_t nbb, int64_t dim)
        : v(var), u(uu), nb(nbb), W(words_of(nbb)) {
        if (v.layout == SdcLayout::blocks32) {
            lut.resize(static_cast<size_t>(m * nb * 32));
            bias.resize(static_cast<size_t>(m));
            lut_queries(q, m, u, nb, dim, lut.data(), bias.data());
        } else {
            words.resize(static_cast<size_t>(m * u * W));
            pack_queries(q, m, u, nb, W, words.data());
        }
    }

    // Words of one database block of up to kBlockCodes codes in the variant's layout.
    int64_t block_words() const {
        return v.layout == SdcLayout::blocks32 ? kBlockCodes * u * nb / 8 : kBlockCodes * u * W;
    }
    // Offset (in words) of code n0 (a multiple of kBlockCodes) in a packed database.
    int64_t offset(int64_t n0) const {
        return v.layout == SdcLayout::blocks32 ? n0 * u * nb / 8 : (n0 / 8) * u * W * 8;
    }
    void pack(const uint8_t* db, int64_t n0, int64_t n1, uint64_t* out) const {
        if (v.layout == SdcLayout::blocks32)
            pack_block32(db, n0, n1, u, nb, reinterpret_cast<uint8_t*>(out));
        else
            pack_block(db, n0, n1, u, nb, W, out);
    }

    // x[i * ldx + j] = X(query i0 + i, code j of the block) for i < mc, j < 8 groups.
    void tile(int64_t i0, int64_t mc, const uint64_t* blk, int64_t groups, int32_t* x, int64_t ldx,
              const int32_t* thr = nullptr, uint8_t* mask = nullptr, int64_t ldm = 0) const {
        const uint64_t* qp = words.data() + i0 * u * W;
        switch (v.kind) {
#if defined(EMBEDRT_HAVE_X86)
            case Kind::lut_avx2:
                sdc_lut_tile_avx2(lut.data() + i0 * nb * 32, bias.data() + i0, mc,
                                  reinterpret_cast<const uint8_t*>(blk), (groups + 3) / 4, u, nb, x,
                                  ldx, thr, mask, ldm);
                return;
            case Kind::avx512icl: sdc_tile_avx512icl(qp, mc, blk, groups, u, W, x, ldx, thr, mask, ldm); return;
#endif
#if defined(EMBEDRT_HAVE_NEON)
            case Kind::neon: sdc_tile_neon(qp, mc, blk, groups, u, W, x, ldx, thr, mask, ldm); return;
#endif
            default: sdc_tile_scalar(qp, mc, blk, groups, u, W, x, ldx, thr, mask, ldm); return;
        }
    }
};

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

// Queries per call whose tables (nb * 32 bytes each, 4 bytes per code bit, where the packed
// words take 1/8 byte) stay within 16 MB; larger batches run in turns of this many.
int64_t table_queries(int u, int64_t nb) {
    if (choose(u).layout != SdcLayout::blocks32) return INT64_MAX;
    return std::max<int64_t>(4 * kQueryChunk, (int64_t{16} << 20) / (nb * 32));
}

}  // namespace

int64_t sdc_max_abs_score(int u, int64_t nb) { return 8 * nb * full_weight_sq(u); }

void sdc_scores(const uint8_t* q, int64_t m, const uint8_t* db, int64_t n, int u, int64_t nb,
                int64_t dim, int32_t* scores) {
    if (m <= 0 || n <= 0) return;
    if (const int64_t per = table_queries(u, nb); m > per) {  // bounded table memory
        for (int64_t i0 = 0; i0 < m; i0 += per)
            sdc_scores(q + i0 * u * nb, std::min(per, m - i0), db, n, u, nb, dim, scores + i0 * n);
        return;
    }
    const int32_t base = static_cast<int32_t>(dim * full_weight_sq(u));
    const Queries qs(choose(u), q, m, u, nb, dim);
    const int64_t nblocks = (n + kBlockCodes - 1) / kBlockCodes;
    const int64_t nchunks = (m + kQueryChunk - 1) / kQueryChunk;
    // Tasks: database block x query chunk (block-major, so a task range shares blocks).
    parallel_for(nblocks * nchunks, 1, [&](int64_t t0, int64_t t1) {
        std::vector<uint64_t> dbpack(static_cast<size_t>(qs.block_words()));
        std::vector<int32_t> x(static_cast<size_t>(kQueryChunk * kBlockCodes));
        int64_t packed = -1;
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t b = t / nchunks, i0 = (t % nchunks) * kQueryChunk;
            const int64_t n0 = b * kBlockCodes, n1 = std::min(n, n0 + kBlockCodes);
            const int64_t groups = (n1 - n0 + 7) / 8;
            if (packed != b) {
                qs.pack(db, n0, n1, dbpack.data());
                packed = b;
            }
            const int64_t mc = std::min(kQueryChunk, m - i0);
            qs.tile(i0, mc, dbpack.data(), groups, x.data(), kBlockCodes);
            for (int64_t i = 0; i < mc; ++i) {
                const int32_t* xr = x.data() + i * kBlockCodes;
                int32_t* out = scores + (i0 + i) * n + n0;
                for (int64_t j = 0; j < n1 - n0; ++j) out[j] = base - 2 * xr[j];
            }
        }
    });
}

int64_t sdc_layout_codes(SdcLayout layout) { return layout == SdcLayout::blocks32 ? 32 : 8; }

SdcLayout sdc_layout(int u) { return choose(u).layout; }

const char* sdc_variant_name(int u) {
    switch (choose(u).kind) {
        case Kind::lut_avx2: return "ymm vpshufb 4-bit tables (blocks of 32 codes)";
        case Kind::avx512icl: return "vpopcntq";
        case Kind::neon: return "vcnt";
        default: return "popcount";
    }
}

int64_t sdc_packed_words(int64_t n, int u, int64_t nb, SdcLayout layout) {
    if (layout == SdcLayout::blocks32) return (n + 31) / 32 * u * nb * 4;
    return (n + 7) / 8 * u * words_of(nb) * 8;
}

void sdc_pack(const uint8_t* db, int64_t n, int u, int64_t nb, uint64_t* out, SdcLayout layout) {
    if (n <= 0) return;
    const int64_t W = words_of(nb);
    const int64_t nblocks = (n + kBlockCodes - 1) / kBlockCodes;
    parallel_for(nblocks, 16, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t n0 = b * kBlockCodes, n1 = std::min(n, n0 + kBlockCodes);
            if (layout == SdcLayout::blocks32)
                pack_block32(db, n0, n1, u, nb, reinterpret_cast<uint8_t*>(out) + n0 * u * nb);
            else
                pack_block(db, n0, n1, u, nb, W, out + (n0 / 8) * u * W * 8);
        }
    });
}

void sdc_topk(const uint8_t* q, int64_t m, const uint8_t* db, int64_t n, int u, int64_t nb,
              int64_t dim, int64_t k, int32_t* scores, int64_t* ids, const uint64_t* dbpacked,
              SdcLayout layout) {
    if (m <= 0 || n <= 0 || k <= 0) return;
    k = std::min(k, n);
    if (const int64_t per = table_queries(u, nb); m > per) {  // bounded table memory
        for (int64_t i0 = 0; i0 < m; i0 += per)
            sdc_topk(q + i0 * u * nb, std::min(per, m - i0), db, n, u, nb, dim, k, scores + i0 * k,
                     ids + i0 * k, dbpacked, layout);
        return;
    }
    const int32_t base = static_cast<int32_t>(dim * full_weight_sq(u));
    // A packed database in the running variant's layout is read as it is; otherwise the codes
    // are packed on the way.
    const Queries qs(choose(u), q, m, u, nb, dim);
    if (dbpacked && layout != qs.v.layout) dbpacked = nullptr;

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
            if (!dbpacked) dbpack.resize(static_cast<size_t>(qs.block_words()));
            x.resize(static_cast<size_t>(kQueryChunk * kBlockCodes));
            mask.resize(static_cast<size_t>(kQueryChunk * kGroups));
            for (int64_t n0 = ja; n0 < jb; n0 += kBlockCodes) {
                const int64_t n1 = std::min(n, n0 + kBlockCodes);
                const int64_t groups = (n1 - n0 + 7) / 8, len = n1 - n0;
                const uint64_t* blk = dbpack.data();
                if (dbpacked) {
                    blk = dbpacked + qs.offset(n0);
                } else {
                    qs.pack(db, n0, n1, dbpack.data());
                    if (n1 < jb) prefetch_codes(db, n1, std::min(n, n1 + kBlockCodes), u, nb);
                }
                for (int64_t i0 = qa; i0 < qb; i0 += kQueryChunk) {
                    const int64_t mc = std::min(kQueryChunk, qb - i0);
                    // the heaps' bounds are the tile's thresholds (INT32_MAX until a heap is full)
                    qs.tile(i0, mc, blk, groups, x.data(), kBlockCodes, h.bound + (i0 - qa),
                            mask.data(), kGroups);
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
