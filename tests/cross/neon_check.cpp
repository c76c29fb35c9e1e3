// NEON against scalar for the kernel families that have aarch64 versions: bit codes
// (pack_bits, hamming, hamming_topk, binary_matmul), SDC scores and top-k, int8 GEMM and the
// int8 query scan, hash embeddings (MurmurHash3 of uint64 keys, HashEmbed) and embedding
// bags (bit-exact floats: every path sums in the same order), and the encoder's float
// operations (within a float tolerance: those paths are not bit-exact). Built for aarch64 together with those families' sources (see
// tests/test_neon_cross.py) and run on an aarch64 CPU or under an emulator.
//
// Every case runs the public entry point twice, with the ISA level forced to scalar and then
// to neon, and compares the two results byte for byte (the encoder's floats within a relative
// tolerance, their quantized codes exactly but at rounding ties); most cases also compare with a plain
// reference computed here. Exit status 0 when every case agrees, 1 on any mismatch (the first
// ones are printed), 2 when the CPU does not offer the neon level.
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "dispatch.h"
#include "kernels/embedding_bag.h"
#include "kernels/encoder_ops.h"
#include "kernels/hash_embed.h"
#include "kernels/hamming.h"
#include "kernels/int8_gemm.h"
#include "kernels/int8_scan.h"
#include "kernels/pack_bits.h"
#include "kernels/sdc.h"
#include "parallel.h"

using namespace embedrt;

namespace {

int64_t g_cases = 0;
int64_t g_failures = 0;

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ULL + 1) {}
    uint64_t next() {  // splitmix64
        uint64_t z = (s += 0x9E3779B97F4A7C15ULL);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
    }
    int64_t below(int64_t n) { return static_cast<int64_t>(next() % static_cast<uint64_t>(n)); }
    uint8_t byte() { return static_cast<uint8_t>(next() >> 56); }
};

// Compares two buffers byte for byte; reports the first differing element.
template <typename T>
bool same(const std::vector<T>& a, const std::vector<T>& b, const std::string& what) {
    ++g_cases;
    if (a.size() == b.size() &&
        (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0))
        return true;
    ++g_failures;
    if (g_failures <= 20) {
        if (a.size() != b.size()) {
            std::printf("MISMATCH %s: sizes %zu vs %zu\n", what.c_str(), a.size(), b.size());
        } else {
            for (size_t i = 0; i < a.size(); ++i) {
                if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) {
                    std::printf("MISMATCH %s: first at element %zu: %.17g vs %.17g\n", what.c_str(), i,
                                static_cast<double>(a[i]), static_cast<double>(b[i]));
                    break;
                }
            }
        }
    }
    return false;
}

bool expect(bool ok, const std::string& what) {
    ++g_cases;
    if (ok) return true;
    ++g_failures;
    if (g_failures <= 20) std::printf("MISMATCH %s\n", what.c_str());
    return false;
}

std::string fmt(const char* f, int64_t a, int64_t b = 0, int64_t c = 0, int64_t d = 0, int64_t e = 0) {
    char buf[256];
    std::snprintf(buf, sizeof buf, f, a, b, c, d, e);
    return buf;
}

// ------------------------------------------------------------------ bit codes

// Rows of `width` bytes (stride ld >= width); kind 0 random, 1 all ones, 2 all zeros,
// 3 sparse random, 4 a copy of an earlier row (ties).
std::vector<uint8_t> make_codes(Rng& rng, int64_t n, int64_t width, int64_t ld, bool mixed) {
    std::vector<uint8_t> c(static_cast<size_t>(n * ld));
    for (auto& v : c) v = rng.byte();  // padding past `width` holds garbage too
    for (int64_t r = 0; r < n; ++r) {
        uint8_t* row = c.data() + r * ld;
        const int64_t kind = mixed ? rng.below(5) : 0;
        if (kind == 1) std::memset(row, 0xFF, static_cast<size_t>(width));
        if (kind == 2) std::memset(row, 0, static_cast<size_t>(width));
        if (kind == 3)
            for (int64_t b = 0; b < width; ++b) row[b] = rng.below(8) == 0 ? rng.byte() : 0;
        if (kind == 4 && r > 0) std::memcpy(row, c.data() + rng.below(r) * ld, static_cast<size_t>(width));
    }
    return c;
}

uint32_t ref_distance(const uint8_t* a, const uint8_t* b, int64_t nbits) {
    uint32_t d = 0;
    for (int64_t t = 0; t < nbits; ++t) {
        const int x = (a[t >> 3] >> (7 - (t & 7))) & 1, y = (b[t >> 3] >> (7 - (t & 7))) & 1;
        d += static_cast<uint32_t>(x != y);
    }
    return d;
}

void check_hamming(Rng& rng, int64_t m, int64_t n, int64_t nbits, int64_t lda, int64_t ldb,
                   const std::vector<int64_t>& ks, bool mixed, bool reference) {
    const int64_t width = (nbits + 7) / 8;
    const std::vector<uint8_t> a = make_codes(rng, m, width, lda, mixed);
    const std::vector<uint8_t> b = make_codes(rng, n, width, ldb, mixed);
    const std::string shape = fmt("m=%" PRId64 " n=%" PRId64 " nbits=%" PRId64 " lda=%" PRId64 " ldb=%" PRId64,
                                  m, n, nbits, lda, ldb);
    const int64_t ldo = n + 3;

    std::vector<uint32_t> hs(static_cast<size_t>(m * ldo), 7u), hn = hs;
    set_isa(Isa::scalar);
    hamming_matrix(a.data(), m, lda, b.data(), n, ldb, nbits, hs.data(), ldo);
    set_isa(Isa::neon);
    hamming_matrix(a.data(), m, lda, b.data(), n, ldb, nbits, hn.data(), ldo);
    same(hs, hn, "hamming_matrix neon vs scalar " + shape);
    if (reference) {
        std::vector<uint32_t> ref(static_cast<size_t>(m * ldo), 7u);
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j)
                ref[static_cast<size_t>(i * ldo + j)] = ref_distance(a.data() + i * lda, b.data() + j * ldb, nbits);
        same(hn, ref, "hamming_matrix neon vs reference " + shape);
    }

    std::vector<int32_t> ms(static_cast<size_t>(m * ldo), 5), mn = ms;
    set_isa(Isa::scalar);
    binary_matmul(a.data(), m, lda, b.data(), n, ldb, nbits, ms.data(), ldo);
    set_isa(Isa::neon);
    binary_matmul(a.data(), m, lda, b.data(), n, ldb, nbits, mn.data(), ldo);
    same(ms, mn, "binary_matmul neon vs scalar " + shape);
    if (reference) {
        std::vector<int32_t> ref(static_cast<size_t>(m * ldo), 5);
        for (int64_t i = 0; i < m; ++i)
            for (int64_t j = 0; j < n; ++j)
                ref[static_cast<size_t>(i * ldo + j)] =
                    static_cast<int32_t>(nbits) - 2 * static_cast<int32_t>(ref_distance(a.data() + i * lda, b.data() + j * ldb, nbits));
        same(mn, ref, "binary_matmul neon vs reference " + shape);
    }

    for (int64_t k : ks) {
        const int64_t kk = std::min(k, n);
        const size_t sz = static_cast<size_t>(std::max<int64_t>(m * kk, 0));
        std::vector<int32_t> ds(sz, -1), dn(sz, -1);
        std::vector<int64_t> is(sz, -1), in(sz, -1);
        set_isa(Isa::scalar);
        hamming_topk(a.data(), m, lda, b.data(), n, ldb, nbits, k, ds.data(), is.data());
        set_isa(Isa::neon);
        hamming_topk(a.data(), m, lda, b.data(), n, ldb, nbits, k, dn.data(), in.data());
        const std::string what = shape + fmt(" k=%" PRId64, k);
        same(ds, dn, "hamming_topk distances neon vs scalar " + what);
        same(is, in, "hamming_topk ids neon vs scalar " + what);
        if (reference) {
            std::vector<int32_t> rd(sz);
            std::vector<int64_t> ri(sz);
            std::vector<std::pair<int32_t, int64_t>> all(static_cast<size_t>(n));
            for (int64_t i = 0; i < m; ++i) {
                for (int64_t j = 0; j < n; ++j)
                    all[static_cast<size_t>(j)] = {static_cast<int32_t>(hn[static_cast<size_t>(i * ldo + j)]), j};
                std::sort(all.begin(), all.end());
                for (int64_t e = 0; e < kk; ++e) {
                    rd[static_cast<size_t>(i * kk + e)] = all[static_cast<size_t>(e)].first;
                    ri[static_cast<size_t>(i * kk + e)] = all[static_cast<size_t>(e)].second;
                }
            }
            same(dn, rd, "hamming_topk distances neon vs reference " + what);
            same(in, ri, "hamming_topk ids neon vs reference " + what);
        }
    }
}

