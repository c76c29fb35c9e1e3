// Exact int8 matrix product C[m, n] = A[m, k] . B[n, k]^T in int32.
//
// B (weights, stored documents) is packed once into an Int8Packed and reused for many A's.
// Results are bit-exact and identical on every ISA path. The packed layout is the same on
// every path, so a matrix packed under one ISA level can be used under another.
//
// Packed layout of B: column panels of 16 rows of B (= 16 columns of C). Panel p holds rows
// 16p .. 16p+15 as [kp / 4][16][4] int8: for each group of 4 consecutive k, the 4 bytes of
// each of the 16 rows, so one 64-byte load feeds one vpdpbusd (16 int32 lanes, 4 products
// each) and one 16-byte load feeds one NEON sdot (4 columns). Rows >= n and k >= k are zero.
//
// Paths (by level: avx512 and avx512-vnni run the VNNI kernel, avx512-skx the AVX512-BW one):
//   avx512vnni  vpdpbusd (u8 x s8): A is fed as a_u8 = a + 128 (a xor 0x80) and the kernel
//           subtracts comp[j] = 128 * sum_k B[j, k] (folded into the packing). Register
//           block 8 rows x 48 columns (24 zmm accumulators); A is packed per call (an 8 x 8
//           dword transpose) into 8-row micro panels [kp / 4][8][4], B stays in the packed
//           panels. Loops: row blocks of ~512 KB of packed A (int8_gemm.cpp), then blocks of
//           3 B panels, then (int32 output) k blocks of 512 so the B block stays in L1, then
//           the row micro panels. Later k blocks add into C (wrapping int32 adds, exact).
//   avx2    sign extension to int16 + vpmaddwd (never the saturating vpmaddubsw): A packed
//           per call into int16 panels of 3 rows, each B panel widened to int16 per k block
//           of 512 in L1 scratch, register block 3 x 16.
//   avx512  (avx512-skx) the same on zmm registers, register block 8 x 16.
//   neon    sdot (s8 x s8, no compensation), in int8_gemm_neon.cpp (aarch64 builds only).
//   scalar  plain loops.
// All compute the exact integer dot product, so every path returns the same int32 values.
#pragma once

#include <cstdint>
#include <vector>

namespace embedrt {

// Largest k for which no int32 accumulator can overflow on any path (including the u8 x s8
// VNNI form, whose partial sums reach 255 * 128 * k before compensation).
constexpr int64_t kInt8MaxK = 65793;  // floor((2^31 - 1) / (255 * 128))

struct Int8Packed {
    int64_t n = 0, k = 0;    // logical shape of B
    int64_t kp = 0;          // k rounded up to a multiple of 4
    int64_t np = 0;          // n rounded up to a multiple of 16
    // Panels of 16 rows of B: [np / 16][kp / 4][16][4] int8, zero padded.
    std::vector<int8_t> data;
    // 128 * sum_k B[j, k] per row j (np entries): the compensation of the u8 x s8 trick.
    std::vector<int32_t> comp;
};

// Packs B[n, k] (row stride ldb). k must be <= kInt8MaxK (checked by callers).
void int8_pack(const int8_t* b, int64_t n, int64_t k, int64_t ldb, Int8Packed* out);

// One product, described once (the shape of MLAS's MlasGemm parameters): A, the packed B,
// the output with its epilogue, and the columns to compute (Int8GemmParams below).
//
//   int32 output (c32):  C[i, j] = dot[i, j], the exact product of A and B.
//   float output (cf):   c[i, j] = (a_scale[i] * b_scale[j]) * float(dot[i, j])            (no bias)
//                        c[i, j] = fma(a_scale[i] * b_scale[j], float(dot[i, j]), bias[j])  (bias)
//     a_scale: m entries, b_scale: n entries (of B), bias: n entries; a null a_scale /
//     b_scale counts as 1. The float operations are the same, in the same order, on every
//     path (an explicit fused multiply-add where a bias is given), so results are identical.
//     Optional fp32 side channels (nout > 0): xo [m, nout] and wo [nout, n] add, after the
//     above, c[i, j] = fma(xo[i, o], wo[o, j], c[i, j]) for o = 0 .. nout-1 in order (inputs
//     that were kept out of the int8 product, e.g. activation outliers).
//
// A is int8, or (a_u8) uint8 codes a_u8 = a + 128 (what an activation quantizer with zero
// point 128 produces): the product is still that of the signed values a = a_u8 - 128, the
// same C as on a (it saves the xor pass on the avx512 path). Exactly one of c32 / cf is set;
// c points at C[0, 0]. k must be <= kInt8MaxK (checked by callers, at packing).
struct Int8GemmOperands {
    const void* a = nullptr;
    bool a_u8 = false;
    int64_t m = 0, lda = 0;
    int32_t* c32 = nullptr;
    float* cf = nullptr;
    int64_t ldc = 0;
    const float* a_scale = nullptr;
    const float* b_scale = nullptr;
    const float* bias = nullptr;
    const float* xo = nullptr;  // [m, nout]
    const float* wo = nullptr;  // [nout, n]
    int64_t nout = 0;
};

// The product a caller asks for: the operands, the packed B and the columns [j0, j1) of C.
struct Int8GemmParams : Int8GemmOperands {
    const Int8Packed* b = nullptr;
    int64_t j0 = 0, j1 = -1;  // j1 < 0: up to b->n
};

// Computes the columns [j0, j1) of C on the calling thread.
void int8_gemm_run(const Int8GemmParams& p);
// The same, the columns split in whole panels across the worker pool.
void int8_gemm_run_mt(const Int8GemmParams& p);

// The float product of int8_gemm_run in one call (the encoder's linear layers).
void int8_gemm_packed_f32(const void* a, bool a_u8, int64_t m, int64_t lda, const Int8Packed& b,
                          int64_t j0, int64_t j1, const float* a_scale, const float* b_scale,
                          const float* bias, float* c, int64_t ldc, const float* xo = nullptr,
                          int64_t nout = 0, const float* wo = nullptr);

// ---- Per-ISA entry points (int8_gemm_<isa>.cpp) ----------------------------------------

// Everything a kernel needs, as raw pointers (ISA files never touch std::vector): the
// operands of Int8GemmParams (float output when c32 is null; the x86 kernels add the side
// channels themselves, the dispatcher after the others) and the packed B's panels.
struct Int8GemmArgs : Int8GemmOperands {
    const int8_t* b = nullptr;      // packed panels
    const int32_t* comp = nullptr;  // np entries
    int64_t n = 0, k = 0, kp = 0;
    // Caller-provided scratch of at least int8_gemm_scratch_bytes(m, kp) bytes, 64-aligned.
    uint8_t* scratch = nullptr;
};

// Scratch bytes the kernels need for a call with m rows (packing of A).
int64_t int8_gemm_scratch_bytes(int64_t m, int64_t kp);

void int8_gemm_scalar(const Int8GemmArgs& args, int64_t j0, int64_t j1);
void int8_gemm_avx2(const Int8GemmArgs& args, int64_t j0, int64_t j1);
void int8_gemm_avx512(const Int8GemmArgs& args, int64_t j0, int64_t j1);      // AVX512-BW, vpmaddwd
void int8_gemm_avx512vnni(const Int8GemmArgs& args, int64_t j0, int64_t j1);  // vpdpbusd
void int8_gemm_neon(const Int8GemmArgs& args, int64_t j0, int64_t j1);

}  // namespace embedrt
