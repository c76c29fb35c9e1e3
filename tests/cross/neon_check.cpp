// NEON against scalar for the kernel families that have aarch64 versions: bit codes
// (pack_bits, hamming, hamming_topk, binary_matmul), SDC scores and top-k, int8 GEMM and the
// int8 query scan. Built for aarch64 together with those families' sources (see
// tests/test_neon_cross.py) and run on an aarch64 CPU or under an emulator.
//
// Every case runs the public entry point twice, with the ISA level forced to scalar and then
// to neon, and compares the two results byte for byte; most cases also compare with a plain
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
    int8_gemm_packed_mt(a.data(), m, lda, p, cs.data(), ldc);
    set_isa(Isa::neon);
    int8_gemm_packed_mt(a.data(), m, lda, p, cn.data(), ldc);
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
    int8_gemm_packed_u8_mt(au.data(), m, lda, p, cu.data(), ldc);
    same(cu, ref, "int8_gemm_u8 neon vs reference " + shape);

    // float epilogue with scales and bias
    std::vector<float> as(static_cast<size_t>(m)), bs(static_cast<size_t>(n)), bias(static_cast<size_t>(n));
    for (auto& v : as) v = 0.001f * static_cast<float>(1 + rng.below(1000));
    for (auto& v : bs) v = 0.003f * static_cast<float>(1 + rng.below(1000));
    for (auto& v : bias) v = 0.5f * static_cast<float>(rng.below(100)) - 25.0f;
    for (int with_bias = 0; with_bias < 2; ++with_bias) {
        std::vector<float> fs(static_cast<size_t>(m * ldc), 1.5f), fn = fs;
        set_isa(Isa::scalar);
        int8_gemm_packed_f32_mt(a.data(), false, m, lda, p, as.data(), bs.data(), with_bias ? bias.data() : nullptr, fs.data(), ldc);
        set_isa(Isa::neon);
        int8_gemm_packed_f32_mt(a.data(), false, m, lda, p, as.data(), bs.data(), with_bias ? bias.data() : nullptr, fn.data(), ldc);
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
    set_isa(best_isa());
    std::printf("neon_check: %" PRId64 " cases compared, %" PRId64 " mismatches\n", g_cases, g_failures);
    return g_failures ? 1 : 0;
}
