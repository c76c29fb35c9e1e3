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
//              sin, x_{i + d/2} cos + x_i sin); cos/sin tables in fp32 for max_tokens, made once),
//              or none (JinaBert: no table and no rotation, the order comes from the attention
//              bias alone; max_position is then the longest sequence)
//   token types a table of type_vocab rows (BERT), or none (type_vocab = 0)
//   attention  an additive bias on the scores: none, or per head a function of the relative
//              distance j - i (MPNet's relative-position buckets, JinaBert's ALiBi -slope_h * |j - i|,
//              computed once and shared by every layer), given as a table [heads, 2 * max_tokens - 1]
//   norm       post-LayerNorm (residual, then LayerNorm), with bias; or pre-LayerNorm (pre,
//              ModernBERT): x += attn(LN1(x)) (a layer without LN1 reads x itself), x +=
//              ffn(LN2(x)), and a final LayerNorm after the last layer (a bias-free LayerNorm is
//              one with a zero bias)
//   window     every layer attends to the whole sequence, or (local_window > 0) only the layers
//              l with l % global_every == 0 do, the others to keys with |j - i| <= local_window,
//              their rotary angles from rotary_base_local (ModernBERT's global / local layers)
//   FFN        up projection, erf GELU, down projection (gelu); or SwiGLU (swiglu, NomicBert):
//              one fused up product [2 * intermediate, hidden] whose first half is the value
//              and second half the gate, value * silu(gate), then the down projection; or
//              GeGLU (geglu, ModernBERT): the same product, gelu(first half) * second half
//   linears    each with a bias, or without one (NomicBert's are all bias-free)
#pragma once

#include <cstdint>

namespace embedrt {
namespace encoder {

enum class PositionScheme { absolute, offset, rotary, none };
enum class AttentionBias { none, relative };
enum class FfnKind { gelu, swiglu, geglu };
enum class NormPlacement { post, pre };

struct EncoderSpec {
    int64_t vocab = 0, hidden = 0, heads = 0, intermediate = 0, layers = 0;
    int64_t max_position = 0;  // rows of the position table (rotary, none: the longest sequence)
    int64_t type_vocab = 0;    // rows of the token-type table; 0: the family has none
    float eps = 1e-12f;
    PositionScheme position = PositionScheme::absolute;
    int64_t padding_idx = 0;   // offset positions: the padding token id and the rows skipped
    AttentionBias attention_bias = AttentionBias::none;
    float rotary_base = 10000.0f;  // rotary positions: the base of the angles
    FfnKind ffn = FfnKind::gelu;
    NormPlacement norm = NormPlacement::post;
    int64_t local_window = 0;       // > 0: the local layers' half window (tokens each side)
    int64_t global_every = 1;       // with local_window: layer l is global when l % global_every == 0
    float rotary_base_local = 10000.0f;

    // Rows of the up projection: the two halves of a gated FFN, or the GELU input.
    int64_t up_rows() const { return ffn == FfnKind::gelu ? intermediate : 2 * intermediate; }
    bool is_local(int64_t layer) const { return local_window > 0 && layer % global_every != 0; }

    // Whether the embeddings add a row of a position table (absolute, offset).
    bool has_position_table() const {
        return position == PositionScheme::absolute || position == PositionScheme::offset;
    }

    // The longest sequence the positions allow.
    int64_t max_tokens() const {
        return position == PositionScheme::offset ? max_position - padding_idx - 1 : max_position;
    }
};

}  // namespace encoder
}  // namespace embedrt
