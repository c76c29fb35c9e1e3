// EncoderSpec: the description of a transformer text encoder that the native engine runs, along
// the axes in which the families differ. One recipe (model.cpp) reads it; the bindings build it
// from what the Python loader of the family (python/embedrt/encoder/arch/) says.
//
// Today's axes and their values:
//   positions  absolute (BERT: row t of the table for token t) or offset (MPNet, RoBERTa: the
//              rows start past the padding index, position = padding_idx + the number of
//              non-padding tokens up to and including t; a padding token takes padding_idx),
//              or rotary (NomicBert: no table; after the QKV product every head of q and k is
//              rotated by the angles t * base^(-2i / head_dim), i < head_dim / 2, in the
//              non-interleaved "rotate_half" layout: (x_i, x_{i + d/2}) -> (x_i cos - x_{i + d/2}
//              sin, x_{i + d/2} cos + x_i sin); cos/sin tables in fp32 for max_tokens, made once)
//   token types a table of type_vocab rows (BERT), or none (type_vocab = 0)
//   attention  an additive bias on the scores: none, or per head a function of the relative
//              distance j - i (MPNet's relative-position buckets, computed once and shared by
//              every layer), given as a table [heads, 2 * max_tokens - 1]
//   norm       post-LayerNorm (residual, then LayerNorm), with bias
//   FFN        up projection, erf GELU, down projection (gelu); or SwiGLU (swiglu, NomicBert):
//              one fused up product [2 * intermediate, hidden] whose first half is the value
//              and second half the gate, value * silu(gate), then the down projection
//   linears    each with a bias, or without one (NomicBert's are all bias-free)
#pragma once

#include <cstdint>

namespace embedrt {
namespace encoder {

enum class PositionScheme { absolute, offset, rotary };
enum class AttentionBias { none, relative };
enum class FfnKind { gelu, swiglu };

struct EncoderSpec {
    int64_t vocab = 0, hidden = 0, heads = 0, intermediate = 0, layers = 0;
    int64_t max_position = 0;  // rows of the position table (rotary: the longest sequence)
    int64_t type_vocab = 0;    // rows of the token-type table; 0: the family has none
    float eps = 1e-12f;
    PositionScheme position = PositionScheme::absolute;
    int64_t padding_idx = 0;   // offset positions: the padding token id and the rows skipped
    AttentionBias attention_bias = AttentionBias::none;
    float rotary_base = 10000.0f;  // rotary positions: the base of the angles
    FfnKind ffn = FfnKind::gelu;

    // Rows of the up projection: the value and gate halves of SwiGLU, or the GELU input.
    int64_t up_rows() const { return ffn == FfnKind::swiglu ? 2 * intermediate : intermediate; }

    // The longest sequence the positions allow.
    int64_t max_tokens() const {
        return position == PositionScheme::offset ? max_position - padding_idx - 1 : max_position;
    }
};

}  // namespace encoder
}  // namespace embedrt
