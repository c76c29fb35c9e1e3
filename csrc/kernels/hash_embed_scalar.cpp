// Portable reference paths of the hash embedding kernels.
#include "kernels/hash_embed.h"

namespace embedrt {

void murmur3_128_u64_scalar(const uint64_t* keys, int64_t n, uint32_t seed, uint32_t* out) {
    for (int64_t i = 0; i < n; ++i) {
        uint64_t h1, h2;
        murmur3_128_key(keys[i], seed, &h1, &h2);
        out[i * 4 + 0] = uint32_t(h1);
        out[i * 4 + 1] = uint32_t(h1 >> 32);
        out[i * 4 + 2] = uint32_t(h2);
        out[i * 4 + 3] = uint32_t(h2 >> 32);
    }
}

void hash_embed_scalar(const uint64_t* ids, int64_t n, uint32_t seed, const float* table,
                       uint32_t rows, uint64_t fastmod_m, int64_t dim, int64_t c0, int64_t c1,
                       bool prefetch, float* out) {
    (void)prefetch;
    for (int64_t i = 0; i < n; ++i) {
        uint64_t h1, h2;
        murmur3_128_key(ids[i], seed, &h1, &h2);
        const float* r0 = table + int64_t(fastmod_u32(uint32_t(h1), fastmod_m, rows)) * dim;
        const float* r1 = table + int64_t(fastmod_u32(uint32_t(h1 >> 32), fastmod_m, rows)) * dim;
        const float* r2 = table + int64_t(fastmod_u32(uint32_t(h2), fastmod_m, rows)) * dim;
        const float* r3 = table + int64_t(fastmod_u32(uint32_t(h2 >> 32), fastmod_m, rows)) * dim;
        float* o = out + i * dim;
        for (int64_t j = c0; j < c1; ++j) {
            float acc = 0.0f;
            acc += r0[j];
            acc += r1[j];
            acc += r2[j];
            acc += r3[j];
            o[j] = acc;
        }
    }
}

}  // namespace embedrt
