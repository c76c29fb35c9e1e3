// Bounded max-heap insertion used by the Hamming scans. Every function has internal linkage
// (static), so each ISA translation unit keeps its own copy.
#pragma once

#include <cstdint>

#include "kernels/hamming.h"

namespace embedrt {
namespace heapdetail {

// (d1, i1) ranks after (d2, i2)
static inline bool worse(int32_t d1, int64_t i1, int32_t d2, int64_t i2) {
    return d1 > d2 || (d1 == d2 && i1 > i2);
}

// Offers (d, id) to heap row `row`; keeps the k best by (distance, id).
static inline void heap_offer(HammingHeaps* h, int64_t row, int32_t d, int64_t id) {
    const int64_t k = h->k;
    int32_t* hd = h->dist + row * k;
    int64_t* hi = h->ids + row * k;
    int64_t n = h->size[row];
    if (n < k) {
        int64_t c = n++;
        while (c > 0) {
            int64_t p = (c - 1) / 2;
            if (!worse(d, id, hd[p], hi[p])) break;
            hd[c] = hd[p];
            hi[c] = hi[p];
            c = p;
        }
        hd[c] = d;
        hi[c] = id;
        h->size[row] = n;
        if (n == k) h->thr[row] = static_cast<uint32_t>(hd[0]);
        return;
    }
    if (!worse(hd[0], hi[0], d, id)) return;
    int64_t c = 0;
    for (;;) {
        int64_t l = 2 * c + 1;
        if (l >= k) break;
        int64_t r = l + 1;
        int64_t big = (r < k && worse(hd[r], hi[r], hd[l], hi[l])) ? r : l;
        if (!worse(hd[big], hi[big], d, id)) break;
        hd[c] = hd[big];
        hi[c] = hi[big];
        c = big;
    }
    hd[c] = d;
    hi[c] = id;
    h->thr[row] = static_cast<uint32_t>(hd[0]);
}

}  // namespace heapdetail
}  // namespace embedrt