void bit_code_cases(Rng& rng) {
    // every width of 1..300 bytes, full and partial last bytes, tight and padded strides
    const int64_t ms[] = {0, 1, 2, 5};
    const int64_t ns[] = {1, 0, 8, 13, 37, 9};
    for (int64_t width = 1; width <= 300; ++width) {
        for (int variant = 0; variant < 2; ++variant) {
            const int64_t nbits = variant == 0 ? 8 * width : 8 * width - 1 - rng.below(7);
            const int64_t m = ms[(width + variant) % 4];
            const int64_t n = ns[(width + 3 * variant) % 6];
            const int64_t lda = width + (variant ? 3 : 0), ldb = width + (width % 3 == 0 ? 5 : 0);
            check_hamming(rng, m, n, nbits, lda, ldb, {1, 3, n + 2}, true, true);
        }
    }
    // several tiles, threads, both top-k selections (heaps and counting), many ties
    const int64_t wide[] = {8, 16, 24, 32, 48, 64, 96, 128, 256};
    for (int64_t width : wide)
        check_hamming(rng, 33, 2500, 8 * width - (width % 3), width, width, {1, 10, 600}, true, false);
    // uniform codes: every distance ties
    {
        const int64_t width = 20;
        std::vector<uint8_t> a(static_cast<size_t>(3 * width), 0xFF), b(static_cast<size_t>(50 * width), 0xFF);
        for (int64_t k : {1, 7, 50}) {
            std::vector<int32_t> ds(static_cast<size_t>(3 * k)), dn = ds;
            std::vector<int64_t> is(static_cast<size_t>(3 * k)), in = is;
            set_isa(Isa::scalar);
            hamming_topk(a.data(), 3, width, b.data(), 50, width, 8 * width, k, ds.data(), is.data());
            set_isa(Isa::neon);
            hamming_topk(a.data(), 3, width, b.data(), 50, width, 8 * width, k, dn.data(), in.data());
            same(ds, dn, fmt("hamming_topk all-ones distances k=%" PRId64, k));
            same(is, in, fmt("hamming_topk all-ones ids k=%" PRId64, k));
            bool in_order = true;
            for (int64_t i = 0; i < 3; ++i)
                for (int64_t e = 0; e < k; ++e) in_order &= in[static_cast<size_t>(i * k + e)] == e && dn[static_cast<size_t>(i * k + e)] == 0;
            expect(in_order, fmt("hamming_topk all-ones: ties must come by id, k=%" PRId64, k));
        }
    }
    // random shapes
    for (int t = 0; t < 300; ++t) {
        const int64_t width = 1 + rng.below(300);
        const int64_t nbits = 8 * width - rng.below(8);
        const int64_t m = rng.below(10), n = rng.below(80);
        check_hamming(rng, m, n, nbits, width + rng.below(3), width + rng.below(3),
                      {1 + rng.below(20), n}, rng.below(2) == 0, t % 4 == 0);
    }
    // a database long enough to be split into parts per thread
    check_hamming(rng, 2, 40000, 256, 32, 32, {5}, true, false);
}

// ------------------------------------------------------------------ pack_bits

float edge_float(Rng& rng) {
    switch (rng.below(12)) {
        case 0: return 0.0f;
        case 1: return -0.0f;
        case 2: return 1e-40f;    // subnormal
        case 3: return -1e-40f;
        case 4: return std::numeric_limits<float>::infinity();
        case 5: return -std::numeric_limits<float>::infinity();
        case 6: return std::numeric_limits<float>::max();
        case 7: return -std::numeric_limits<float>::max();
        case 8: return std::numeric_limits<float>::denorm_min();
        default: return static_cast<float>(static_cast<double>(rng.next() >> 11) / 9007199254740992.0 - 0.5);
    }
}

void pack_case(Rng& rng, int64_t n, int64_t d, int nan_at) {
    std::vector<float> x(static_cast<size_t>(n * d));
    for (auto& v : x) v = edge_float(rng);
    if (nan_at >= 0 && !x.empty()) x[static_cast<size_t>(nan_at) % x.size()] = std::numeric_limits<float>::quiet_NaN();
    const int64_t nb = (d + 7) / 8;
    std::vector<uint8_t> os(static_cast<size_t>(n * nb), 0xAA), on = os;
    set_isa(Isa::scalar);
    const bool gs = pack_bits_f32(x.data(), n, d, os.data());
    set_isa(Isa::neon);
    const bool gn = pack_bits_f32(x.data(), n, d, on.data());
    const std::string shape = fmt("n=%" PRId64 " d=%" PRId64 " nan_at=%" PRId64, n, d, nan_at);
    expect(gs == gn, "pack_bits_f32 NaN report neon vs scalar " + shape);
    expect(gn == (nan_at < 0 || x.empty()), "pack_bits_f32 NaN report " + shape);
    if (nan_at >= 0) return;
    same(os, on, "pack_bits_f32 neon vs scalar " + shape);
    std::vector<uint8_t> ref(static_cast<size_t>(n * nb), 0);
    for (int64_t i = 0; i < n; ++i)
        for (int64_t t = 0; t < d; ++t)
            if (x[static_cast<size_t>(i * d + t)] > 0.0f) ref[static_cast<size_t>(i * nb + t / 8)] |= static_cast<uint8_t>(0x80u >> (t % 8));
    same(on, ref, "pack_bits_f32 neon vs reference " + shape);
    // the row kernel directly, on one block of rows
    std::vector<uint8_t> direct(static_cast<size_t>(n * nb), 0x55);
    expect(pack_bits_f32_neon(x.data(), n, d, direct.data()), "pack_bits_f32_neon return " + shape);
    same(direct, ref, "pack_bits_f32_neon (row kernel) vs reference " + shape);
}

void pack_bits_cases(Rng& rng) {
    for (int64_t d = 1; d <= 300; ++d) pack_case(rng, 1 + d % 3, d, -1);
    for (int64_t d : {511, 512, 513, 1000, 1024}) pack_case(rng, 4, d, -1);
    pack_case(rng, 0, 17, -1);
    for (int t = 0; t < 200; ++t) pack_case(rng, 1 + rng.below(5), 1 + rng.below(700), -1);
    pack_case(rng, 3000, 72, -1);  // several row chunks on the pool
    // a NaN in a 64-float step, an 8-float step and the scalar tail
    for (int64_t d : {64, 72, 75, 130, 300})
        for (int at : {0, 5, 63, 64, 70, 71, 74, 129, 299}) pack_case(rng, 2, d, at);
}

// ------------------------------------------------------------------ SDC

