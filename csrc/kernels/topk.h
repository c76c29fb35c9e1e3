// The one bounded top-k of the scan families (Hamming, SDC, int8): the heap, its tie rule,
// the final sort, the merge of partial heaps and the split of a scan over the worker pool.
//
// Order: by score, best first (the smallest distance or the largest score, as `Best` says),
// ties broken by the smaller id. For floating-point scores a NaN ranks after every number
// (so the order stays total and the result deterministic).
//
// Layout (as FAISS's HeapArray): m rows of k (score, id) entries side by side, row r at
// val/ids + r * k, a binary heap whose root is the worst kept entry; size[r] entries are used;
// bound[r] is Best's sentinel (every score ranks before it) while the row is not full, then
// the worst kept score. A scan reads bound[r] to skip candidates without touching the heap:
//   - a score v can enter only if !ranks_before(bound, v) by score (topk::may_enter);
//   - a scan that offers ids in increasing order and whose scores never reach the sentinel
//     (the integer distances) may use the strict test better(v, bound): a tie with the worst
//     kept entry has the larger id and never enters.
//
// TopKHeaps is a plain view: it has no code, so every translation unit (every ISA file) may
// name it in its own structs. The operations below have internal linkage: each ISA file gets
// its own copy, compiled with its own flags, and the linker never shares one between levels.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

#include "parallel.h"

