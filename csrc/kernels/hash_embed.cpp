// Dispatch and threading of the hash embedding kernels; the string hashes (byte-serial, no
// SIMD) live here too.
#include "kernels/hash_embed.h"

#include <algorithm>
#include <cstring>
#include <string>

#if defined(__unix__) || defined(__APPLE__)
#include <unistd.h>
#endif

#include "dispatch.h"
#include "parallel.h"

namespace embedrt {

void murmur3_128_u64(const uint64_t* keys, int64_t n, uint32_t seed, uint32_t* out) {
    if (n <= 0) return;
    parallel_for(n, 1 << 16, [&](int64_t b, int64_t e) {
        switch (active_isa()) {
#if defined(EMBEDRT_HAVE_X86)
            case Isa::avx512_skx:  // AVX-512 F/BW/DQ/VL only
            case Isa::avx512_vnni:
            case Isa::avx512:
                murmur3_128_u64_avx512(keys + b, e - b, seed, out + b * 4);
                break;
            case Isa::avx2:
                murmur3_128_u64_avx2(keys + b, e - b, seed, out + b * 4);
                break;
#endif
#if defined(EMBEDRT_HAVE_NEON)
            case Isa::neon:
                murmur3_128_u64_neon(keys + b, e - b, seed, out + b * 4);
                break;
#endif
            default:
                murmur3_128_u64_scalar(keys + b, e - b, seed, out + b * 4);
        }
    });
}

namespace {

// Per-core L2 size in bytes (sysconf where glibc knows it; 1 MiB otherwise), clamped.
int64_t l2_bytes() {
    static const int64_t v = [] {
        int64_t b = 0;
#if defined(_SC_LEVEL2_CACHE_SIZE)
        b = int64_t(sysconf(_SC_LEVEL2_CACHE_SIZE));
#endif
        if (b <= 0) b = int64_t(1) << 20;
        return std::min<int64_t>(std::max<int64_t>(b, int64_t(256) << 10), int64_t(4) << 20);
    }();
    return v;
}

}  // namespace

void hash_embed(const uint64_t* ids, int64_t n, uint32_t seed, const float* table, uint64_t rows,
                int64_t dim, float* out) {
    if (n <= 0 || dim <= 0) return;
    const uint32_t d = static_cast<uint32_t>(rows);
    const uint64_t m = fastmod_multiplier(d);
    // A table larger than the L2 cache is gathered one column slice at a time when a slice of
    // at least two cache lines per row fits in ~5/8 of it and three passes cover the width
    // (hashing again for every pass costs far less than the misses; more passes, or narrower
    // slices, lose more on the strided output writes than they gain). Only rows of whole
    // cache lines (dim a multiple of 16) are sliced: the slices of other rows could not use
    // non-temporal stores, and whole rows written through the staged stores measure faster.
    // Every output element is still the same sum.
    const int64_t table_bytes = int64_t(rows) * dim * 4;
    const int64_t l2 = l2_bytes();
    int64_t width = dim;
    if (table_bytes > l2 * 3 / 4 && n >= 4 * int64_t(rows) && dim % 16 == 0) {
        const int64_t lines = (l2 * 5 / 8) / (int64_t(rows) * 64);
        if (lines >= 2 && lines * 16 < dim && (dim + lines * 16 - 1) / (lines * 16) <= 3)
            width = lines * 16;
    }
    const bool prefetch = width == dim && table_bytes > (int64_t(8) << 20);
    // Work per id grows with dim; aim for chunks of ~64 KiB of output, and, when sliced,
    // enough ids per chunk to reuse each cached slice.
    int64_t grain = std::max<int64_t>(64, (int64_t(1) << 14) / dim);
    if (width < dim) grain = std::max<int64_t>(grain, 4 * int64_t(rows));
    const Isa isa = active_isa();
    parallel_for(n, grain, [&](int64_t b, int64_t e) {
        for (int64_t c0 = 0; c0 < dim; c0 += width) {
            const int64_t c1 = std::min(dim, c0 + width);
            switch (isa) {
#if defined(EMBEDRT_HAVE_X86)
                case Isa::avx512_skx:  // AVX-512 F/BW/DQ/VL only
                case Isa::avx512_vnni:
                case Isa::avx512:
                    hash_embed_avx512(ids + b, e - b, seed, table, d, m, dim, c0, c1, prefetch,
                                      out + b * dim);
                    break;
                case Isa::avx2:
                    hash_embed_avx2(ids + b, e - b, seed, table, d, m, dim, c0, c1, prefetch,
                                    out + b * dim);
                    break;
#endif
#if defined(EMBEDRT_HAVE_NEON)
                case Isa::neon:
                    hash_embed_neon(ids + b, e - b, seed, table, d, m, dim, c0, c1, prefetch,
                                    out + b * dim);
                    break;
#endif
                default:
                    hash_embed_scalar(ids + b, e - b, seed, table, d, m, dim, c0, c1, prefetch,
                                      out + b * dim);
            }
        }
    });
}

uint64_t murmurhash64a(const void* key, size_t len, uint64_t seed) {
    const uint64_t m = 0xc6a4a7935bd1e995ULL;
    const int r = 47;
    uint64_t h = seed ^ (uint64_t(len) * m);
    const unsigned char* p = static_cast<const unsigned char*>(key);
    const unsigned char* end = p + (len / 8) * 8;
    for (; p != end; p += 8) {
        uint64_t k;
        std::memcpy(&k, p, 8);  // little-endian hosts, as spaCy's murmurhash builds
        k *= m;
        k ^= k >> r;
        k *= m;
        h ^= k;
        h *= m;
    }
    switch (len & 7) {
        case 7: h ^= uint64_t(p[6]) << 48; [[fallthrough]];
        case 6: h ^= uint64_t(p[5]) << 40; [[fallthrough]];
        case 5: h ^= uint64_t(p[4]) << 32; [[fallthrough]];
        case 4: h ^= uint64_t(p[3]) << 24; [[fallthrough]];
        case 3: h ^= uint64_t(p[2]) << 16; [[fallthrough]];
        case 2: h ^= uint64_t(p[1]) << 8; [[fallthrough]];
        case 1:
            h ^= uint64_t(p[0]);
            h *= m;
    }
    h ^= h >> r;
    h *= m;
    h ^= h >> r;
    return h;
}

void murmurhash64a_batch(const char* bytes, const int64_t* offsets, int64_t n, uint64_t seed,
                         uint64_t* hashes) {
    parallel_for(n, 4096, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
            hashes[i] = murmurhash64a(bytes + offsets[i], size_t(offsets[i + 1] - offsets[i]), seed);
    });
}