void sdc_case(Rng& rng, int u, int64_t nb, int64_t dim, int64_t m, int64_t n) {
    auto codes = [&](int64_t rows) {
        std::vector<uint8_t> c(static_cast<size_t>(rows * u * nb));
        for (int64_t r = 0; r < rows; ++r) {
            const int64_t kind = r < 2 ? r : rng.below(6);  // rows 0, 1: all ones, all zeros
            for (int p = 0; p < u; ++p) {
                uint8_t* plane = c.data() + (r * u + p) * nb;
                for (int64_t b = 0; b < nb; ++b) plane[b] = kind == 0 ? 0xFF : kind == 1 ? 0 : rng.byte();
                // bits past the last dimension are zero
                for (int64_t t = dim; t < 8 * nb; ++t) plane[t / 8] &= static_cast<uint8_t>(~(0x80u >> (t % 8)));
            }
            if (kind == 5 && r > 0)
                std::memcpy(c.data() + r * u * nb, c.data() + rng.below(r) * u * nb, static_cast<size_t>(u * nb));
        }
        return c;
    };
    const std::vector<uint8_t> q = codes(m), db = codes(n);
    const std::string shape = fmt("u=%" PRId64 " nb=%" PRId64 " dim=%" PRId64 " m=%" PRId64 " n=%" PRId64, u, nb, dim, m, n);
    std::vector<int32_t> ss(static_cast<size_t>(m * n), 3), sn = ss;
    set_isa(Isa::scalar);
    sdc_scores(q.data(), m, db.data(), n, u, nb, dim, ss.data());
    set_isa(Isa::neon);
    sdc_scores(q.data(), m, db.data(), n, u, nb, dim, sn.data());
    same(ss, sn, "sdc_scores neon vs scalar " + shape);
    // levels: sum_p 2^(u-1-p) * (+1 or -1) per dimension
    auto levels = [&](const std::vector<uint8_t>& c, int64_t rows) {
        std::vector<int32_t> lv(static_cast<size_t>(rows * dim), 0);
        for (int64_t r = 0; r < rows; ++r)
            for (int p = 0; p < u; ++p)
                for (int64_t t = 0; t < dim; ++t) {
                    const int bit = (c[static_cast<size_t>((r * u + p) * nb + t / 8)] >> (7 - t % 8)) & 1;
                    lv[static_cast<size_t>(r * dim + t)] += (bit ? 1 : -1) * (1 << (u - 1 - p));
                }
        return lv;
    };
    const std::vector<int32_t> lq = levels(q, m), ld = levels(db, n);
    std::vector<int32_t> ref(static_cast<size_t>(m * n));
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            int64_t s = 0;
            for (int64_t t = 0; t < dim; ++t) s += int64_t(lq[static_cast<size_t>(i * dim + t)]) * ld[static_cast<size_t>(j * dim + t)];
            ref[static_cast<size_t>(i * n + j)] = static_cast<int32_t>(s);
        }
    same(sn, ref, "sdc_scores neon vs reference " + shape);
    for (int64_t k : {int64_t(1), int64_t(5), n}) {
        const int64_t kk = std::min(k, n);
        std::vector<int32_t> ts(static_cast<size_t>(m * kk)), tn = ts;
        std::vector<int64_t> is(static_cast<size_t>(m * kk)), in = is;
        set_isa(Isa::scalar);
        sdc_topk(q.data(), m, db.data(), n, u, nb, dim, k, ts.data(), is.data());
        set_isa(Isa::neon);
        sdc_topk(q.data(), m, db.data(), n, u, nb, dim, k, tn.data(), in.data());
        same(ts, tn, "sdc_topk scores neon vs scalar " + shape + fmt(" k=%" PRId64, k));
        same(is, in, "sdc_topk ids neon vs scalar " + shape + fmt(" k=%" PRId64, k));
    }
}

void sdc_cases(Rng& rng) {
    for (int u = 1; u <= kSdcMaxBits; ++u) {
        for (int64_t nb : {1, 2, 3, 7, 8, 9, 15, 16, 17, 24, 33, 48, 64, 100}) {
            const int64_t dim = 8 * nb - (nb % 2 ? rng.below(8) : 0);
            sdc_case(rng, u, nb, dim, 1 + (nb % 4), 1 + (nb * 7) % 40);
        }
        sdc_case(rng, u, 2400, 8 * 2400 - 3, 2, 9);  // more than 273 words per plane: 16-bit sums folded
        sdc_case(rng, u, 16, 128, 70, 600);          // several query chunks and blocks
    }
}

// ------------------------------------------------------------------ int8

// The whole product C = A . B^T over the pool: int32 into c32, or float into cf with the scales.
void gemm_mt(const void* a, bool a_u8, int64_t m, int64_t lda, const Int8Packed& p, int32_t* c32, float* cf,
             int64_t ldc, const float* a_scale = nullptr, const float* b_scale = nullptr,
             const float* bias = nullptr) {
    Int8GemmParams g;
    static_cast<Int8GemmOperands&>(g) = {a, a_u8, m, lda, c32, cf, ldc, a_scale, b_scale, bias};
    g.b = &p;
    int8_gemm_run_mt(g);
}

void int8_gemm_case(Rng& rng, int64_t m, int64_t n, int64_t k) {
    std::vector<int8_t> a(static_cast<size_t>(m * (k + 2))), b(static_cast<size_t>(n * k));
    for (auto& v : a) v = static_cast<int8_t>(rng.byte());
    for (auto& v : b) v = static_cast<int8_t>(rng.byte());
    if (m > 1) std::memset(a.data(), 0x80, static_cast<size_t>(k));  // -128 everywhere
    if (n > 1) std::memset(b.data(), 0x80, static_cast<size_t>(k));
    const int64_t lda = k + 2, ldc = n + 1;
    Int8Packed p;
    int8_pack(b.data(), n, k, k, &p);
    const std::string shape = fmt("m=%" PRId64 " n=%" PRId64 " k=%" PRId64, m, n, k);

    std::vector<int32_t> cs(static_cast<size_t>(m * ldc), 9), cn = cs, cu = cs;
    set_isa(Isa::scalar);
    gemm_mt(a.data(), false, m, lda, p, cs.data(), nullptr, ldc);
    set_isa(Isa::neon);
    gemm_mt(a.data(), false, m, lda, p, cn.data(), nullptr, ldc);
    same(cs, cn, "int8_gemm neon vs scalar " + shape);
    std::vector<int32_t> ref(static_cast<size_t>(m * ldc), 9);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < n; ++j) {
            int32_t s = 0;
            for (int64_t t = 0; t < k; ++t) s += int32_t(a[static_cast<size_t>(i * lda + t)]) * int32_t(b[static_cast<size_t>(j * k + t)]);
            ref[static_cast<size_t>(i * ldc + j)] = s;
        }
    same(cn, ref, "int8_gemm neon vs reference " + shape);

    // uint8 codes a + 128 give the same product
    std::vector<uint8_t> au(a.size());
    for (size_t t = 0; t < a.size(); ++t) au[t] = static_cast<uint8_t>(a[t]) ^ 0x80;
    gemm_mt(au.data(), true, m, lda, p, cu.data(), nullptr, ldc);
    same(cu, ref, "int8_gemm_u8 neon vs reference " + shape);

    // float epilogue with scales and bias
    std::vector<float> as(static_cast<size_t>(m)), bs(static_cast<size_t>(n)), bias(static_cast<size_t>(n));
    for (auto& v : as) v = 0.001f * static_cast<float>(1 + rng.below(1000));
    for (auto& v : bs) v = 0.003f * static_cast<float>(1 + rng.below(1000));
    for (auto& v : bias) v = 0.5f * static_cast<float>(rng.below(100)) - 25.0f;
    for (int with_bias = 0; with_bias < 2; ++with_bias) {
        std::vector<float> fs(static_cast<size_t>(m * ldc), 1.5f), fn = fs;
        set_isa(Isa::scalar);
        gemm_mt(a.data(), false, m, lda, p, nullptr, fs.data(), ldc, as.data(), bs.data(), with_bias ? bias.data() : nullptr);
        set_isa(Isa::neon);
        gemm_mt(a.data(), false, m, lda, p, nullptr, fn.data(), ldc, as.data(), bs.data(), with_bias ? bias.data() : nullptr);
        same(fs, fn, "int8_gemm_f32 neon vs scalar " + shape + (with_bias ? " bias" : ""));
    }
}

