// int8 GEMM: packing of B, the ISA dispatcher, row blocking and threading.
#include "kernels/int8_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "dispatch.h"
#include "parallel.h"

namespace embedrt {

namespace {

// Rows of A packed per kernel call: about 512 KB of packed A (fits L2 with a B block).
int64_t row_block(int64_t kp) {
    int64_t mc = (int64_t(512) << 10) / std::max<int64_t>(kp, 4);
    mc = mc / 8 * 8;
    return std::max<int64_t>(8, std::min<int64_t>(mc, 4096));
}

// 64-byte aligned thread-local scratch (chunks may run on any thread, so never shared).
uint8_t* scratch(int64_t bytes) {
    thread_local std::vector<uint8_t> buf;
    if (int64_t(buf.size()) < bytes + 64) buf.resize(size_t(bytes + 64));
    uintptr_t p = reinterpret_cast<uintptr_t>(buf.data());
    return reinterpret_cast<uint8_t*>((p + 63) & ~uintptr_t(63));
}

// c[i, j] = fma(xo[i, o], wo[o, j], c[i, j]) for o in order: the same operations as the
// avx512 epilogue, so every path gives the same floats.
void add_side_channels(const Int8GemmArgs& g, int64_t j0, int64_t j1) {
    for (int64_t i = 0; i < g.m; ++i) {
        float* c = g.cf + i * g.ldc;
        for (int64_t o = 0; o < g.nout; ++o) {
            const float x = g.xo[i * g.nout + o];
            const float* w = g.wo + o * g.n;
            for (int64_t j = j0; j < j1; ++j) c[j] = std::fma(x, w[j], c[j]);
        }
    }
}

void run(Int8GemmArgs args, int64_t j0, int64_t j1) {
    if (args.m <= 0 || j1 <= j0) return;
    Isa isa = active_isa();
    const int64_t m = args.m;
    int64_t mc = row_block(args.kp);
    if (m > mc) {  // even row blocks (multiples of 8) rather than a short last one
        int64_t blocks = (m + mc - 1) / mc;
        mc = ((m + blocks - 1) / blocks + 7) / 8 * 8;
    }
    const size_t esz = 1;  // both int8 and uint8 A
    args.scratch = scratch(int8_gemm_scratch_bytes(std::min(m, mc), args.kp));
    for (int64_t i0 = 0; i0 < m; i0 += mc) {
        Int8GemmArgs blk = args;
        blk.m = std::min(mc, m - i0);
        blk.a = static_cast<const uint8_t*>(args.a) + i0 * args.lda * esz;
        if (args.c32) blk.c32 = args.c32 + i0 * args.ldc;
        else blk.cf = args.cf + i0 * args.ldc;
        if (args.a_scale) blk.a_scale = args.a_scale + i0;
        if (args.nout) blk.xo = args.xo + i0 * args.nout;
        switch (isa) {
#if defined(EMBEDRT_HAVE_X86)
            case Isa::avx512:
            case Isa::avx512_vnni: int8_gemm_avx512vnni(blk, j0, j1); break;
            case Isa::avx512_skx: int8_gemm_avx512(blk, j0, j1); break;
            case Isa::avx2: int8_gemm_avx2(blk, j0, j1); break;
#endif
#if defined(EMBEDRT_HAVE_NEON)
            case Isa::neon: int8_gemm_neon(blk, j0, j1); break;
#endif
            default: int8_gemm_scalar(blk, j0, j1); break;
        }
        // the x86 kernels add the side channels in their epilogues
        if (blk.nout && !isa_at_least(isa, Isa::avx2)) add_side_channels(blk, j0, std::min(j1, blk.n));
    }
}

// The kernel arguments of a product (raw pointers into the packed B); an int32 product has no
// epilogue.
Int8GemmArgs kernel_args(const Int8GemmParams& p) {
    Int8GemmArgs args;
    static_cast<Int8GemmOperands&>(args) = p;
    if (args.c32) args.cf = nullptr, args.a_scale = args.b_scale = args.bias = nullptr;
    if (args.c32 || args.nout <= 0) args.xo = args.wo = nullptr, args.nout = 0;
    args.b = p.b->data.data();
    args.comp = p.b->comp.data();
    args.n = p.b->n;
    args.k = p.b->k;
    args.kp = p.b->kp;
    return args;
}

// Splits the columns in whole panels over the pool. Few rows: every thread packs the same A
// (cheap); the split keeps each thread's B panels disjoint.
void run_mt(const Int8GemmArgs& args, int64_t j0, int64_t j1) {
    if (args.m <= 0 || j1 <= j0) return;
    int64_t panels = (j1 - j0 + 15) / 16;
    // Aim for >= ~2M multiply-adds per task so that tiny products stay on one thread.
    int64_t per_panel = std::max<int64_t>(1, args.m * args.kp * 16);
    int64_t grain = std::max<int64_t>(1, (int64_t(1) << 21) / per_panel);
    // Round to the microkernel's 3-panel blocks where that still leaves work for everyone.
    int64_t threads = get_num_threads();
    if (panels >= 3 * threads) grain = std::max<int64_t>(grain, 3);
    parallel_for(panels, grain, [&](int64_t p0, int64_t p1) {
        run(args, j0 + p0 * 16, std::min(j1, j0 + p1 * 16));
    });
}

int64_t last_column(const Int8GemmParams& p) { return p.j1 < 0 ? p.b->n : std::min(p.j1, p.b->n); }

}  // namespace

int64_t int8_gemm_scratch_bytes(int64_t m, int64_t kp) {
    // avx512 / neon: uint8 or int8 micro panels of 8 rows; avx2: int16 panels of 3 rows
    // (rounded up to 12), a k block of one B panel widened to int16 (at most 16 x 512) and
    // an int32 tile of 16 columns per row.
    int64_t rows = std::max((m + 7) / 8 * 8, (m + 11) / 12 * 12);
    return rows * kp * 2 + 32 * std::min<int64_t>(kp, 512) + rows * 64 + 256;
}

void int8_pack(const int8_t* b, int64_t n, int64_t k, int64_t ldb, Int8Packed* out) {
    out->n = n;
    out->k = k;
    out->kp = (k + 3) / 4 * 4;
    out->np = (n + 15) / 16 * 16;
    out->data.assign(static_cast<size_t>(out->np * out->kp), 0);
    out->comp.assign(static_cast<size_t>(out->np), 0);
    const int64_t kp = out->kp;
    for (int64_t j = 0; j < n; ++j) {
        const int8_t* row = b + j * ldb;
        int8_t* panel = out->data.data() + (j / 16) * 16 * kp;
        int64_t lane = j % 16;
        int32_t sum = 0;
        int64_t kk = 0;
        for (; kk + 4 <= k; kk += 4) {
            std::memcpy(panel + (kk / 4) * 64 + lane * 4, row + kk, 4);
            sum += int32_t(row[kk]) + row[kk + 1] + row[kk + 2] + row[kk + 3];
        }
        for (; kk < k; ++kk) {
            panel[(kk / 4) * 64 + lane * 4 + (kk % 4)] = row[kk];
            sum += row[kk];
        }
        out->comp[j] = 128 * sum;
    }
}

void int8_gemm_run(const Int8GemmParams& p) { run(kernel_args(p), p.j0, last_column(p)); }

void int8_gemm_run_mt(const Int8GemmParams& p) { run_mt(kernel_args(p), p.j0, last_column(p)); }

void int8_gemm_packed_f32(const void* a, bool a_u8, int64_t m, int64_t lda, const Int8Packed& b,
                          int64_t j0, int64_t j1, const float* a_scale, const float* b_scale,
                          const float* bias, float* c, int64_t ldc, const float* xo, int64_t nout,
                          const float* wo) {
    Int8GemmParams p;
    static_cast<Int8GemmOperands&>(p) = {a, a_u8, m, lda, nullptr, c, ldc, a_scale, b_scale, bias, xo, wo, nout};
    p.b = &b;
    p.j0 = j0;
    p.j1 = j1;
    int8_gemm_run(p);
}

}  // namespace embedrt
