// Float building blocks of the native encoder forward pass: a packed fp32 matrix product,
// a bias row, LayerNorm, GELU (erf form),
// per-row symmetric int8 quantization and one attention head (with an optional additive
// score bias).
//
// Results agree across ISA paths to float rounding (they are not bit-exact: the vector paths
// contract multiply-adds and reorder sums).
#pragma once

#include <cstdint>

namespace embedrt {

// ---- fp32 matrix product C = A . B^T with B packed once --------------------------------
// Packed B: panels of 16 rows of B (outputs), each panel [k][16] floats, zero padded.
int64_t enc_packed_f32_size(int64_t n, int64_t k);  // floats
void enc_pack_f32(const float* b, int64_t n, int64_t k, int64_t ldb, float* out);
// C[i, j] for i < m, 16 * p0 <= j < min(n, 16 * p1). Overwrites C.
void enc_sgemm_packed(const float* a, int64_t m, int64_t lda, const float* bp, int64_t n, int64_t k,
                      int64_t p0, int64_t p1, float* c, int64_t ldc);

// ---- row operations ----------------------------------------------------------------------
// out[j] = y[j] + bias[j] (bias may be null); out may equal y.
void enc_bias_row(const float* y, int64_t n, const float* bias, float* out);
// v = y + res (res may be null); out = (v - mean) / sqrt(var + eps) * g + b. out may equal y.
void enc_add_layernorm_row(const float* y, const float* res, int64_t n, const float* g,
                           const float* b, float eps, float* out);
// x = x * (1 + erf(x / sqrt 2)) / 2, in place.
void enc_gelu_row(float* x, int64_t n);
// enc_add_layernorm_row, then the quantization of out * mul (mul may be null) as
// enc_quantize_row with no shift, the row's maximum found in the LayerNorm pass.
float enc_add_layernorm_quantize_row(const float* y, const float* res, int64_t n, const float* g,
                                     const float* b, float eps, float* out, const float* mul,
                                     uint8_t* q);
// GELU in place, then the quantization of x * mul (mul may be null) as enc_quantize_row
// with no shift: the same values, with the row's maximum found in the GELU pass.
float enc_gelu_quantize_row(float* x, int64_t n, const float* mul, uint8_t* q);
// t = (x - shift) * mul (shift, mul may be null); q = round(t / s) + 128 (uint8 codes of the
// int8 values, as the int8 GEMM's a_u8 form takes them) with s = max|t| / 127.
// Returns s (0 for an all-zero row). tmp: n floats of scratch.
float enc_quantize_row(const float* x, int64_t n, const float* shift, const float* mul, uint8_t* q,
                       float* tmp);
// One attention head over one sequence of L tokens: out[i] = softmax(q_i . K^T) V, with the
// 1/sqrt(d) scale already folded into q. Token t of q, k, v starts at q + t * ld (d floats);
// out + t * ldo. scratch: enc_attention_scratch(L, d) floats.
int64_t enc_attention_scratch(int64_t L, int64_t d);
void enc_attention_head(const float* q, const float* k, const float* v, int64_t ld, int64_t L,
                        int64_t d, float* out, int64_t ldo, float* scratch);
// The same with an additive bias on the scores before the softmax: score[i][j] +=
// bias[i * ldb + j] (ldb may be negative or 0: a bias that depends only on j - i is one
// vector read with ldb = -1, row i starting at bias + i * ldb). bias may be null.
void enc_attention_head_bias(const float* q, const float* k, const float* v, int64_t ld, int64_t L,
                             int64_t d, const float* bias, int64_t ldb, float* out, int64_t ldo,
                             float* scratch);

// ---- rotary positions and gated FFNs (NomicBert's SwiGLU, ModernBERT's GeGLU) ------------------
// Rotates nvec head vectors of d floats each (x + v * d), in place, in the non-interleaved
// "rotate_half" layout: for i < d / 2, (a, b) = (x[i], x[i + d/2]) becomes
// (a cos[i] - b sin[i], b cos[i] + a sin[i]). d must be even.
void enc_rotary_rows(float* x, int64_t nvec, int64_t d, const float* cos, const float* sin);
// out[j] = up[j] * silu(gate[j]), silu(g) = g / (1 + exp(-g)); out may equal up or gate.
void enc_swiglu_row(const float* up, const float* gate, int64_t n, float* out);
// enc_swiglu_row, then the quantization of out * mul (mul may be null) as enc_quantize_row
// with no shift, the row's maximum found in the same pass. Returns the scale.
float enc_swiglu_quantize_row(const float* up, const float* gate, int64_t n, float* out,
                              const float* mul, uint8_t* q);
// out[j] = gelu(x[j]) * gate[j] (erf GELU); out may equal x or gate.
void enc_geglu_row(const float* x, const float* gate, int64_t n, float* out);
// enc_geglu_row, then the quantization of out * mul as enc_swiglu_quantize_row does.
float enc_geglu_quantize_row(const float* x, const float* gate, int64_t n, float* out,
                             const float* mul, uint8_t* q);

// ---- per-ISA entry points -------------------------------------------------------------------
#define EMBEDRT_ENC_OPS_DECL(isa)                                                                 \
    void enc_sgemm_packed_##isa(const float* a, int64_t m, int64_t lda, const float* bp,          \
                                int64_t n, int64_t k, int64_t p0, int64_t p1, float* c,           \
                                int64_t ldc);                                                     \
    void enc_bias_row_##isa(const float* y, int64_t n, const float* bias, float* out);            \
    void enc_add_layernorm_row_##isa(const float* y, const float* res, int64_t n, const float* g, \
                                     const float* b, float eps, float* out);                      \
    void enc_gelu_row_##isa(float* x, int64_t n);                                                 \
    float enc_add_layernorm_quantize_row_##isa(const float* y, const float* res, int64_t n,       \
                                               const float* g, const float* b, float eps,         \
                                               float* out, const float* mul, uint8_t* q);         \
    float enc_gelu_quantize_row_##isa(float* x, int64_t n, const float* mul, uint8_t* q);         \
    float enc_quantize_row_##isa(const float* x, int64_t n, const float* shift, const float* mul, \
                                 uint8_t* q, float* tmp);                                          \
    void enc_attention_head_##isa(const float* q, const float* k, const float* v, int64_t ld,     \
                                  int64_t L, int64_t d, const float* bias, int64_t ldb,           \
                                  float* out, int64_t ldo, float* scratch);                       \
    void enc_rotary_rows_##isa(float* x, int64_t nvec, int64_t d, const float* cos,              \
                               const float* sin);                                                 \
    void enc_swiglu_row_##isa(const float* up, const float* gate, int64_t n, float* out);         \
    float enc_swiglu_quantize_row_##isa(const float* up, const float* gate, int64_t n, float* out, \
                                        const float* mul, uint8_t* q);                            \
    void enc_geglu_row_##isa(const float* x, const float* gate, int64_t n, float* out);           \
    float enc_geglu_quantize_row_##isa(const float* x, const float* gate, int64_t n, float* out,  \
                                       const float* mul, uint8_t* q);

EMBEDRT_ENC_OPS_DECL(scalar)
EMBEDRT_ENC_OPS_DECL(avx2)
EMBEDRT_ENC_OPS_DECL(avx512)
#if defined(EMBEDRT_HAVE_NEON)
EMBEDRT_ENC_OPS_DECL(neon)
#endif
#undef EMBEDRT_ENC_OPS_DECL

}  // namespace embedrt
