#include "kernels/embedding_bag.h"

#include <algorithm>

#include "dispatch.h"
#include "parallel.h"

namespace embedrt {

int64_t embedding_bag_first_invalid(const int64_t* ids, int64_t n, int64_t rows) {
    // One branch-free pass (vectorised by the compiler), then locate the culprit if any.
    const uint64_t limit = uint64_t(rows);
    uint64_t bad = 0;
    for (int64_t i = 0; i < n; ++i) bad |= uint64_t(uint64_t(ids[i]) >= limit);
    if (!bad) return -1;
    for (int64_t i = 0; i < n; ++i)
        if (uint64_t(ids[i]) >= limit) return i;
    return -1;
}

void embedding_bag(const float* table, int64_t rows, int64_t dim, const int64_t* ids,
                   const int64_t* offsets, int64_t n_bags, const float* weights, BagMode mode,
                   float* out) {
    if (n_bags <= 0 || dim <= 0) return;
    // Tables beyond the caches: prefetch ~4 KiB of rows ahead (16 ids of 64 floats).
    int64_t prefetch = 0;
    if (uint64_t(rows) * uint64_t(dim) * 4u > (4u << 20))
        prefetch = std::min<int64_t>(32, std::max<int64_t>(4, 4096 / (dim * 4)));
    const int64_t n_ids = offsets[n_bags] - offsets[0];
    // Chunks of roughly 2048 rows gathered.
    const int64_t per_bag = std::max<int64_t>(1, n_ids / n_bags);
    const int64_t grain = std::max<int64_t>(1, 2048 / per_bag);
    const Isa isa = active_isa();
    const int m = static_cast<int>(mode);
    parallel_for(n_bags, grain, [&](int64_t b0, int64_t b1) {
        switch (isa) {
#if defined(EMBEDRT_HAVE_X86)
            case Isa::avx512:
                embedding_bag_avx512(table, dim, ids, offsets, b0, b1, weights, m, prefetch, out);
                break;
            case Isa::avx2:
                embedding_bag_avx2(table, dim, ids, offsets, b0, b1, weights, m, prefetch, out);
                break;
#endif
            default:
                embedding_bag_scalar(table, dim, ids, offsets, b0, b1, weights, m, prefetch, out);
        }
    });
}

}  // namespace embedrt
