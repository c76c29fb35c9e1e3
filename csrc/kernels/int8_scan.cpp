// int8 scoring: dispatcher, fused scan + top-k, gather + rescore.
#include "kernels/int8_scan.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <vector>

#include "dispatch.h"
#include "kernels/topk.h"
#include "parallel.h"

namespace embedrt {

namespace {

using ScoreHeaps = TopKHeaps<float, Best::largest>;

constexpr int64_t kBlock = 256;  // documents per dot-product block

}  // namespace

int64_t int8_q16_max(int64_t dim) {
    if (dim <= 0) return 32767;
    int64_t m = ((int64_t(1) << 31) - 1) / (128 * dim);
    return std::max<int64_t>(1, std::min<int64_t>(32767, m));
}

int64_t int8_q16_stride(int64_t dim) { return (dim + 31) / 32 * 32; }

void int8_dot_q16(const int16_t* q16, int64_t nq, const int8_t* docs, int64_t dim,
                  const int64_t* ids, int64_t n, int32_t* out, int64_t ldo) {
    if (nq <= 0 || n <= 0) return;
    switch (active_isa()) {
#if defined(EMBEDRT_HAVE_X86)
        case Isa::avx512:
        case Isa::avx512_vnni: int8_dot_q16_avx512vnni(q16, nq, docs, dim, ids, n, out, ldo); break;
        case Isa::avx512_skx: int8_dot_q16_avx512(q16, nq, docs, dim, ids, n, out, ldo); break;
        case Isa::avx2: int8_dot_q16_avx2(q16, nq, docs, dim, ids, n, out, ldo); break;
#endif
#if defined(EMBEDRT_HAVE_NEON)
        case Isa::neon: int8_dot_q16_neon(q16, nq, docs, dim, ids, n, out, ldo); break;
#endif
        default: int8_dot_q16_scalar(q16, nq, docs, dim, ids, n, out, ldo); break;
    }
}

void int8_search_q16(const int16_t* q16, const float* q_scale, int64_t nq, const int8_t* docs,
                     const float* doc_scale, int64_t n, int64_t dim, int64_t k, float* out_scores,
                     int64_t* out_ids) {
    if (nq <= 0 || k <= 0) return;
    // ~64 KB of documents per part at least, so that small scans stay on one thread; up to
    // four parts per thread, so that uneven threads still finish together.
    const int64_t grain = std::max<int64_t>(kBlock, (int64_t(1) << 16) / std::max<int64_t>(dim, 1));
    const int64_t threads = get_num_threads();
    topk::Split split;
    split.qchunk = nq;
    if (threads > 1 && n > grain) {
        const int64_t chunk = std::max<int64_t>(grain, (n + 4 * threads - 1) / (4 * threads));
        split.parts = (n + chunk - 1) / chunk;
    }
    topk::scan_topk<float, Best::largest>(
        nq, n, k, split,
        [&](const ScoreHeaps& h, int64_t, int64_t, int64_t b, int64_t e) {
            thread_local std::vector<int32_t> dots;
            thread_local std::vector<float> scores;
            dots.resize(size_t(nq * kBlock));
            scores.resize(size_t(kBlock));
            for (int64_t s = b; s < e; s += kBlock) {
                const int64_t cnt = std::min(kBlock, e - s);
                int8_dot_q16(q16, nq, docs + s * dim, dim, nullptr, cnt, dots.data(), kBlock);
                for (int64_t j = 0; j < nq; ++j) {
                    const int32_t* dj = dots.data() + j * kBlock;
                    const float qs = q_scale[j];
                    const float* ds = doc_scale + s;
                    float* sc = scores.data();
                    for (int64_t t = 0; t < cnt; ++t) sc[t] = (qs * ds[t]) * float(dj[t]);  // vectorized
                    // Cheap test of 16 scores at once against the heap's bound (-inf until it
                    // is full); most blocks have none that can enter.
                    float bound = h.bound[j];
                    for (int64_t t0 = 0; t0 < cnt; t0 += 16) {
                        const int64_t t1 = std::min(cnt, t0 + 16);
                        bool any = false;
                        for (int64_t t = t0; t < t1; ++t) any |= !(bound > sc[t]);
                        if (!any) continue;
                        for (int64_t t = t0; t < t1; ++t)
                            if (topk::may_enter<Best::largest>(sc[t], h.bound[j]))
                                topk::offer(h, j, sc[t], s + t);
                        bound = h.bound[j];
                    }
                }
            }
        },
        out_scores, out_ids);
}

void int8_rescore_q16(const int16_t* q16, const float* q_scale, int64_t nq, const int8_t* docs,
                      const float* doc_scale, int64_t n, int64_t dim, const int64_t* cand,
                      int64_t c, int64_t k, float* out_scores, int64_t* out_ids) {
    if (nq <= 0 || k <= 0) return;
    const int64_t ldq = int8_q16_stride(dim);
    int64_t grain = std::max<int64_t>(1, (int64_t(1) << 18) / std::max<int64_t>(1, c * dim));
    parallel_for(nq, grain, [&](int64_t b, int64_t e) {
        std::vector<int64_t> ids;
        std::vector<int32_t> dots;
        std::vector<topk::Entry<float>> all;
        for (int64_t j = b; j < e; ++j) {
            ids.clear();
            for (int64_t t = 0; t < c; ++t) {
                int64_t id = cand[j * c + t];
                if (id >= 0 && id < n) ids.push_back(id);
            }
            // Duplicates would be scored twice: keep the first occurrence of each id.
            std::vector<int64_t> sorted(ids);
            std::sort(sorted.begin(), sorted.end());
            if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
                sorted.erase(std::unique(sorted.begin(), sorted.end()), sorted.end());
                ids.swap(sorted);
            }
            dots.resize(ids.size());
            int8_dot_q16(q16 + j * ldq, 1, docs, dim, ids.data(), int64_t(ids.size()), dots.data(),
                         int64_t(ids.size()));
            all.clear();
            const float qs = q_scale[j];
            for (size_t t = 0; t < ids.size(); ++t)
                all.push_back(topk::Entry<float>{(qs * doc_scale[ids[t]]) * float(dots[t]), ids[t]});
            topk::write_best<Best::largest>(all, k, out_scores + j * k, out_ids + j * k);
        }
    });
}

uint64_t int8_stream_read(const uint8_t* p, int64_t nbytes) {
    std::atomic<uint64_t> result{0};
    const int64_t words = nbytes / 64;  // 64-byte lines
    parallel_for(words, 1 << 14, [&](int64_t b, int64_t e) {
        uint64_t x[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int64_t w = b; w < e; ++w) {
            __builtin_prefetch(p + (w + 16) * 64);  // may run past the end: prefetches never fault
            uint64_t v[8];
            std::memcpy(v, p + w * 64, 64);
            for (int t = 0; t < 8; ++t) x[t] ^= v[t];
        }
        uint64_t acc = 0;
        for (int t = 0; t < 8; ++t) acc ^= x[t];
        result.fetch_xor(acc);
    });
    uint64_t r = result.load();
    for (int64_t t = words * 64; t < nbytes; ++t) r ^= p[t];
    return r;
}

}  // namespace embedrt