void int8_scan_case(Rng& rng, int64_t nq, int64_t n, int64_t dim, bool with_ids) {
    const int64_t ldq = int8_q16_stride(dim), qmax = int8_q16_max(dim);
    std::vector<int16_t> q(static_cast<size_t>(nq * ldq), 0);
    for (int64_t j = 0; j < nq; ++j)
        for (int64_t t = 0; t < dim; ++t)
            q[static_cast<size_t>(j * ldq + t)] = static_cast<int16_t>(j == 0 ? -qmax : rng.below(2 * qmax + 1) - qmax);
    std::vector<int8_t> docs(static_cast<size_t>((n + 3) * dim));
    for (auto& v : docs) v = static_cast<int8_t>(rng.byte());
    std::memset(docs.data(), 0x80, static_cast<size_t>(dim));
    std::vector<int64_t> ids(static_cast<size_t>(n));
    for (auto& v : ids) v = rng.below(n + 3);
    const int64_t* idp = with_ids ? ids.data() : nullptr;
    std::vector<int32_t> os(static_cast<size_t>(nq * n), 4), on = os;
    set_isa(Isa::scalar);
    int8_dot_q16(q.data(), nq, docs.data(), dim, idp, n, os.data(), n);
    set_isa(Isa::neon);
    int8_dot_q16(q.data(), nq, docs.data(), dim, idp, n, on.data(), n);
    same(os, on, fmt("int8_dot_q16 neon vs scalar nq=%" PRId64 " n=%" PRId64 " dim=%" PRId64 " ids=%" PRId64, nq, n, dim, with_ids));
}

void int8_cases(Rng& rng) {
    for (int64_t m : {1, 3, 4, 5, 9, 17})
        for (int64_t n : {1, 15, 16, 17, 33, 50})
            for (int64_t k : {1, 3, 4, 5, 63, 64, 65, 300}) int8_gemm_case(rng, m, n, k);
    int8_gemm_case(rng, 600, 40, 384);  // several row blocks
    for (int64_t dim = 1; dim <= 70; ++dim) int8_scan_case(rng, 1 + dim % 3, 5 + dim % 4, dim, dim % 2 == 0);
    int8_scan_case(rng, 4, 300, 384, true);
}


// ------------------------------------------------------------------ hash embeddings

// MurmurHash3_x64_128 of the 8 little-endian bytes of key, written from the byte-wise
// algorithm (body of no 16-byte blocks, an 8-byte tail).
void ref_murmur3_128(uint64_t key, uint32_t seed, uint64_t* h1o, uint64_t* h2o) {
    const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
    auto rotl = [](uint64_t x, int r) { return (x << r) | (x >> (64 - r)); };
    auto fmix = [](uint64_t k) {
        k ^= k >> 33;
        k *= 0xff51afd7ed558ccdULL;
        k ^= k >> 33;
        k *= 0xc4ceb9fe1a85ec53ULL;
        k ^= k >> 33;
        return k;
    };
    uint8_t tail[8];
    for (int b = 0; b < 8; ++b) tail[b] = static_cast<uint8_t>(key >> (8 * b));
    uint64_t h1 = seed, h2 = seed, k1 = 0;
    for (int b = 7; b >= 0; --b) k1 ^= uint64_t(tail[b]) << (8 * b);
    k1 *= c1;
    k1 = rotl(k1, 31);
    k1 *= c2;
    h1 ^= k1;
    h1 ^= 8;
    h2 ^= 8;
    h1 += h2;
    h2 += h1;
    h1 = fmix(h1);
    h2 = fmix(h2);
    h1 += h2;
    h2 += h1;
    *h1o = h1;
    *h2o = h2;
}

std::vector<uint64_t> make_keys(Rng& rng, int64_t n) {
    std::vector<uint64_t> k(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
        switch (rng.below(6)) {
            case 0: k[size_t(i)] = 0; break;
            case 1: k[size_t(i)] = ~uint64_t(0); break;
            case 2: k[size_t(i)] = uint64_t(rng.below(100)); break;
            default: k[size_t(i)] = rng.next();
        }
    }
    if (n > 0) k[0] = 0;
    if (n > 1) k[size_t(n - 1)] = ~uint64_t(0);
    return k;
}

void murmur_case(Rng& rng, int64_t n, uint32_t seed) {
    const std::vector<uint64_t> keys = make_keys(rng, n);
    std::vector<uint32_t> os(static_cast<size_t>(4 * n), 7u), on = os, ref = os;
    set_isa(Isa::scalar);
    murmur3_128_u64(keys.data(), n, seed, os.data());
    set_isa(Isa::neon);
    murmur3_128_u64(keys.data(), n, seed, on.data());
    const std::string shape = fmt("n=%" PRId64 " seed=%" PRId64, n, seed);
    same(os, on, "murmur3_128_u64 neon vs scalar " + shape);
    for (int64_t i = 0; i < n; ++i) {
        uint64_t h1, h2;
        ref_murmur3_128(keys[size_t(i)], seed, &h1, &h2);
        ref[size_t(4 * i)] = uint32_t(h1);
        ref[size_t(4 * i + 1)] = uint32_t(h1 >> 32);
        ref[size_t(4 * i + 2)] = uint32_t(h2);
        ref[size_t(4 * i + 3)] = uint32_t(h2 >> 32);
    }
    same(on, ref, "murmur3_128_u64 neon vs reference " + shape);
}

std::vector<float> make_table(Rng& rng, int64_t rows, int64_t dim, bool edges) {
    std::vector<float> t(static_cast<size_t>(rows * dim));
    for (auto& v : t)
        v = edges ? edge_float(rng) : static_cast<float>(static_cast<double>(rng.next() >> 11) / 9007199254740992.0 - 0.5);
    return t;
}

