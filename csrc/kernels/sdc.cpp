// SDC dispatcher: packing of queries and database blocks, tiling, top-k selection, threads.
#include "kernels/sdc.h"

#include <algorithm>
#include <climits>
#include <cstring>
#include <vector>

#include "dispatch.h"
#include "parallel.h"

namespace embedrt {
namespace {

constexpr int64_t kBlockCodes = 256;  // database codes per packed block (a multiple of 8)
constexpr int64_t kQueryChunk = 64;   // queries per tile

struct Entry {
    int32_t x;   // X (smaller is better)
    int64_t id;
};

inline bool worse(const Entry& a, const Entry& b) {
    return a.x > b.x || (a.x == b.x && a.id > b.id);
}

// Max-heap on `worse`: h[0] is the worst kept entry.
void sift_down(Entry* h, int64_t size, int64_t i) {
    for (;;) {
        int64_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < size && worse(h[l], h[w])) w = l;
        if (r < size && worse(h[r], h[w])) w = r;
        if (w == i) return;
        std::swap(h[i], h[w]);
        i = w;
    }
}

void heap_push(Entry* h, int64_t& size, Entry e) {
    int64_t i = size++;
    h[i] = e;
    while (i > 0) {
        int64_t p = (i - 1) / 2;
        if (!worse(h[i], h[p])) break;
        std::swap(h[i], h[p]);
        i = p;
    }
}

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

    // Tasks: pq query chunks x pd database parts; each keeps its own heaps.
    const int64_t threads = get_num_threads();
    const int64_t nblocks = (n + kBlockCodes - 1) / kBlockCodes;
    int64_t pd = 1, pq = 1;
    if (threads > 1) {
        pd = std::min<int64_t>(nblocks, 2 * threads);
        if (pd < 2 * threads) pq = std::min<int64_t>((m + 7) / 8, (2 * threads + pd - 1) / pd);
        pq = std::max<int64_t>(pq, 1);
        // Each database part keeps m * k heap entries: bound that memory for very large k.
        const int64_t budget = (int64_t{1} << 28) / static_cast<int64_t>(sizeof(Entry));
        while (pd > 1 && pd * m * k > budget) --pd;
    }
    const int64_t qper = (m + pq - 1) / pq;
    std::vector<Entry> heaps(static_cast<size_t>(pd * m * k));
    std::vector<int64_t> counts(static_cast<size_t>(pd * m), 0);

    parallel_for(pq * pd, 1, [&](int64_t t0, int64_t t1) {
        constexpr int64_t kGroups = kBlockCodes / 8;
        std::vector<uint64_t> dbpack(dbpacked ? 0 : static_cast<size_t>(kBlockCodes * u * W));
        std::vector<int32_t> x(static_cast<size_t>(kQueryChunk * kBlockCodes));
        std::vector<int32_t> thr(static_cast<size_t>(kQueryChunk));
        std::vector<uint8_t> mask(static_cast<size_t>(kQueryChunk * kGroups));
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t qc = t / pd, dc = t % pd;
            const int64_t qa = qc * qper, qb = std::min(m, qa + qper);
            const int64_t ba = nblocks * dc / pd, bb = nblocks * (dc + 1) / pd;
            for (int64_t b = ba; b < bb; ++b) {
                const int64_t n0 = b * kBlockCodes, n1 = std::min(n, n0 + kBlockCodes);
                const int64_t groups = (n1 - n0 + 7) / 8, len = n1 - n0;
                const uint64_t* blk = dbpack.data();
                if (dbpacked) {
                    blk = dbpacked + (n0 / 8) * u * W * 8;
                } else {
                    pack_block(db, n0, n1, u, nb, W, dbpack.data());
                    if (b + 1 < bb) prefetch_codes(db, n1, std::min(n, n1 + kBlockCodes), u, nb);
                }
                for (int64_t i0 = qa; i0 < qb; i0 += kQueryChunk) {
                    const int64_t mc = std::min(kQueryChunk, qb - i0);
                    for (int64_t i = 0; i < mc; ++i) {
                        const size_t at = static_cast<size_t>(dc * m + i0 + i);
                        thr[static_cast<size_t>(i)] =
                            counts[at] < k ? INT32_MAX : heaps[at * static_cast<size_t>(k)].x;
                    }
                    tile(qpack.data() + i0 * u * W, mc, blk, groups, u, W, x.data(),
                         kBlockCodes, thr.data(), mask.data(), kGroups);
                    for (int64_t i = 0; i < mc; ++i) {
                        const int32_t* xr = x.data() + i * kBlockCodes;
                        const uint8_t* mr = mask.data() + i * kGroups;
                        const size_t at = static_cast<size_t>(dc * m + i0 + i);
                        Entry* h = heaps.data() + at * static_cast<size_t>(k);
                        int64_t cnt = counts[at];
                        int32_t th = thr[static_cast<size_t>(i)];
                        // Ids grow within a part, so an equal X never displaces a kept entry.
                        for (int64_t g = 0; g < groups; ++g) {
                            unsigned bits = mr[g];
                            while (bits) {
                                const int64_t j = g * 8 + __builtin_ctz(bits);
                                bits &= bits - 1;
                                if (j >= len) break;
                                const int32_t xv = xr[j];
                                if (cnt < k) {
                                    heap_push(h, cnt, Entry{xv, n0 + j});
                                    if (cnt == k) th = h[0].x;
                                } else if (xv < th) {
                                    h[0] = Entry{xv, n0 + j};
                                    sift_down(h, k, 0);
                                    th = h[0].x;
                                }
                            }
                        }
                        counts[at] = cnt;
                    }
                }
            }
        }
    });

    // Merge the parts of each query, best first.
    std::vector<Entry> all;
    for (int64_t i = 0; i < m; ++i) {
        all.clear();
        for (int64_t dc = 0; dc < pd; ++dc) {
            const Entry* h = heaps.data() + (dc * m + i) * k;
            all.insert(all.end(), h, h + counts[static_cast<size_t>(dc * m + i)]);
        }
        std::sort(all.begin(), all.end(), [](const Entry& a, const Entry& b) { return worse(b, a); });
        for (int64_t r = 0; r < k; ++r) {
            scores[i * k + r] = base - 2 * all[static_cast<size_t>(r)].x;
            ids[i * k + r] = all[static_cast<size_t>(r)].id;
        }
    }
}

}  // namespace embedrt
