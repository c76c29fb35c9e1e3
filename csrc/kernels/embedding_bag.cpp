#include "kernels/embedding_bag.h"

#include <algorithm>
#include <atomic>

#include "dispatch.h"
#include "parallel.h"

namespace embedrt {

int64_t embedding_bag_first_invalid(const int64_t* ids, int64_t n, int64_t rows) {
    // Threaded branch-free passes (vectorised by the compiler), then locate the culprit if any.
    const uint64_t limit = uint64_t(rows);
    std::atomic<bool> bad{false};
    parallel_for(n, int64_t(1) << 16, [&](int64_t b, int64_t e) {
        uint64_t any = 0;
        for (int64_t i = b; i < e; ++i) any |= uint64_t(uint64_t(ids[i]) >= limit);
        if (any) bad.store(true, std::memory_order_relaxed);
    });
    if (!bad.load()) return -1;
    for (int64_t i = 0; i < n; ++i)
        if (uint64_t(ids[i]) >= limit) return i;
    return -1;
}

void embedding_bag(const float* table, int64_t rows, int64_t dim, const int64_t* ids,
                   const int64_t* offsets, int64_t n_bags, const float* weights, BagMode mode,
                   float* out) {
    if (n_bags <= 0 || dim <= 0) return;
    // Tables beyond the caches: prefetch the rows ~8 KiB of gathered data ahead (32 ids of
    // 64 floats; measured best for rows of 32 to 128 floats). Rows longer than 128 floats
    // are left to the hardware prefetchers (sequential within the row; prefetching did not
    // help them).
    int64_t prefetch = 0;
    if (uint64_t(rows) * uint64_t(dim) * 4u > (4u << 20) && dim <= 128)
        prefetch = std::min<int64_t>(64, std::max<int64_t>(4, 8192 / (dim * 4)));
    const int64_t n_ids = offsets[n_bags] - offsets[0];
    // Chunks of roughly 2048 rows gathered.
    const int64_t per_bag = std::max<int64_t>(1, n_ids / n_bags);
    const int64_t grain = std::max<int64_t>(1, 2048 / per_bag);
    const Isa isa = active_isa();
    const int m = static_cast<int>(mode);
    parallel_for(n_bags, grain, [&](int64_t b0, int64_t b1) {
        switch (isa) {
#if defined(EMBEDRT_HAVE_X86)
            case Isa::avx512_skx:  // AVX-512 F/BW/DQ/VL only
            case Isa::avx512_vnni:
            case Isa::avx512:
                embedding_bag_avx512(table, dim, ids, offsets, b0, b1, weights, m, prefetch, out);
                break;
            case Isa::avx2:
                embedding_bag_avx2(table, dim, ids, offsets, b0, b1, weights, m, prefetch, out);
                break;
#endif
#if defined(EMBEDRT_HAVE_NEON)
            case Isa::neon:
                embedding_bag_neon(table, dim, ids, offsets, b0, b1, weights, m, prefetch, out);
                break;
#endif
            default:
                embedding_bag_scalar(table, dim, ids, offsets, b0, b1, weights, m, prefetch, out);
        }
    });
}

namespace {

// The rounded float product (no FMA contraction; baseline x86-64 has no FMA, aarch64 does).
inline float mul_rounded(float a, float b) {
    float p = a * b;
#if defined(__GNUC__) && defined(__aarch64__)
    __asm__("" : "+w"(p));
#endif
    return p;
}

}  // namespace

void qr_embedding_bag(const float* q, const float* r, int64_t width, int64_t m, const int64_t* ids,
                      const int64_t* offsets, int64_t n_bags, const float* weights, BagMode mode,
                      QrOp op, float* out) {
    if (n_bags <= 0 || width <= 0) return;
    const int64_t out_w = op == QrOp::concat ? 2 * width : width;
    const int64_t n_ids = offsets[n_bags] - offsets[0];
    const int64_t grain = std::max<int64_t>(1, 2048 / std::max<int64_t>(1, n_ids / n_bags));
    parallel_for(n_bags, grain, [&](int64_t b0, int64_t b1) {
        for (int64_t b = b0; b < b1; ++b) {
            const int64_t s = offsets[b], e = offsets[b + 1];
            float* o = out + b * out_w;
            for (int64_t j = 0; j < out_w; ++j) o[j] = 0.0f;
            for (int64_t p = s; p < e; ++p) {
                const float* qr = q + (ids[p] / m) * width;
                const float* rr = r + (ids[p] % m) * width;
                const float w = weights ? weights[p] : 1.0f;
                if (op == QrOp::concat) {
                    if (weights) {
                        for (int64_t j = 0; j < width; ++j) o[j] += mul_rounded(w, qr[j]);
                        for (int64_t j = 0; j < width; ++j) o[width + j] += mul_rounded(w, rr[j]);
                    } else {
                        for (int64_t j = 0; j < width; ++j) o[j] += qr[j];
                        for (int64_t j = 0; j < width; ++j) o[width + j] += rr[j];
                    }
                } else if (op == QrOp::mult) {
                    if (weights) {
                        for (int64_t j = 0; j < width; ++j) o[j] += mul_rounded(w, mul_rounded(qr[j], rr[j]));
                    } else {
                        for (int64_t j = 0; j < width; ++j) o[j] += mul_rounded(qr[j], rr[j]);
                    }
                } else {
                    if (weights) {
                        for (int64_t j = 0; j < width; ++j) o[j] += mul_rounded(w, qr[j] + rr[j]);
                    } else {
                        for (int64_t j = 0; j < width; ++j) o[j] += qr[j] + rr[j];
                    }
                }
            }
            if (mode == BagMode::mean && e > s) {
                const float c = float(e - s);
                for (int64_t j = 0; j < out_w; ++j) o[j] = o[j] / c;
            }
        }
    });
}

}  // namespace embedrt