void hash_embed_case(Rng& rng, int64_t n, int64_t dim, uint64_t rows, uint32_t seed, bool edges) {
    const std::vector<uint64_t> ids = make_keys(rng, n);
    const std::vector<float> table = make_table(rng, int64_t(rows), dim, edges);
    const std::string shape = fmt("n=%" PRId64 " dim=%" PRId64 " rows=%" PRId64 " seed=%" PRId64 " edges=%" PRId64,
                                  n, dim, int64_t(rows), seed, edges);
    std::vector<float> os(static_cast<size_t>(n * dim), 9.0f), on = os;
    set_isa(Isa::scalar);
    hash_embed(ids.data(), n, seed, table.data(), rows, dim, os.data());
    set_isa(Isa::neon);
    hash_embed(ids.data(), n, seed, table.data(), rows, dim, on.data());
    same(os, on, "hash_embed neon vs scalar " + shape);
    std::vector<float> ref(static_cast<size_t>(n * dim));
    for (int64_t i = 0; i < n; ++i) {
        uint64_t h[2];
        ref_murmur3_128(ids[size_t(i)], seed, &h[0], &h[1]);
        const uint32_t words[4] = {uint32_t(h[0]), uint32_t(h[0] >> 32), uint32_t(h[1]), uint32_t(h[1] >> 32)};
        for (int64_t j = 0; j < dim; ++j) {
            float acc = 0.0f;
            for (uint32_t wd : words) acc += table[size_t(int64_t(wd % rows) * dim + j)];
            ref[size_t(i * dim + j)] = acc;
        }
    }
    same(on, ref, "hash_embed neon vs reference " + shape);

    // the per-ISA entry points on column slices [c0, c1), prefetching or not: columns outside
    // the slice stay untouched
    if (rows >= (uint64_t(1) << 32) || n == 0) return;
    const uint32_t d = static_cast<uint32_t>(rows);
    const uint64_t m = ~uint64_t(0) / d + 1;
    const int64_t slices[][2] = {{0, dim}, {dim / 3, dim}, {1, dim - 1}, {dim / 2, dim / 2 + 1}, {dim - 5, dim - 1}};
    for (const auto& sl : slices) {
        const int64_t c0 = sl[0], c1 = sl[1];
        if (c0 < 0 || c1 > dim || c1 <= c0) continue;
        for (int pf = 0; pf < 2; ++pf) {
            std::vector<float> ss(static_cast<size_t>(n * dim), -3.0f), sn = ss, sr = ss;
            hash_embed_scalar(ids.data(), n, seed, table.data(), d, m, dim, c0, c1, pf != 0, ss.data());
            hash_embed_neon(ids.data(), n, seed, table.data(), d, m, dim, c0, c1, pf != 0, sn.data());
            for (int64_t i = 0; i < n; ++i)
                for (int64_t j = c0; j < c1; ++j) sr[size_t(i * dim + j)] = ref[size_t(i * dim + j)];
            const std::string what = shape + fmt(" slice %" PRId64 "..%" PRId64 " prefetch=%" PRId64, c0, c1, pf);
            same(ss, sn, "hash_embed_neon vs hash_embed_scalar " + what);
            same(sn, sr, "hash_embed_neon vs reference " + what);
        }
    }
}

void hash_cases(Rng& rng) {
    const uint32_t seeds[] = {0u, 1u, 0x9747b28cu, 0xffffffffu};
    for (int64_t n : {0, 1, 2, 3, 4, 5, 7, 8, 9, 17, 31, 1000})
        for (uint32_t seed : seeds) murmur_case(rng, n, seed);
    murmur_case(rng, 140001, 0xfffffffeu);  // several chunks on the pool
    for (int64_t dim : {1, 2, 3, 4, 5, 7, 8, 15, 16, 17, 31, 32, 33, 96, 100, 130})
        for (int64_t n : {0, 1, 3, 4, 5, 7, 9, 30})
            hash_embed_case(rng, n, dim, 1 + uint64_t(rng.below(5000)), seeds[(dim + n) % 4], (n + dim) % 3 == 0);
    for (uint64_t rows : {1, 2, 3, 7})
        hash_embed_case(rng, 13, 17, rows, 0xffffffffu, true);
    // a table larger than the assumed L2 with a width of 96: gathered in column slices
    hash_embed_case(rng, 16400, 96, 4096, 12345u, false);
}

// ------------------------------------------------------------------ embedding_bag

inline float ref_mul(float w, float x) {
    volatile float p = w * x;  // rounded, never fused
    return p;
}

// Bag sizes: a mix of empty, single and long bags (kind 0), or random sizes up to max_len.
std::vector<int64_t> make_offsets(Rng& rng, int64_t n_bags, int64_t start, int64_t max_len) {
    std::vector<int64_t> off(static_cast<size_t>(n_bags + 1), start);
    for (int64_t b = 0; b < n_bags; ++b) {
        int64_t len;
        switch (b % 5) {
            case 0: len = 0; break;
            case 1: len = 1; break;
            case 2: len = max_len; break;
            default: len = rng.below(max_len + 1);
        }
        off[size_t(b + 1)] = off[size_t(b)] + len;
    }
    return off;
}

void bag_case(Rng& rng, int64_t rows, int64_t dim, int64_t n_bags, int64_t max_len, bool weighted,
              int mode, bool edges, int64_t start) {
    const std::vector<float> table = make_table(rng, rows, dim, edges);
    const std::vector<int64_t> off = make_offsets(rng, n_bags, start, max_len);
    std::vector<int64_t> ids(static_cast<size_t>(off.back()));
    for (auto& v : ids) v = rng.below(4) == 0 ? (rng.below(2) ? 0 : rows - 1) : rng.below(rows);
    std::vector<float> w(ids.size());
    for (auto& v : w) v = edges ? edge_float(rng) : 2.0f * static_cast<float>(static_cast<double>(rng.next() >> 11) / 9007199254740992.0) - 0.7f;
    const float* wp = weighted ? w.data() : nullptr;
    const BagMode bm = mode ? BagMode::mean : BagMode::sum;
    const std::string shape = fmt("rows=%" PRId64 " dim=%" PRId64 " bags=%" PRId64 " max_len=%" PRId64 " start=%" PRId64,
                                  rows, dim, n_bags, max_len, start) +
                              fmt(" weighted=%" PRId64 " mean=%" PRId64 " edges=%" PRId64, weighted, mode, edges);
    std::vector<float> os(static_cast<size_t>(n_bags * dim), 5.0f), on = os;
    set_isa(Isa::scalar);
    embedding_bag(table.data(), rows, dim, ids.data(), off.data(), n_bags, wp, bm, os.data());
    set_isa(Isa::neon);
    embedding_bag(table.data(), rows, dim, ids.data(), off.data(), n_bags, wp, bm, on.data());
    same(os, on, "embedding_bag neon vs scalar " + shape);
    std::vector<float> ref(static_cast<size_t>(n_bags * dim));
    for (int64_t b = 0; b < n_bags; ++b) {
        const int64_t s = off[size_t(b)], e = off[size_t(b + 1)];
        for (int64_t j = 0; j < dim; ++j) {
            float acc = 0.0f;
            for (int64_t p = s; p < e; ++p) {
                const float x = table[size_t(ids[size_t(p)] * dim + j)];
                acc += wp ? ref_mul(wp[p], x) : x;
            }
            if (mode && e > s) acc = acc / float(e - s);
            ref[size_t(b * dim + j)] = acc;
        }
    }
    same(on, ref, "embedding_bag neon vs reference " + shape);
    // the per-ISA entry point directly, on a range of bags, prefetching a few ids ahead
    if (n_bags >= 3) {
        for (int64_t pf : {1, 7}) {
            std::vector<float> ds(static_cast<size_t>(n_bags * dim), -2.0f), dn = ds, dr = ds;
            embedding_bag_scalar(table.data(), dim, ids.data(), off.data(), 1, n_bags - 1, wp, mode, pf, ds.data());
            embedding_bag_neon(table.data(), dim, ids.data(), off.data(), 1, n_bags - 1, wp, mode, pf, dn.data());
            for (int64_t t = dim; t < (n_bags - 1) * dim; ++t) dr[size_t(t)] = ref[size_t(t)];
            same(ds, dn, "embedding_bag_neon vs embedding_bag_scalar (bags 1..n-1) " + shape + fmt(" prefetch=%" PRId64, pf));
            same(dn, dr, "embedding_bag_neon vs reference (bags 1..n-1) " + shape + fmt(" prefetch=%" PRId64, pf));
        }
    }
}

void bag_cases(Rng& rng) {
    int t = 0;
    for (int64_t dim : {1, 2, 3, 4, 5, 7, 8, 12, 15, 16, 17, 31, 32, 33, 60, 63, 64, 65, 67, 95, 96, 97, 100, 127, 128, 129, 130, 161, 200})
        for (int mode = 0; mode < 2; ++mode)
            for (int weighted = 0; weighted < 2; ++weighted, ++t)
                bag_case(rng, 1 + rng.below(60), dim, 1 + rng.below(12), t % 3 == 0 ? 300 : 9, weighted != 0, mode,
                         t % 4 == 1, t % 5 == 2 ? 3 : 0);
    for (int64_t n_bags : {1, 2})
        for (int64_t dim : {1, 4, 17, 130}) bag_case(rng, 1, dim, n_bags, 0, false, 1, false, 0);  // empty bags only
    bag_case(rng, 7, 33, 5, 1, true, 1, true, 0);
    // a table beyond the caches (prefetching), and enough bags for several chunks on the pool
    bag_case(rng, 20000, 64, 700, 40, true, 0, false, 0);
    bag_case(rng, 9000, 130, 300, 30, false, 1, false, 0);
}