namespace embedrt {

// Which end of the scores ranks first.
enum class Best { smallest, largest };

template <class T, Best B>
struct TopKHeaps {
    using value_type = T;
    static constexpr Best best = B;
    int64_t k;
    T* val;         // [rows][k]
    int64_t* ids;   // [rows][k]
    int64_t* size;  // [rows]
    T* bound;       // [rows]
};

namespace topk {
namespace {

// a's score ranks strictly before b's (NaN, if any, after everything).
template <Best B, class T>
inline bool better(T a, T b) {
    return B == Best::smallest ? a < b : a > b;
}

template <class T>
inline bool is_nan(T v) {
    if constexpr (std::numeric_limits<T>::has_quiet_NaN) return v != v;
    return false;
}

// A score every real score ranks before (the bound of a row that is not full) and that fills
// rows with fewer than k entries.
template <Best B, class T>
constexpr T sentinel() {
    using L = std::numeric_limits<T>;
    if constexpr (B == Best::smallest) return L::has_infinity ? L::infinity() : L::max();
    return L::has_infinity ? -L::infinity() : L::lowest();
}

// (a, ia) ranks strictly before (b, ib): by score, then by the smaller id.
template <Best B, class T>
inline bool ranks_before(T a, int64_t ia, T b, int64_t ib) {
    if (better<B>(a, b)) return true;
    if (better<B>(b, a)) return false;
    if constexpr (std::numeric_limits<T>::has_quiet_NaN) {
        const bool na = is_nan(a), nb = is_nan(b);
        if (na != nb) return nb;
    }
    return ia < ib;
}

// Can a candidate of score v enter a row whose bound is `bound`? (false: it certainly cannot)
template <Best B, class T>
inline bool may_enter(T v, T bound) {
    return !better<B>(bound, v);
}

// Offers (v, id) to heap row `row`: kept if the row has room or it ranks before the worst.
template <class T, Best B>
inline void offer(const TopKHeaps<T, B>& h, int64_t row, T v, int64_t id) {
    const int64_t k = h.k;
    T* hv = h.val + row * k;
    int64_t* hi = h.ids + row * k;
    int64_t n = h.size[row];
    if (n < k) {  // sift up: parents rank after their children
        int64_t c = n++;
        while (c > 0) {
            const int64_t p = (c - 1) / 2;
            if (!ranks_before<B>(hv[p], hi[p], v, id)) break;
            hv[c] = hv[p];
            hi[c] = hi[p];
            c = p;
        }
        hv[c] = v;
        hi[c] = id;
        h.size[row] = n;
        if (n == k) h.bound[row] = hv[0];
        return;
    }
    if (k <= 0 || !ranks_before<B>(v, id, hv[0], hi[0])) return;
    int64_t c = 0;  // replace the root, sift down
    for (;;) {
        const int64_t l = 2 * c + 1;
        if (l >= k) break;
        const int64_t r = l + 1;
        const int64_t w = (r < k && ranks_before<B>(hv[l], hi[l], hv[r], hi[r])) ? r : l;
        if (!ranks_before<B>(v, id, hv[w], hi[w])) break;
        hv[c] = hv[w];
        hi[c] = hi[w];
        c = w;
    }
    hv[c] = v;
    hi[c] = id;
    h.bound[row] = hv[0];
}

template <class T>
struct Entry {
    T val;
    int64_t id;
};

// The best kout of `all`, best first, into out_val / out_ids [kout]; fewer than kout entries
// leave the rest as (sentinel, -1). Reorders `all`.
template <Best B, class T>
void write_best(std::vector<Entry<T>>& all, int64_t kout, T* out_val, int64_t* out_ids) {
    const int64_t take = std::min<int64_t>(kout, static_cast<int64_t>(all.size()));
    std::partial_sort(all.begin(), all.begin() + take, all.end(), [](const Entry<T>& a, const Entry<T>& b) {
        return ranks_before<B>(a.val, a.id, b.val, b.id);
    });
    for (int64_t t = 0; t < take; ++t) {
        out_val[t] = all[static_cast<size_t>(t)].val;
        out_ids[t] = all[static_cast<size_t>(t)].id;
    }
    for (int64_t t = take; t < kout; ++t) {
        out_val[t] = sentinel<B, T>();
        out_ids[t] = -1;
    }
}

// Storage for `rows` heaps of k entries, all empty.
template <class T, Best B>
struct Store {
    int64_t k;
    std::vector<T> val, bound;
    std::vector<int64_t> ids, size;
    Store(int64_t rows, int64_t kk)
        : k(kk),
          val(static_cast<size_t>(rows * kk)),
          bound(static_cast<size_t>(rows), sentinel<B, T>()),
          ids(static_cast<size_t>(rows * kk)),
          size(static_cast<size_t>(rows), 0) {}
    // The view whose row 0 is row `row0`.
    TopKHeaps<T, B> heaps(int64_t row0) {
        return TopKHeaps<T, B>{k, val.data() + row0 * k, ids.data() + row0 * k, size.data() + row0,
                               bound.data() + row0};
    }
};

// out row i = the best kout entries of rows p * m + i (p < parts) of `s`, best first.
// Threaded over queries.
template <class T, Best B>
void merge_parts(const Store<T, B>& s, int64_t parts, int64_t m, int64_t kout, T* out_val,
                 int64_t* out_ids) {
    const int64_t k = s.k;
    parallel_for(m, 64, [&](int64_t r0, int64_t r1) {
        std::vector<Entry<T>> all;
        for (int64_t i = r0; i < r1; ++i) {
            all.clear();
            for (int64_t p = 0; p < parts; ++p) {
                const int64_t row = p * m + i;
                for (int64_t e = 0; e < s.size[static_cast<size_t>(row)]; ++e)
                    all.push_back(Entry<T>{s.val[static_cast<size_t>(row * k + e)],
                                           s.ids[static_cast<size_t>(row * k + e)]});
            }
            write_best<B>(all, kout, out_val + i * kout, out_ids + i * kout);
        }
    });
}

// How a top-k scan is split over the pool: queries in chunks of `qchunk`, the database in
// `parts` ranges whose bounds are multiples of `align` (as even as that allows).
struct Split {
    int64_t qchunk = 1;
    int64_t parts = 1;
    int64_t align = 1;
};

constexpr int64_t kMaxHeapBytes = int64_t(256) << 20;  // heaps of all parts together

// The skeleton every top-k scan shares. One task per (query chunk, database part) runs on the
// pool and calls scan(heaps, i0, i1, j0, j1): queries [i0, i1) against ids [j0, j1), query i
// offering to row i - i0 of `heaps` (its own heaps: tasks never share a row). Then the parts
// of each query are merged into out_val / out_ids [m][k], best first; a row with fewer than k
// candidates is filled with (sentinel, -1). The parts are reduced while their heaps would
// exceed kMaxHeapBytes. k >= 1.
template <class T, Best B, class Scan>
void scan_topk(int64_t m, int64_t n, int64_t k, Split split, const Scan& scan, T* out_val,
               int64_t* out_ids) {
    if (m <= 0 || k <= 0) return;
    const int64_t align = std::max<int64_t>(1, split.align);
    const int64_t units = (n + align - 1) / align;
    const int64_t qchunk = std::max<int64_t>(1, std::min(m, split.qchunk));
    int64_t parts = std::max<int64_t>(1, std::min(split.parts, units));
    const int64_t entry = static_cast<int64_t>(sizeof(T) + sizeof(int64_t));
    while (parts > 1 && parts * m * k * entry > kMaxHeapBytes) --parts;
    const int64_t nqc = (m + qchunk - 1) / qchunk;
    Store<T, B> store(parts * m, k);
    parallel_for(nqc * parts, 1, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            const int64_t qc = t / parts, p = t % parts;
            const int64_t i0 = qc * qchunk, i1 = std::min(m, i0 + qchunk);
            const int64_t j0 = std::min(n, align * (units * p / parts));
            const int64_t j1 = std::min(n, align * (units * (p + 1) / parts));
            if (j0 < j1) scan(store.heaps(p * m + i0), i0, i1, j0, j1);
        }
    });
    merge_parts(store, parts, m, k, out_val, out_ids);
}

}  // namespace
}  // namespace topk
}  // namespace embedrt
