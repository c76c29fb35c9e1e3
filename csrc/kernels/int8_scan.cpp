// int8 scoring: dispatcher, fused scan + top-k, gather + rescore.
#include "kernels/int8_scan.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <limits>
#include <mutex>
#include <vector>

#include "dispatch.h"
#include "parallel.h"

namespace embedrt {

namespace {

struct Cand {
    float score;
    int64_t id;
};

// a ranks before b: higher score, then smaller id.
inline bool better(const Cand& a, const Cand& b) {
    return a.score > b.score || (a.score == b.score && a.id < b.id);
}

// Bounded heap of the best k candidates; heap.front() is the worst kept.
struct TopK {
    int64_t k = 0;
    std::vector<Cand> heap;
    void reset(int64_t kk) {
        k = kk;
        heap.clear();
        heap.reserve(size_t(kk));
    }
    void push(float s, int64_t id) {
        Cand c{s, id};
        if (int64_t(heap.size()) < k) {
            heap.push_back(c);
            std::push_heap(heap.begin(), heap.end(), better);
        } else if (better(c, heap.front())) {
            std::pop_heap(heap.begin(), heap.end(), better);
            heap.back() = c;
            std::push_heap(heap.begin(), heap.end(), better);
        }
    }
    // Fast reject: can a score s enter at all?
    bool may_enter(float s) const {
        return int64_t(heap.size()) < k || s >= heap.front().score;
    }
};

void write_sorted(std::vector<Cand>& all, int64_t k, float* scores, int64_t* ids) {
    int64_t kk = std::min<int64_t>(k, int64_t(all.size()));
    std::partial_sort(all.begin(), all.begin() + kk, all.end(), better);
    for (int64_t t = 0; t < k; ++t) {
        if (t < kk) {
            scores[t] = all[size_t(t)].score;
            ids[t] = all[size_t(t)].id;
        } else {
            scores[t] = -std::numeric_limits<float>::infinity();
            ids[t] = -1;
        }
    }
}

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
    std::vector<std::vector<Cand>> merged(static_cast<size_t>(nq));
    std::mutex mu;
    constexpr int64_t kBlock = 256;  // documents per dot-product block
    // ~64 KB of documents per task at least, so that small scans stay on one thread.
    int64_t grain = std::max<int64_t>(kBlock, (int64_t(1) << 16) / std::max<int64_t>(dim, 1));
    parallel_for(n, grain, [&](int64_t b, int64_t e) {
        thread_local std::vector<int32_t> dots;
        thread_local std::vector<float> scores;
        thread_local std::vector<TopK> tops;
        dots.resize(size_t(nq * kBlock));
        scores.resize(size_t(kBlock));
        if (int64_t(tops.size()) < nq) tops.resize(size_t(nq));
        for (int64_t j = 0; j < nq; ++j) tops[size_t(j)].reset(k);
        for (int64_t s = b; s < e; s += kBlock) {
            int64_t cnt = std::min(kBlock, e - s);
            int8_dot_q16(q16, nq, docs + s * dim, dim, nullptr, cnt, dots.data(), kBlock);
            for (int64_t j = 0; j < nq; ++j) {
                TopK& top = tops[size_t(j)];
                const int32_t* dj = dots.data() + j * kBlock;
                const float qs = q_scale[j];
                const float* ds = doc_scale + s;
                float* sc = scores.data();
                for (int64_t t = 0; t < cnt; ++t) sc[t] = (qs * ds[t]) * float(dj[t]);  // vectorized
                if (int64_t(top.heap.size()) < k) {
                    for (int64_t t = 0; t < cnt; ++t)
                        if (top.may_enter(sc[t])) top.push(sc[t], s + t);
                    continue;
                }
                float bound = top.heap.front().score;
                for (int64_t t0 = 0; t0 < cnt; t0 += 16) {
                    // Cheap test of 16 scores at once; most blocks have none that can enter.
                    int64_t t1 = std::min(cnt, t0 + 16);
                    bool any = false;
                    for (int64_t t = t0; t < t1; ++t) any |= sc[t] >= bound;
                    if (!any) continue;
                    for (int64_t t = t0; t < t1; ++t)
                        if (sc[t] >= top.heap.front().score) top.push(sc[t], s + t);
                    bound = top.heap.front().score;
                }
            }
        }
        std::lock_guard<std::mutex> lock(mu);
        for (int64_t j = 0; j < nq; ++j) {
            auto& dst = merged[size_t(j)];
            auto& src = tops[size_t(j)].heap;
            dst.insert(dst.end(), src.begin(), src.end());
        }
    });
    for (int64_t j = 0; j < nq; ++j)
        write_sorted(merged[size_t(j)], k, out_scores + j * k, out_ids + j * k);
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
        std::vector<Cand> all;
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
                all.push_back(Cand{(qs * doc_scale[ids[t]]) * float(dots[t]), ids[t]});
            write_sorted(all, k, out_scores + j * k, out_ids + j * k);
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