// ------------------------------------------------------------------ encoder float operations
//
// These paths are not bit-exact across ISAs (the NEON path contracts multiply-adds and
// reorders sums), so floats are compared within a relative tolerance: |neon - scalar| <=
// kEncRtol * scale, where scale is the magnitude the result is built from (the sum of
// |a_ik b_jk| for a matrix product, the row's largest |value| for row operations, the largest
// |v| for attention). Quantized codes may differ by 1 only where the value being rounded sits
// at (or, for the fused operations whose float inputs already differ slightly, within
// kEncTieWindow of) a rounding tie.

constexpr double kEncRtol = 1e-5;
constexpr double kEncTieWindow = 2e-3;
int64_t g_enc_ties = 0;  // code differences accepted at rounding ties

float uniform(Rng& rng, float lo, float hi) {
    return lo + (hi - lo) * static_cast<float>(static_cast<double>(rng.next() >> 40) / 16777216.0);
}

std::vector<float> random_floats(Rng& rng, int64_t n, float scale) {
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = uniform(rng, -scale, scale);
    return v;
}

// |a[i] - b[i]| <= rtol * mag[i] for every i (mag >= 0; exact equality always passes).
bool close(const std::vector<float>& a, const std::vector<float>& b, const std::vector<double>& mag,
           double rtol, const std::string& what) {
    ++g_cases;
    bool ok = a.size() == b.size() && mag.size() == a.size();
    size_t bad = 0;
    double worst = 0.0;
    for (size_t i = 0; ok && i < a.size(); ++i) {
        const double d = std::fabs(static_cast<double>(a[i]) - static_cast<double>(b[i]));
        if (a[i] == b[i]) continue;
        if (!(d <= rtol * mag[i])) {  // also catches NaN
            ok = false;
            bad = i;
            worst = d;
        }
    }
    if (ok) return true;
    ++g_failures;
    if (g_failures <= 20) {
        if (a.size() != b.size() || mag.size() != a.size())
            std::printf("MISMATCH %s: sizes %zu vs %zu\n", what.c_str(), a.size(), b.size());
        else
            std::printf("MISMATCH %s: element %zu: %.9g vs %.9g (difference %.3g, allowed %.3g)\n",
                        what.c_str(), bad, static_cast<double>(a[bad]), static_cast<double>(b[bad]),
                        worst, rtol * mag[bad]);
    }
    return false;
}

bool close1(float a, float b, double mag, double rtol, const std::string& what) {
    return close({a}, {b}, {mag}, rtol, what);
}

// Every element equals `fill` (writes outside the requested region).
bool untouched(const std::vector<float>& c, const std::vector<bool>& written, float fill,
               const std::string& what) {
    for (size_t i = 0; i < c.size(); ++i)
        if (!written[i] && std::memcmp(&c[i], &fill, sizeof fill) != 0)
            return expect(false, what + fmt(": element %" PRId64 " written outside the output region",
                                             static_cast<int64_t>(i)));
    return expect(true, what);
}

// Row of n values: the scale for row operations is the row's largest |value| (at least 1e-30).
std::vector<double> row_scale(const std::vector<float>& ref) {
    double m = 1e-30;
    for (float v : ref) m = std::max(m, std::fabs(static_cast<double>(v)));
    return std::vector<double>(ref.size(), m);
}

// Quantized codes: equal, or 1 apart where t[j] / s (the value rounded, from the neon path's
// own floats) lies within `window` of a half-integer.
bool codes_match(const std::vector<uint8_t>& qs, const std::vector<uint8_t>& qn,
                 const std::vector<double>& t, double s, double window, const std::string& what) {
    ++g_cases;
    for (size_t j = 0; j < qs.size(); ++j) {
        if (qs[j] == qn[j]) continue;
        const int diff = std::abs(int(qs[j]) - int(qn[j]));
        double frac = -1.0;
        if (diff == 1 && s > 0.0) {
            const double r = std::fabs(t[j] / s);
            frac = std::fabs(r - std::floor(r) - 0.5);
            if (frac <= window) {
                ++g_enc_ties;
                continue;
            }
        }
        ++g_failures;
        if (g_failures <= 20)
            std::printf("MISMATCH %s: code %zu: %d vs %d (value / scale %.9g, distance from a tie %.3g)\n",
                        what.c_str(), j, int(qs[j]), int(qn[j]), s > 0.0 ? t[j] / s : 0.0, frac);
        return false;
    }
    return true;
}

void enc_sgemm_case(Rng& rng, int64_t m, int64_t n, int64_t k, int64_t p0, int64_t p1) {
    const int64_t lda = k + 3, ldb = k + 1, ldc = n + 5;
    const std::vector<float> a = random_floats(rng, m * lda, 1.0f);
    const std::vector<float> b = random_floats(rng, n * ldb, 0.5f);
    std::vector<float> bp(static_cast<size_t>(enc_packed_f32_size(n, k)));
    enc_pack_f32(b.data(), n, k, ldb, bp.data());
    const float fill = -777.0f;
    std::vector<float> cs(static_cast<size_t>(m * ldc), fill), cn = cs;
    set_isa(Isa::scalar);
    enc_sgemm_packed(a.data(), m, lda, bp.data(), n, k, p0, p1, cs.data(), ldc);
    set_isa(Isa::neon);
    enc_sgemm_packed(a.data(), m, lda, bp.data(), n, k, p0, p1, cn.data(), ldc);
    const std::string shape = fmt("m=%" PRId64 " n=%" PRId64 " k=%" PRId64 " panels %" PRId64 "..%" PRId64,
                                  m, n, k, p0, p1);
    // magnitudes and a double reference
    std::vector<double> mag(cs.size(), 0.0);
    std::vector<float> ref = cs;
    std::vector<bool> written(cs.size(), false);
    const int64_t j1 = std::min(n, 16 * p1);
    for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 16 * p0; j < j1; ++j) {
            double s = 0.0, sa = 0.0;
            for (int64_t t = 0; t < k; ++t) {
                const double p = double(a[size_t(i * lda + t)]) * double(b[size_t(j * ldb + t)]);
                s += p;
                sa += std::fabs(p);
            }
            const size_t at = size_t(i * ldc + j);
            mag[at] = sa + 1e-30;
            ref[at] = static_cast<float>(s);
            written[at] = true;
        }
    close(cn, cs, mag, kEncRtol, "enc_sgemm_packed neon vs scalar " + shape);
    close(cn, ref, mag, kEncRtol, "enc_sgemm_packed neon vs reference " + shape);
    untouched(cn, written, fill, "enc_sgemm_packed neon output region " + shape);
}

