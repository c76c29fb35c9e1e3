// The native forward pass of transformer text encoders described by an EncoderSpec (BERT:
// absolute position embeddings and token types; MPNet: offset positions and a relative-position
// score bias; both post-LayerNorm blocks with erf GELU; NomicBert: rotary positions on q and k,
// SwiGLU, bias-free linears), followed by pooling.
//
// Sequences are never padded: a batch is one [total_tokens, hidden] activation matrix with the
// sequences back to back; attention runs per sequence and head. Every linear layer is either
// int8 (weights symmetric per output channel, packed once; activations quantized per token on
// the fly, symmetric, one scale per row) or fp32. Bias, GELU, residual, LayerNorm and the
// quantization of the next layer's input are fused into one pass over each output row block.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "encoder/spec.h"
#include "kernels/int8_gemm.h"

namespace embedrt {
namespace encoder {

enum class Pooling { mean, cls, max, mean_sqrt_len, lasttoken, weightedmean };

// Returns false for an unknown name.
bool parse_pooling(const std::string& name, Pooling* out);

// y = W x + b for W [n, k].
struct Linear {
    int64_t n = 0, k = 0;
    bool int8 = false;
    std::vector<float> wf;         // fp32: packed panels (enc_pack_f32)
    Int8Packed wq;                 // int8: packed weights
    std::vector<float> scale;      // int8: per-output-channel weight scale [n]
    std::vector<float> bias;       // [n] (may be empty)
    // int8: outlier input channels, kept in fp32: they are zeroed before quantization and added
    // back as y += x[idx[o]] * out_w[o, :] (out_w: [nout, n]).
    std::vector<int64_t> out_idx;
    std::vector<float> out_w;
    // The multiplier the quantizer applies: 1 with 0 at the outlier channels, so they drop
    // out of the int8 input and its scale; empty when there are no outliers.
    std::vector<float> q_mul;
};

struct EncoderLayer {
    Linear qkv;       // [3 * hidden, hidden]: query (pre-scaled by 1/sqrt(head_dim)), key, value
    Linear attn_out;  // [hidden, hidden]
    Linear up;        // [intermediate, hidden]; SwiGLU: [2 * intermediate, hidden], value | gate
    Linear down;      // [hidden, intermediate]
    std::vector<float> ln1_g, ln1_b, ln2_g, ln2_b;
};

class EncoderModel {
public:
    explicit EncoderModel(const EncoderSpec& cfg);

    const EncoderSpec& config() const { return cfg_; }

    // Embedding tables are referenced, not copied: the caller keeps them alive. token_type:
    // null when the spec has no token types; position: null for rotary positions.
    void set_embeddings(const float* word, const float* position, const float* token_type,
                        const float* ln_g, const float* ln_b);
    // The relative attention bias (AttentionBias::relative): [heads, 2 * max_tokens() - 1],
    // entry (h, r + max_tokens() - 1) the bias of head h for key j and query i with j - i = r.
    // Copied.
    void set_relative_bias(const float* table);
    // slot: 0 qkv, 1 attn_out, 2 up, 3 down. w: [n, k] row-major (PyTorch layout).
    void set_linear_f32(int64_t layer, int slot, const float* w, const float* bias);
    void set_linear_int8(int64_t layer, int slot, const int8_t* w, const float* scale,
                         const float* bias, const int64_t* outlier_idx = nullptr, int64_t n_outliers = 0,
                         const float* outlier_w = nullptr);
    // Pre-LayerNorm (NormPlacement::pre): ln1 before the attention (null: none, the layer
    // reads its input as it is), ln2 before the FFN; post: after the attention's and the FFN's
    // residual sums.
    void set_layernorms(int64_t layer, const float* ln1_g, const float* ln1_b, const float* ln2_g,
                        const float* ln2_b);
    // Pre-LayerNorm: the LayerNorm after the last layer. Copied.
    void set_final_norm(const float* g, const float* b);

    // Checks that every part was set; throws std::invalid_argument otherwise.
    void finalize();

    // ids: the sequences back to back; offsets[nseq + 1] (offsets[0] = 0, increasing);
    // type_ids: like ids or null (all 0; must be null when the spec has no token types). Runs the first num_layers layers and pools each
    // sequence with every mode in `poolings`, concatenated: out[s, p * hidden + j]. Throws std::invalid_argument on bad input (ids outside the
    // vocabulary, empty or too long sequences).
    //
    // absmax (optional, fp32 models only): per-channel max |input| of every linear layer over
    // the batch is folded into it (max with what it holds), per layer [qkv hidden | attn_out
    // hidden | up hidden | down intermediate]: the statistics int8 calibration needs.
    void embed(const int64_t* ids, const int64_t* type_ids, const int64_t* offsets, int64_t nseq,
               const std::vector<Pooling>& poolings, int64_t num_layers, float* out,
               float* absmax = nullptr) const;

    // Floats per layer in embed()'s absmax.
    int64_t absmax_per_layer() const { return 3 * cfg_.hidden + cfg_.intermediate; }

    // Token budget of one forward chunk per thread in use: it bounds the activation memory and
    // keeps the activations of a chunk in cache between the passes (about 5 MB at 512 tokens
    // of MiniLM; at 2048 on one thread they spill out of cache and the whole pass runs about
    // 12% slower), while each thread still gets enough rows to amortize the synchronisation.
    int64_t max_chunk_tokens = 512;

private:
    Linear& linear(int64_t layer, int slot);
    void forward_chunk(const int64_t* ids, const int64_t* type_ids, const int64_t* offsets,
                       int64_t nseq, const std::vector<Pooling>& poolings, int64_t num_layers, float* out,
                       struct Workspace& ws, float* absmax) const;

    EncoderSpec cfg_;
    const float *word_ = nullptr, *pos_ = nullptr, *type_ = nullptr;
    std::vector<float> emb_g_, emb_b_;
    std::vector<float> rel_bias_;  // [heads, 2 * max_tokens() - 1]
    std::vector<float> rot_cos_, rot_sin_;  // rotary positions: [max_position, head_dim / 2]
    std::vector<float> rot_cos_local_, rot_sin_local_;  // the local layers' (rotary_base_local)
    std::vector<float> win_bias_;  // local layers: score bias by distance, [2 * max_tokens() - 1]
    std::vector<float> final_g_, final_b_;  // pre-LayerNorm: the final LayerNorm
    std::vector<EncoderLayer> layers_;
    bool finalized_ = false;
};

}  // namespace encoder
}  // namespace embedrt
