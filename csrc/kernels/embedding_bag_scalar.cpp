// Portable reference path of embedding_bag.
#include <cstdint>

#include "kernels/embedding_bag.h"

namespace embedrt {
namespace {

// w * x rounded to float before it is added: keeps compilers from fusing it into an FMA
// (which the vector paths never use either).
inline float mul_rounded(float w, float x) {
    float p = w * x;
#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
    __asm__("" : "+x"(p));
#elif defined(__GNUC__) && defined(__aarch64__)
    __asm__("" : "+w"(p));
#endif
    return p;
}

}  // namespace

void embedding_bag_scalar(const float* table, int64_t dim, const int64_t* ids,
                          const int64_t* offsets, int64_t b0, int64_t b1, const float* weights,
                          int mode, int64_t prefetch, float* out) {
    const int64_t end_all = offsets[b1];
    for (int64_t b = b0; b < b1; ++b) {
        const int64_t s = offsets[b], e = offsets[b + 1];
        float* o = out + b * dim;
        for (int64_t j = 0; j < dim; ++j) o[j] = 0.0f;
        for (int64_t p = s; p < e; ++p) {
#if defined(__GNUC__)
            if (prefetch && p + prefetch < end_all) {
                const char* r = reinterpret_cast<const char*>(table + ids[p + prefetch] * dim);
                // every cache line the row touches (rows need not start on one)
                for (uintptr_t a = reinterpret_cast<uintptr_t>(r) & ~uintptr_t(63),
                               last = reinterpret_cast<uintptr_t>(r) + uintptr_t(dim * 4) - 1;
                     a <= last; a += 64)
                    __builtin_prefetch(reinterpret_cast<const char*>(a));
            }
#endif
            const float* row = table + ids[p] * dim;
            if (weights) {
                const float w = weights[p];
                for (int64_t j = 0; j < dim; ++j) o[j] += mul_rounded(w, row[j]);
            } else {
                for (int64_t j = 0; j < dim; ++j) o[j] += row[j];
            }
        }
        if (mode == 1 && e > s) {
            const float c = float(e - s);
            for (int64_t j = 0; j < dim; ++j) o[j] = o[j] / c;
        }
    }
}

}  // namespace embedrt
