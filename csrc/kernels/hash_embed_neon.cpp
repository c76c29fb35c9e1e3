// aarch64 paths of the hash embedding kernels (ASIMD).
//
// MurmurHash3 x64_128 stays in general registers: ASIMD has no 64 x 64-bit lane multiply, and
// building one from 32 x 32 -> 64 products (umull) costs more than the scalar 64-bit `mul`
// it replaces. The four words of each key are stored with one 128-bit store. The HashEmbed
// forward pass hashes one block of 4 ids ahead (so the rows of the next block can be
// prefetched), then sums the 4 rows of each id 8 floats at a time: (((0 + r0) + r1) + r2) + r3
// per element, the order of every other path. A slice width that is not a multiple of 4 ends
// with the slice's last 4 floats (recomputing a few sums already stored, with the same
// values); slices narrower than 4 floats are summed one float at a time.
#include <arm_neon.h>

#include <cstdint>

#include "kernels/hash_embed.h"

namespace embedrt {
namespace {

// The four 32-bit words (h1 low, h1 high, h2 low, h2 high) of keys[0..n) into out.
inline void murmur_block(const uint64_t* keys, int64_t n, uint32_t seed, uint32_t* out) {
    for (int64_t i = 0; i < n; ++i) {
        uint64_t h1, h2;
        murmur3_128_key(keys[i], seed, &h1, &h2);
        vst1q_u32(out + i * 4, vreinterpretq_u32_u64(vcombine_u64(vcreate_u64(h1), vcreate_u64(h2))));
    }
}

inline void prefetch_row(const float* r, int64_t w) {
    // every cache line the slice of the row touches (rows need not start on one)
    uintptr_t a = reinterpret_cast<uintptr_t>(r) & ~uintptr_t(63);
    const uintptr_t last = reinterpret_cast<uintptr_t>(r) + uintptr_t(w * 4) - 1;
    for (; a <= last; a += 64) __builtin_prefetch(reinterpret_cast<const char*>(a));
}

inline float32x4_t sum4_at(const float* r0, const float* r1, const float* r2, const float* r3,
                           int64_t j) {
    float32x4_t a = vaddq_f32(vdupq_n_f32(0.0f), vld1q_f32(r0 + j));  // 0 + (-0) is +0, as scalar
    a = vaddq_f32(a, vld1q_f32(r1 + j));
    a = vaddq_f32(a, vld1q_f32(r2 + j));
    return vaddq_f32(a, vld1q_f32(r3 + j));
}

// o[j] = (((0 + r0[j]) + r1[j]) + r2[j]) + r3[j] for j in [0, w).
inline void sum4(const float* r0, const float* r1, const float* r2, const float* r3, int64_t w,
                 float* o) {
    int64_t j = 0;
    for (; j + 8 <= w; j += 8) {
        const float32x4_t a = sum4_at(r0, r1, r2, r3, j);
        const float32x4_t b = sum4_at(r0, r1, r2, r3, j + 4);
        vst1q_f32(o + j, a);
        vst1q_f32(o + j + 4, b);
    }
    if (j + 4 <= w) {
        vst1q_f32(o + j, sum4_at(r0, r1, r2, r3, j));
        j += 4;
    }
    if (j < w && w >= 4) {
        vst1q_f32(o + w - 4, sum4_at(r0, r1, r2, r3, w - 4));
        return;
    }
    for (; j < w; ++j) {
        float acc = 0.0f;
        acc += r0[j];
        acc += r1[j];
        acc += r2[j];
        acc += r3[j];
        o[j] = acc;
    }
}

}  // namespace

void murmur3_128_u64_neon(const uint64_t* keys, int64_t n, uint32_t seed, uint32_t* out) {
    murmur_block(keys, n, seed, out);
}

void hash_embed_neon(const uint64_t* ids, int64_t n, uint32_t seed, const float* table,
                     uint32_t rows, uint64_t fastmod_m, int64_t dim, int64_t c0, int64_t c1,
                     bool prefetch, float* out) {
    if (n <= 0 || c1 <= c0) return;
    const int64_t w = c1 - c0;
    const float* tab = table + c0;
    float* dst = out + c0;
    // idx[b][4 * l + r]: the table row of hash word r of id l of a block of 4 ids
    int64_t idx[2][16];
    auto block = [&](int64_t i, int64_t* o) {
        const int64_t cnt = n - i < 4 ? n - i : 4;
        uint32_t words[16];
        murmur_block(ids + i, cnt, seed, words);
        for (int64_t t = 0; t < cnt * 4; ++t) o[t] = int64_t(fastmod_u32(words[t], fastmod_m, rows));
    };
    block(0, idx[0]);
    int cur = 0;
    for (int64_t i = 0; i < n; i += 4) {
        const int64_t cnt = n - i < 4 ? n - i : 4;
        if (i + 4 < n) {
            block(i + 4, idx[cur ^ 1]);
            if (prefetch) {
                const int64_t nc = n - i - 4 < 4 ? n - i - 4 : 4;
                for (int64_t t = 0; t < nc * 4; ++t) prefetch_row(tab + idx[cur ^ 1][t] * dim, w);
            }
        }
        const int64_t* o = idx[cur];
        for (int64_t l = 0; l < cnt; ++l)
            sum4(tab + o[4 * l] * dim, tab + o[4 * l + 1] * dim, tab + o[4 * l + 2] * dim,
                 tab + o[4 * l + 3] * dim, w, dst + (i + l) * dim);
        cur ^= 1;
    }
}

}  // namespace embedrt
