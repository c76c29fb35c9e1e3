// Hash embeddings: the hash functions of thinc, spaCy and fastText, and the fused
// hash + gather + sum forward pass of thinc's HashEmbed.
//
// - MurmurHash3 x64_128 of one 8-byte little-endian key with a 32-bit seed, returned as four
//   uint32 words (h1 low, h1 high, h2 low, h2 high): thinc's NumpyOps.hash.
// - MurmurHash64A with a 64-bit seed: spaCy's StringStore hash (seed 1) of UTF-8 bytes.
// - FNV-1a 32-bit over bytes sign-extended through int8: fastText's Dictionary::hash, and the
//   character n-grams of Dictionary::computeSubwords.
//
// Every ISA path returns the same integers; hash_embed's float sums are computed in one fixed
// order per output element, (((0 + r0) + r1) + r2) + r3, on every path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace embedrt {

// ---- MurmurHash3 x64_128 over 8-byte keys -------------------------------------------------
// out[i * 4 + w] for keys[i]. Threaded over keys.
void murmur3_128_u64(const uint64_t* keys, int64_t n, uint32_t seed, uint32_t* out);

// ---- HashEmbed forward --------------------------------------------------------------------
// out[i, :] = sum_w table[h_w(ids[i]) % rows, :], w = 0..3, summed in that order starting from
// +0.0. table is [rows, dim] row-major (row stride dim), out is [n, dim]. rows in [1, 2^32).
// Threaded over ids.
void hash_embed(const uint64_t* ids, int64_t n, uint32_t seed, const float* table, uint64_t rows,
                int64_t dim, float* out);

// ---- strings ------------------------------------------------------------------------------
uint64_t murmurhash64a(const void* data, size_t len, uint64_t seed);
// hashes[i] = murmurhash64a(bytes[offsets[i] : offsets[i + 1]], seed); offsets has n + 1 entries.
void murmurhash64a_batch(const char* bytes, const int64_t* offsets, int64_t n, uint64_t seed,
                         uint64_t* hashes);

uint32_t fnv1a_fasttext(const char* data, size_t len);
// fastText's subword ids of each word (bytes[offsets[i] : offsets[i + 1]], UTF-8) in the order
// Dictionary::computeSubwords yields them for "<" + word + ">": nwords + hash % bucket.
// The end-of-sentence token "</s>" has none (as Dictionary::getSubwords). Appends to ids;
// word_offsets gets n + 1 entries (start of word i's ids in ids).
void fasttext_subwords(const char* bytes, const int64_t* offsets, int64_t n, int minn, int maxn,
                       uint32_t bucket, int64_t nwords, std::vector<int64_t>* ids,
                       std::vector<int64_t>* word_offsets);

// ---- per-ISA entry points (hash_embed_<isa>.cpp); no threading inside ---------------------
// fastmod_m = UINT64_MAX / rows + 1 (Lemire's fastmod for 32-bit operands), rows < 2^32.
// hash_embed_<isa> fills columns [c0, c1) of out[0:n, :] from the same columns of the table
// (both of row stride dim): the forward pass over one column slice, so that a slice of a
// table larger than the cache can stay cached while every id is gathered from it. prefetch:
// prefetch the slice's rows one block of ids ahead (slices that do not fit in cache).
void murmur3_128_u64_scalar(const uint64_t* keys, int64_t n, uint32_t seed, uint32_t* out);
void hash_embed_scalar(const uint64_t* ids, int64_t n, uint32_t seed, const float* table,
                       uint32_t rows, uint64_t fastmod_m, int64_t dim, int64_t c0, int64_t c1,
                       bool prefetch, float* out);
#if defined(EMBEDRT_HAVE_X86)
void murmur3_128_u64_avx2(const uint64_t* keys, int64_t n, uint32_t seed, uint32_t* out);
void hash_embed_avx2(const uint64_t* ids, int64_t n, uint32_t seed, const float* table,
                     uint32_t rows, uint64_t fastmod_m, int64_t dim, int64_t c0, int64_t c1,
                     bool prefetch, float* out);
void murmur3_128_u64_avx512(const uint64_t* keys, int64_t n, uint32_t seed, uint32_t* out);
void hash_embed_avx512(const uint64_t* ids, int64_t n, uint32_t seed, const float* table,
                       uint32_t rows, uint64_t fastmod_m, int64_t dim, int64_t c0, int64_t c1,
                       bool prefetch, float* out);
#endif
#if defined(EMBEDRT_HAVE_NEON)
void murmur3_128_u64_neon(const uint64_t* keys, int64_t n, uint32_t seed, uint32_t* out);
void hash_embed_neon(const uint64_t* ids, int64_t n, uint32_t seed, const float* table,
                     uint32_t rows, uint64_t fastmod_m, int64_t dim, int64_t c0, int64_t c1,
                     bool prefetch, float* out);
#endif

// ---- shared scalar helpers: static (internal linkage), so an ISA translation unit never
// lends its copy to another -------------------------------------------------------------
static inline uint64_t murmur_fmix64(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdULL;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ULL;
    k ^= k >> 33;
    return k;
}

// MurmurHash3_x64_128 of the 8 little-endian bytes of `key`: (h1, h2).
static inline void murmur3_128_key(uint64_t key, uint32_t seed, uint64_t* h1_out, uint64_t* h2_out) {
    uint64_t k1 = key * 0x87c37b91114253d5ULL;
    k1 = (k1 << 31) | (k1 >> 33);
    k1 *= 0x4cf5ad432745937fULL;
    uint64_t h1 = uint64_t(seed) ^ k1 ^ 8u;
    uint64_t h2 = uint64_t(seed) ^ 8u;
    h1 += h2;
    h2 += h1;
    h1 = murmur_fmix64(h1);
    h2 = murmur_fmix64(h2);
    h1 += h2;
    h2 += h1;
    *h1_out = h1;
    *h2_out = h2;
}

static inline uint64_t fastmod_multiplier(uint32_t d) { return ~uint64_t(0) / d + 1; }

// a % d for 32-bit a and d in [1, 2^32), with m = fastmod_multiplier(d).
static inline uint32_t fastmod_u32(uint32_t a, uint64_t m, uint32_t d) {
    uint64_t low = m * a;
#if defined(__SIZEOF_INT128__)
    return uint32_t((static_cast<unsigned __int128>(low) * d) >> 64);
#else
    uint64_t t = ((low & 0xffffffffULL) * d) >> 32;
    return uint32_t(((low >> 32) * d + t) >> 32);
#endif
}

}  // namespace embedrt