uint32_t fnv1a_fasttext(const char* data, size_t len) {
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; ++i) {
        h ^= uint32_t(int8_t(data[i]));  // sign-extended, as fastText's Dictionary::hash
        h *= 16777619u;
    }
    return h;
}

void fasttext_subwords(const char* bytes, const int64_t* offsets, int64_t n, int minn, int maxn,
                       uint32_t bucket, int64_t nwords, std::vector<int64_t>* ids,
                       std::vector<int64_t>* word_offsets) {
    word_offsets->assign(size_t(n + 1), 0);
    std::string word;
    for (int64_t i = 0; i < n; ++i) {
        (*word_offsets)[size_t(i)] = int64_t(ids->size());
        const size_t wlen = size_t(offsets[i + 1] - offsets[i]);
        if (wlen == 4 && std::memcmp(bytes + offsets[i], "</s>", 4) == 0) continue;  // EOS: none
        word.assign(1, '<');
        word.append(bytes + offsets[i], size_t(offsets[i + 1] - offsets[i]));
        word.push_back('>');
        const size_t len = word.size();
        // Dictionary::computeSubwords: n-grams of n UTF-8 characters, starting at character
        // boundaries; the 1-grams "<" and ">" alone are skipped.
        for (size_t s = 0; s < len; ++s) {
            if ((word[s] & 0xC0) == 0x80) continue;
            uint32_t h = 2166136261u;
            size_t j = s;
            for (int k = 1; j < len && k <= maxn; ++k) {
                h = (h ^ uint32_t(int8_t(word[j++]))) * 16777619u;
                while (j < len && (word[j] & 0xC0) == 0x80) h = (h ^ uint32_t(int8_t(word[j++]))) * 16777619u;
                if (k >= minn && !(k == 1 && (s == 0 || j == len)))
                    ids->push_back(nwords + int64_t(h % bucket));
            }
        }
    }
    (*word_offsets)[size_t(n)] = int64_t(ids->size());
}

}  // namespace embedrt
