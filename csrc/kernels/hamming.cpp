#include "kernels/hamming.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "dispatch.h"
#include "parallel.h"

namespace embedrt {
namespace {

struct Geometry {
    int64_t W, nbytes;
    uint8_t lastmask;
    explicit Geometry(int64_t nbits)
        : W((nbits + 63) / 64),
          nbytes((nbits + 7) / 8),
          lastmask(nbits % 8 ? static_cast<uint8_t>(0xFF << (8 - nbits % 8)) : uint8_t(0xFF)) {}
};

// Queries as W zero-padded 64-bit words each, the bits past nbits cleared.
std::vector<uint64_t> pad_queries(const uint8_t* q, int64_t m, int64_t ldq, const Geometry& g) {
    std::vector<uint64_t> out(static_cast<size_t>(m * g.W), 0);
    for (int64_t i = 0; i < m; ++i) {
        uint8_t* dst = reinterpret_cast<uint8_t*>(out.data() + i * g.W);
        std::memcpy(dst, q + i * ldq, static_cast<size_t>(g.nbytes));
        dst[g.nbytes - 1] &= g.lastmask;
    }
    return out;
}

// Per-thread scratch for a block of transposed codes (64-byte aligned).
uint64_t* block_scratch(int64_t W) {
    thread_local std::vector<uint64_t> buf;
    // 256 codes of W <= 8 words, or 64 codes of W words rounded up to a multiple of 8
    const size_t need = static_cast<size_t>((W <= 8 ? 256 * W : 64 * ((W + 7) / 8 * 8)) + 8);
    if (buf.size() < need) buf.assign(need, 0);
    uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
    return reinterpret_cast<uint64_t*>((p + 63) & ~uintptr_t(63));
}

constexpr int64_t kTileCodes = 2048;        // database codes per matrix tile (multiple of 8)
constexpr int64_t kMinPartCodes = 16384;    // smallest database range worth its own heaps
constexpr int64_t kCountingK = 512;        // above this k, select by counting distances
constexpr int64_t kMaxCountBytes = int64_t(8) << 20;   // distance buffer of the counting select

int64_t queries_per_chunk(int64_t W, int64_t cap) {
    // keep a chunk of padded queries within ~64 KB (L1/L2 resident while codes stream by)
    return std::max<int64_t>(1, std::min<int64_t>(cap, 8192 / W));
}

}  // namespace

void hamming_scan(const HammingScan& s, int64_t j0, int64_t j1) {
    if (s.m <= 0 || j1 <= j0) return;
    switch (active_isa()) {
#if defined(EMBEDRT_HAVE_X86)
        case Isa::avx512: hamming_scan_avx512icl(s, j0, j1); return;
        // for top-k the table lookups beat the zmm nibble counts too (Zen 4 forced to
        // avx512-skx, 64 queries over 512-bit codes: 1.2x), so the AVX-512 levels without
        // VPOPCNTDQ run them there; for distances out the zmm counts stay faster (1.25x)
        case Isa::avx512_vnni:
        case Isa::avx512_skx:
            if (!s.out && hamming_lut_fits(s)) hamming_scan_lut_avx2(s, j0, j1);
            else hamming_scan_avx512(s, j0, j1);
            return;
        case Isa::avx2:
            if (hamming_lut_fits(s)) hamming_scan_lut_avx2(s, j0, j1);
            else hamming_scan_avx2(s, j0, j1);
            return;
#endif
#if defined(EMBEDRT_HAVE_NEON)
        case Isa::neon: hamming_scan_neon(s, j0, j1); return;
#endif
        default: hamming_scan_scalar(s, j0, j1); return;
    }
}

void hamming_matrix(const uint8_t* a, int64_t m, int64_t lda, const uint8_t* b, int64_t n,
                    int64_t ldb, int64_t nbits, uint32_t* out, int64_t ldo) {
    if (m <= 0 || n <= 0) return;
    if (nbits <= 0) {
        for (int64_t i = 0; i < m; ++i) std::fill(out + i * ldo, out + i * ldo + n, 0u);
        return;
    }
    const Geometry g(nbits);
    const std::vector<uint64_t> qp = pad_queries(a, m, lda, g);
    // Few queries per tile: each step of 16 codes writes one cache line in each query row, and
    // rows a power of two apart compete for the same cache sets.
    const int64_t qb = queries_per_chunk(g.W, 32);
    const int64_t nqt = (m + qb - 1) / qb, njt = (n + kTileCodes - 1) / kTileCodes;
    parallel_for(nqt * njt, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t qt = t / njt, jt = t % njt;
            const int64_t i0 = qt * qb, i1 = std::min(m, i0 + qb);
            const int64_t j0 = jt * kTileCodes, j1 = std::min(n, j0 + kTileCodes);
            HammingScan s;
            s.q = qp.data() + i0 * g.W;
            s.m = i1 - i0;
            s.W = g.W;
            s.db = b;
            s.ldb = ldb;
            s.nbytes = g.nbytes;
            s.lastmask = g.lastmask;
            s.out = out + i0 * ldo + j0;
            s.ldo = ldo;
            s.scratch = block_scratch(g.W);
            hamming_scan(s, j0, j1);
        }
    });
}

