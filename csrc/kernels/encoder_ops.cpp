#include "kernels/encoder_ops.h"

#include <cstring>

#include "dispatch.h"

namespace embedrt {

int64_t enc_packed_f32_size(int64_t n, int64_t k) { return (n + 15) / 16 * 16 * k; }

void enc_pack_f32(const float* b, int64_t n, int64_t k, int64_t ldb, float* out) {
    int64_t np = (n + 15) / 16 * 16;
    std::memset(out, 0, sizeof(float) * static_cast<size_t>(np * k));
    for (int64_t j = 0; j < n; ++j) {
        float* panel = out + (j / 16) * 16 * k;
        int64_t lane = j % 16;
        const float* row = b + j * ldb;
        for (int64_t kk = 0; kk < k; ++kk) panel[kk * 16 + lane] = row[kk];
    }
}

int64_t enc_attention_scratch(int64_t L, int64_t d) { return (d + 8) * ((L + 15) / 16 * 16) + 64; }

#if defined(EMBEDRT_HAVE_X86)
#define ENC_DISPATCH(name, ...)                                 \
    switch (active_isa()) {                                     \
        case Isa::avx512_skx: /* AVX-512 F/BW/DQ/VL only */    \
        case Isa::avx512_vnni:                                  \
        case Isa::avx512: return name##_avx512(__VA_ARGS__);    \
        case Isa::avx2: return name##_avx2(__VA_ARGS__);        \
        default: return name##_scalar(__VA_ARGS__);             \
    }
#elif defined(EMBEDRT_HAVE_NEON)
#define ENC_DISPATCH(name, ...)                                 \
    switch (active_isa()) {                                     \
        case Isa::neon: return name##_neon(__VA_ARGS__);        \
        default: return name##_scalar(__VA_ARGS__);             \
    }
#else
#define ENC_DISPATCH(name, ...) return name##_scalar(__VA_ARGS__);
#endif

void enc_sgemm_packed(const float* a, int64_t m, int64_t lda, const float* bp, int64_t n, int64_t k,
                      int64_t p0, int64_t p1, float* c, int64_t ldc) {
    if (m <= 0 || p1 <= p0) return;
    ENC_DISPATCH(enc_sgemm_packed, a, m, lda, bp, n, k, p0, p1, c, ldc)
}

void enc_bias_row(const float* y, int64_t n, const float* bias, float* out) {
    ENC_DISPATCH(enc_bias_row, y, n, bias, out)
}

void enc_add_layernorm_row(const float* y, const float* res, int64_t n, const float* g,
                           const float* b, float eps, float* out) {
    ENC_DISPATCH(enc_add_layernorm_row, y, res, n, g, b, eps, out)
}

void enc_gelu_row(float* x, int64_t n) { ENC_DISPATCH(enc_gelu_row, x, n) }

float enc_add_layernorm_quantize_row(const float* y, const float* res, int64_t n, const float* g,
                                     const float* b, float eps, float* out, const float* mul,
                                     uint8_t* q) {
    ENC_DISPATCH(enc_add_layernorm_quantize_row, y, res, n, g, b, eps, out, mul, q)
}

float enc_gelu_quantize_row(float* x, int64_t n, const float* mul, uint8_t* q) {
    ENC_DISPATCH(enc_gelu_quantize_row, x, n, mul, q)
}

float enc_quantize_row(const float* x, int64_t n, const float* shift, const float* mul, uint8_t* q,
                       float* tmp) {
    ENC_DISPATCH(enc_quantize_row, x, n, shift, mul, q, tmp)
}

void enc_attention_head(const float* q, const float* k, const float* v, int64_t ld, int64_t L,
                        int64_t d, float* out, int64_t ldo, float* scratch) {
    if (L <= 0) return;
    ENC_DISPATCH(enc_attention_head, q, k, v, ld, L, d, nullptr, 0, out, ldo, scratch)
}

void enc_attention_head_bias(const float* q, const float* k, const float* v, int64_t ld, int64_t L,
                             int64_t d, const float* bias, int64_t ldb, float* out, int64_t ldo,
                             float* scratch) {
    if (L <= 0) return;
    ENC_DISPATCH(enc_attention_head, q, k, v, ld, L, d, bias, ldb, out, ldo, scratch)
}

void enc_rotary_rows(float* x, int64_t nvec, int64_t d, const float* cos, const float* sin) {
    if (nvec <= 0 || d <= 0) return;
    ENC_DISPATCH(enc_rotary_rows, x, nvec, d, cos, sin)
}

void enc_swiglu_row(const float* up, const float* gate, int64_t n, float* out) {
    ENC_DISPATCH(enc_swiglu_row, up, gate, n, out)
}

float enc_swiglu_quantize_row(const float* up, const float* gate, int64_t n, float* out,
                              const float* mul, uint8_t* q) {
    ENC_DISPATCH(enc_swiglu_quantize_row, up, gate, n, out, mul, q)
}

void enc_geglu_row(const float* x, const float* gate, int64_t n, float* out) {
    ENC_DISPATCH(enc_geglu_row, x, gate, n, out)
}

float enc_geglu_quantize_row(const float* x, const float* gate, int64_t n, float* out,
                             const float* mul, uint8_t* q) {
    ENC_DISPATCH(enc_geglu_quantize_row, x, gate, n, out, mul, q)
}

}  // namespace embedrt