void enc_row_cases(Rng& rng, int64_t n) {
    const std::string sn = fmt("n=%" PRId64, n);
    for (int variant = 0; variant < 2; ++variant) {
        const float scale = variant == 0 ? 1.0f : 60.0f;
        const std::string what = sn + (variant ? " large" : "");
        const std::vector<float> y = random_floats(rng, n, scale);
        const std::vector<float> res = random_floats(rng, n, scale);
        std::vector<float> g = random_floats(rng, n, 1.0f), bias = random_floats(rng, n, 0.5f);
        for (auto& v : g) v += 1.5f;
        std::vector<float> mul = random_floats(rng, n, 1.0f);
        for (auto& v : mul) v = std::fabs(v) + 0.25f;
        const std::vector<float> shift = random_floats(rng, n, 0.3f);

        // bias row: with and without bias, in place and not
        for (int mode = 0; mode < 3; ++mode) {
            const float* bb = mode == 1 ? nullptr : bias.data();
            std::vector<float> os(static_cast<size_t>(n), 3.0f), on = os;
            if (mode == 2) { os = y; on = y; }
            set_isa(Isa::scalar);
            enc_bias_row(mode == 2 ? os.data() : y.data(), n, bb, os.data());
            set_isa(Isa::neon);
            enc_bias_row(mode == 2 ? on.data() : y.data(), n, bb, on.data());
            close(on, os, row_scale(os), kEncRtol, "enc_bias_row neon vs scalar " + what + fmt(" mode=%" PRId64, mode));
        }

        // LayerNorm, with and without the residual, in place
        for (int with_res = 0; with_res < 2; ++with_res) {
            const float* r = with_res ? res.data() : nullptr;
            std::vector<float> os = y, on = y;
            set_isa(Isa::scalar);
            enc_add_layernorm_row(os.data(), r, n, g.data(), bias.data(), 1e-12f, os.data());
            set_isa(Isa::neon);
            enc_add_layernorm_row(on.data(), r, n, g.data(), bias.data(), 1e-12f, on.data());
            close(on, os, row_scale(os), kEncRtol, "enc_add_layernorm_row neon vs scalar " + what + fmt(" res=%" PRId64, with_res));

            for (int with_mul = 0; with_mul < 2; ++with_mul) {
                const float* mp = with_mul ? mul.data() : nullptr;
                std::vector<float> fs(static_cast<size_t>(n)), fn(static_cast<size_t>(n));
                std::vector<uint8_t> qs(static_cast<size_t>(n), 1), qn(static_cast<size_t>(n), 2);
                set_isa(Isa::scalar);
                const float ss = enc_add_layernorm_quantize_row(y.data(), r, n, g.data(), bias.data(), 1e-5f, fs.data(), mp, qs.data());
                set_isa(Isa::neon);
                const float sv = enc_add_layernorm_quantize_row(y.data(), r, n, g.data(), bias.data(), 1e-5f, fn.data(), mp, qn.data());
                const std::string w2 = what + fmt(" res=%" PRId64 " mul=%" PRId64, with_res, with_mul);
                close(fn, fs, row_scale(fs), kEncRtol, "enc_add_layernorm_quantize_row floats neon vs scalar " + w2);
                close1(sv, ss, std::fabs(ss), kEncRtol, "enc_add_layernorm_quantize_row scale neon vs scalar " + w2);
                std::vector<double> t(static_cast<size_t>(n));
                for (int64_t j = 0; j < n; ++j) t[size_t(j)] = double(fn[size_t(j)]) * (mp ? double(mp[j]) : 1.0);
                codes_match(qs, qn, t, sv, kEncTieWindow, "enc_add_layernorm_quantize_row codes neon vs scalar " + w2);
            }
        }

        // GELU, and GELU with quantization
        {
            std::vector<float> os = y, on = y;
            set_isa(Isa::scalar);
            enc_gelu_row(os.data(), n);
            set_isa(Isa::neon);
            enc_gelu_row(on.data(), n);
            close(on, os, row_scale(os), kEncRtol, "enc_gelu_row neon vs scalar " + what);
        }
        for (int with_mul = 0; with_mul < 2; ++with_mul) {
            const float* mp = with_mul ? mul.data() : nullptr;
            std::vector<float> os = y, on = y;
            std::vector<uint8_t> qs(static_cast<size_t>(n), 1), qn(static_cast<size_t>(n), 2);
            set_isa(Isa::scalar);
            const float ss = enc_gelu_quantize_row(os.data(), n, mp, qs.data());
            set_isa(Isa::neon);
            const float sv = enc_gelu_quantize_row(on.data(), n, mp, qn.data());
            const std::string w2 = what + fmt(" mul=%" PRId64, with_mul);
            close(on, os, row_scale(os), kEncRtol, "enc_gelu_quantize_row floats neon vs scalar " + w2);
            close1(sv, ss, std::fabs(ss), kEncRtol, "enc_gelu_quantize_row scale neon vs scalar " + w2);
            std::vector<double> t(static_cast<size_t>(n));
            for (int64_t j = 0; j < n; ++j) t[size_t(j)] = double(on[size_t(j)]) * (mp ? double(mp[j]) : 1.0);
            codes_match(qs, qn, t, sv, kEncTieWindow, "enc_gelu_quantize_row codes neon vs scalar " + w2);
        }

        // quantization with every shift / mul combination (the same float input on both paths)
        for (int combo = 0; combo < 4; ++combo) {
            const float* sp = combo & 1 ? shift.data() : nullptr;
            const float* mp = combo & 2 ? mul.data() : nullptr;
            std::vector<uint8_t> qs(static_cast<size_t>(n), 1), qn(static_cast<size_t>(n), 2);
            std::vector<float> tmp(static_cast<size_t>(n));
            set_isa(Isa::scalar);
            const float ss = enc_quantize_row(y.data(), n, sp, mp, qs.data(), tmp.data());
            set_isa(Isa::neon);
            const float sv = enc_quantize_row(y.data(), n, sp, mp, qn.data(), tmp.data());
            const std::string w2 = what + fmt(" shift=%" PRId64 " mul=%" PRId64, combo & 1, combo >> 1);
            close1(sv, ss, std::fabs(ss), kEncRtol, "enc_quantize_row scale neon vs scalar " + w2);
            std::vector<double> t(static_cast<size_t>(n));
            for (int64_t j = 0; j < n; ++j)
                t[size_t(j)] = (double(y[size_t(j)]) - (sp ? double(sp[j]) : 0.0)) * (mp ? double(mp[j]) : 1.0);
            codes_match(qs, qn, t, sv, 1e-4, "enc_quantize_row codes neon vs scalar " + w2);
            // the scalar path exactly as numpy computes it (each float operation rounded: no
            // fused multiply-add contracted by the compiler), as on x86
            std::vector<float> tf(static_cast<size_t>(n));
            float amax = 0.0f;
            for (int64_t j = 0; j < n; ++j) {
                float v = sp ? y[size_t(j)] - sp[j] : y[size_t(j)];
                tf[size_t(j)] = mp ? v * mp[j] : v;
                amax = std::max(amax, std::fabs(tf[size_t(j)]));
            }
            if (amax > 0.0f) {
                const float inv = 127.0f / amax;
                std::vector<uint8_t> ref(static_cast<size_t>(n));
                for (int64_t j = 0; j < n; ++j) {
                    const float p = tf[size_t(j)] * inv;
                    const float r = std::min(std::max(std::nearbyint(p), -127.0f), 127.0f);
                    ref[size_t(j)] = static_cast<uint8_t>(static_cast<int>(r) + 128);
                }
                same(qs, ref, "enc_quantize_row codes scalar vs float32 reference " + w2);
            }
        }
    }

    // exact ties: half-integers with max |x| = 127, so x / s is x itself
    {
        std::vector<float> x(static_cast<size_t>(n));
        for (int64_t j = 0; j < n; ++j) x[size_t(j)] = static_cast<float>(rng.below(254) - 127) + 0.5f;
        x[size_t(n / 2)] = n % 2 ? 127.0f : -127.0f;
        std::vector<uint8_t> qs(static_cast<size_t>(n), 1), qn(static_cast<size_t>(n), 2), ref(static_cast<size_t>(n));
        std::vector<float> tmp(static_cast<size_t>(n));
        set_isa(Isa::scalar);
        const float ss = enc_quantize_row(x.data(), n, nullptr, nullptr, qs.data(), tmp.data());
        set_isa(Isa::neon);
        const float sv = enc_quantize_row(x.data(), n, nullptr, nullptr, qn.data(), tmp.data());
        expect(ss == 1.0f && sv == 1.0f, "enc_quantize_row ties: scale 1 " + sn);
        for (int64_t j = 0; j < n; ++j)
            ref[size_t(j)] = static_cast<uint8_t>(static_cast<int>(std::nearbyint(x[size_t(j)])) + 128);  // half to even
        same(qn, qs, "enc_quantize_row ties neon vs scalar " + sn);
        same(qn, ref, "enc_quantize_row ties neon vs round-half-even " + sn);
    }
    // near-ties: values whose product with 127 / max|x|, rounded to float, rounds to another
    // integer than the exact product does; a contracted multiply-add (one rounding) would give
    // the latter. The scalar level gives the former, as numpy and x86-64 do.
    {
        const float amax = 100.0f, inv = 127.0f / amax;
        std::vector<float> x{amax};
        for (int tries = 0; int64_t(x.size()) < std::max<int64_t>(n, 2) && tries < 20000000; ++tries) {
            const float t = uniform(rng, -amax, amax);
            if (std::nearbyint(t * inv) != std::nearbyint(double(t) * double(inv))) x.push_back(t);
        }
        expect(x.size() > 1, "near-tie values found " + sn);
        const int64_t m = int64_t(x.size());
        std::vector<uint8_t> qs(static_cast<size_t>(m), 1), ref(static_cast<size_t>(m));
        std::vector<float> tmp(static_cast<size_t>(m));
        set_isa(Isa::scalar);
        const float ss = enc_quantize_row(x.data(), m, nullptr, nullptr, qs.data(), tmp.data());
        expect(ss == amax / 127.0f, "enc_quantize_row near-ties: scale " + sn);
        for (int64_t j = 0; j < m; ++j) {
            const float p = x[size_t(j)] * inv;
            ref[size_t(j)] = static_cast<uint8_t>(static_cast<int>(std::nearbyint(p)) + 128);
        }
        same(qs, ref, "enc_quantize_row near-ties scalar vs float32 rounding " + sn);
    }
    // an all-zero row: scale 0, every code 128
    {
        std::vector<float> x(static_cast<size_t>(n), 0.0f), tmp(static_cast<size_t>(n)), xs = x;
        std::vector<uint8_t> qn(static_cast<size_t>(n), 1), qg(static_cast<size_t>(n), 2), all(static_cast<size_t>(n), 128);
        set_isa(Isa::neon);
        const float s1 = enc_quantize_row(x.data(), n, nullptr, nullptr, qn.data(), tmp.data());
        const float s2 = enc_gelu_quantize_row(xs.data(), n, nullptr, qg.data());
        expect(s1 == 0.0f && s2 == 0.0f, "enc quantize of a zero row: scale 0 " + sn);
        same(qn, all, "enc_quantize_row zero row " + sn);
        same(qg, all, "enc_gelu_quantize_row zero row " + sn);
    }
}