namespace {

// k' > kCountingK: all distances of a chunk of queries, then a counting select per query
// (distances are integers in [0, nbits]), which emits (distance, id) already sorted.
void topk_counting(const uint8_t* q, int64_t m, int64_t ldq, const uint8_t* db, int64_t n,
                   int64_t ldb, int64_t nbits, int64_t kk, int32_t* out_dist, int64_t* out_ids) {
    const int64_t qc = std::max<int64_t>(1, std::min<int64_t>(m, kMaxCountBytes / (4 * n)));
    std::vector<uint32_t> dist(static_cast<size_t>(qc * n));
    for (int64_t c0 = 0; c0 < m; c0 += qc) {
        const int64_t c1 = std::min(m, c0 + qc);
        hamming_matrix(q + c0 * ldq, c1 - c0, ldq, db, n, ldb, nbits, dist.data(), n);
        parallel_for(c1 - c0, 1, [&](int64_t r0, int64_t r1) {
            std::vector<int64_t> start(static_cast<size_t>(nbits + 2));
            for (int64_t r = r0; r < r1; ++r) {
                const uint32_t* d = dist.data() + r * n;
                std::fill(start.begin(), start.end(), 0);
                for (int64_t j = 0; j < n; ++j) ++start[d[j]];
                // cutoff D: the smallest distance whose cumulative count reaches kk
                int64_t cum = 0, D = 0;
                while (cum + start[D] < kk) cum += start[D++];
                const int64_t take_d = kk - cum;  // entries at distance D to keep (in id order)
                int64_t pos = 0;
                for (int64_t v = 0; v < D; ++v) {
                    const int64_t c = start[v];
                    start[v] = pos;
                    pos += c;
                }
                start[D] = pos;
                int32_t* od = out_dist + (c0 + r) * kk;
                int64_t* oi = out_ids + (c0 + r) * kk;
                int64_t left_d = take_d;
                for (int64_t j = 0; j < n; ++j) {
                    const int64_t v = d[j];
                    if (v < D || (v == D && left_d > 0)) {
                        if (v == D) --left_d;
                        const int64_t p = start[v]++;
                        od[p] = static_cast<int32_t>(v);
                        oi[p] = j;
                    }
                }
            }
        });
    }
}

}  // namespace

void hamming_topk(const uint8_t* q, int64_t m, int64_t ldq, const uint8_t* db, int64_t n,
                  int64_t ldb, int64_t nbits, int64_t k, int32_t* out_dist, int64_t* out_ids) {
    const int64_t kk = std::min(k, n);
    if (m <= 0 || kk <= 0) return;
    if (kk > kCountingK || nbits <= 0) {
        topk_counting(q, m, ldq, db, n, ldb, std::max<int64_t>(nbits, 0), kk, out_dist, out_ids);
        return;
    }
    const Geometry g(nbits);
    const std::vector<uint64_t> qp = pad_queries(q, m, ldq, g);
    topk::Split split;
    split.qchunk = queries_per_chunk(g.W, 256);
    split.align = 8;
    const int64_t nqc = (m + split.qchunk - 1) / split.qchunk;
    const int64_t threads = get_num_threads();
    // Split the database too when there are few query chunks, so that one query still uses
    // every thread; each (query chunk, part) keeps its own heaps, merged at the end. Each part
    // starts with empty heaps (no distance threshold yet), and that warm-up is paid once per
    // part and query, so use as few parts as keep every thread busy: one per thread.
    if (threads > 1 && nqc < 2 * threads)
        split.parts = std::min<int64_t>((threads + nqc - 1) / nqc, std::max<int64_t>(1, n / kMinPartCodes));
    topk::scan_topk<int32_t, Best::smallest>(
        m, n, kk, split,
        [&](HammingHeaps h, int64_t i0, int64_t i1, int64_t j0, int64_t j1) {
            HammingScan s;
            s.q = qp.data() + i0 * g.W;
            s.m = i1 - i0;
            s.W = g.W;
            s.db = db;
            s.ldb = ldb;
            s.nbytes = g.nbytes;
            s.lastmask = g.lastmask;
            s.heaps = &h;
            s.scratch = block_scratch(g.W);
            hamming_scan(s, j0, j1);
        },
        out_dist, out_ids);
}

void binary_matmul(const uint8_t* a, int64_t m, int64_t lda, const uint8_t* b, int64_t n,
                   int64_t ldb, int64_t nbits, int32_t* out, int64_t ldo) {
    if (m <= 0 || n <= 0) return;
    uint32_t* h = reinterpret_cast<uint32_t*>(out);
    hamming_matrix(a, m, lda, b, n, ldb, nbits, h, ldo);
    const int32_t nb = static_cast<int32_t>(nbits);
    parallel_for(m, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i)
            for (int64_t j = 0; j < n; ++j)
                out[i * ldo + j] = nb - 2 * static_cast<int32_t>(h[i * ldo + j]);
    });
}

}  // namespace embedrt