void enc_attention_case(Rng& rng, int64_t L, int64_t d) {
    const int64_t ld = 3 * d + 5, ldo = d + 3;  // fused q|k|v rows, a padded output
    const std::vector<float> qkv = random_floats(rng, L * ld, 1.0f);
    std::vector<float> qs(qkv);
    const float qscale = 3.0f / std::sqrt(static_cast<float>(d));  // peaked softmax rows
    for (int64_t t = 0; t < L; ++t)
        for (int64_t c = 0; c < d; ++c) qs[size_t(t * ld + c)] *= qscale;
    const float* q = qs.data();
    const float* k = qs.data() + d;
    const float* v = qs.data() + 2 * d;
    const float fill = 55.5f;
    std::vector<float> os(size_t(L * ldo), fill), on = os;
    std::vector<float> scratch(size_t(enc_attention_scratch(L, d)), -1.0f);
    set_isa(Isa::scalar);
    enc_attention_head(q, k, v, ld, L, d, os.data(), ldo, scratch.data());
    std::fill(scratch.begin(), scratch.end(), std::numeric_limits<float>::quiet_NaN());
    set_isa(Isa::neon);
    enc_attention_head(q, k, v, ld, L, d, on.data(), ldo, scratch.data());
    const std::string shape = fmt("L=%" PRId64 " d=%" PRId64, L, d);

    double vmax = 1e-30;
    for (int64_t t = 0; t < L; ++t)
        for (int64_t c = 0; c < d; ++c) vmax = std::max(vmax, std::fabs(double(v[t * ld + c])));
    std::vector<double> mag(os.size(), vmax);
    std::vector<float> ref = os;
    std::vector<bool> written(os.size(), false);
    std::vector<double> s(static_cast<size_t>(L));
    for (int64_t i = 0; i < L; ++i) {
        double mx = -1e300, sum = 0.0;
        for (int64_t j = 0; j < L; ++j) {
            double dot = 0.0;
            for (int64_t c = 0; c < d; ++c) dot += double(q[i * ld + c]) * double(k[j * ld + c]);
            s[size_t(j)] = dot;
            mx = std::max(mx, dot);
        }
        for (auto& e : s) sum += (e = std::exp(e - mx));
        for (int64_t c = 0; c < d; ++c) {
            double o = 0.0;
            for (int64_t j = 0; j < L; ++j) o += s[size_t(j)] * double(v[j * ld + c]);
            ref[size_t(i * ldo + c)] = static_cast<float>(o / sum);
            written[size_t(i * ldo + c)] = true;
        }
    }
    close(on, os, mag, kEncRtol, "enc_attention_head neon vs scalar " + shape);
    close(on, ref, mag, 1e-5, "enc_attention_head neon vs reference " + shape);
    untouched(on, written, fill, "enc_attention_head neon output region " + shape);
}

void encoder_cases(Rng& rng) {
    for (int64_t m = 1; m <= 9; ++m)
        for (int64_t n : {1, 15, 16, 17, 40, 100})
            for (int64_t k : {1, 3, 5, 7, 33, 385}) enc_sgemm_case(rng, m, n, k, 0, (n + 15) / 16);
    enc_sgemm_case(rng, 7, 100, 65, 1, 5);     // a range of panels, the last one partial
    enc_sgemm_case(rng, 5, 100, 65, 2, 3);     // one full panel in the middle
    enc_sgemm_case(rng, 101, 390, 385, 0, 25); // several row blocks
    for (int64_t n : {1, 15, 16, 17, 384, 1536}) enc_row_cases(rng, n);
    for (int64_t L : {1, 7, 16, 33})
        for (int64_t d : {24, 32, 64}) enc_attention_case(rng, L, d);
    for (int64_t L : {2, 7, 33}) enc_attention_case(rng, L, 13);  // a head width not a multiple of 4
}

}  // namespace

int main() {
    if (best_isa() != Isa::neon) {
        std::printf("neon_check: this CPU does not offer the neon level (ASIMD + dot product); best is %s\n",
                    isa_name(best_isa()));
        return 2;
    }
    set_num_threads(2);
    Rng rng(20240611);
    bit_code_cases(rng);
    pack_bits_cases(rng);
    sdc_cases(rng);
    int8_cases(rng);
    const int64_t before_hash = g_cases;
    hash_cases(rng);
    bag_cases(rng);
    const int64_t before_encoder = g_cases;
    encoder_cases(rng);
    set_isa(best_isa());
    std::printf("neon_check: %" PRId64 " cases compared, %" PRId64 " mismatches"
                " (%" PRId64 " of the cases hash embeddings and embedding bags, %" PRId64
                " encoder operations, %" PRId64 " of their codes one apart at rounding ties)\n",
                g_cases, g_failures, before_encoder - before_hash, g_cases - before_encoder, g_enc_ties);
    return g_failures ? 1 : 0;
}
