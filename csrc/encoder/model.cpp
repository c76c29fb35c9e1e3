#include "encoder/model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>

#include "kernels/encoder_ops.h"
#include "parallel.h"

namespace embedrt {
namespace encoder {

bool parse_pooling(const std::string& name, Pooling* out) {
    if (name == "mean") *out = Pooling::mean;
    else if (name == "cls") *out = Pooling::cls;
    else if (name == "max") *out = Pooling::max;
    else if (name == "mean_sqrt_len") *out = Pooling::mean_sqrt_len;
    else if (name == "lasttoken") *out = Pooling::lasttoken;
    else if (name == "weightedmean") *out = Pooling::weightedmean;
    else return false;
    return true;
}

EncoderModel::EncoderModel(const EncoderSpec& cfg) : cfg_(cfg) {
    if (cfg.vocab <= 0 || cfg.hidden <= 0 || cfg.heads <= 0 || cfg.intermediate <= 0 ||
        cfg.layers < 0 || cfg.max_position <= 0 || cfg.type_vocab < 0)
        throw std::invalid_argument("encoder config: every size must be positive");
    if (cfg.position == PositionScheme::offset &&
        (cfg.padding_idx < 0 || cfg.padding_idx >= cfg.vocab || cfg.max_tokens() < 1))
        throw std::invalid_argument("encoder config: the padding index " + std::to_string(cfg.padding_idx) +
                                    " leaves no position of the " + std::to_string(cfg.max_position) +
                                    "-row table (or is outside the vocabulary)");
    if (cfg.hidden % cfg.heads != 0)
        throw std::invalid_argument("encoder config: hidden size is not a multiple of the heads");
    if (!(cfg.eps > 0.0f)) throw std::invalid_argument("encoder config: eps must be positive");
    if (cfg.position == PositionScheme::none && cfg.max_position > (int64_t(1) << 24))
        throw std::invalid_argument("encoder config: too many positions");
    if (cfg.position == PositionScheme::rotary) {
        const int64_t d = cfg.hidden / cfg.heads;
        if (d % 2 != 0)
            throw std::invalid_argument("encoder config: rotary positions need an even head size");
        if (!(cfg.rotary_base > 1.0f) || !std::isfinite(cfg.rotary_base))
            throw std::invalid_argument("encoder config: the rotary base must be a finite number > 1");
        if (cfg.max_position > (int64_t(1) << 24))
            throw std::invalid_argument("encoder config: too many rotary positions");
        if (cfg.local_window > 0 && (!(cfg.rotary_base_local > 1.0f) || !std::isfinite(cfg.rotary_base_local)))
            throw std::invalid_argument("encoder config: the local rotary base must be a finite number > 1");
        // As the reference computes them, in fp32: inv_freq_i = 1 / base^(2i / d), the angle
        // fp32(t) * inv_freq_i rounded to fp32, its cosine and sine rounded to fp32.
        auto tables = [&](float base, std::vector<float>& cs, std::vector<float>& sn) {
            const int64_t half = d / 2;
            std::vector<float> inv(static_cast<size_t>(half));
            for (int64_t i = 0; i < half; ++i)
                inv[static_cast<size_t>(i)] =
                    1.0f / std::pow(base, static_cast<float>(2 * i) / static_cast<float>(d));
            cs.resize(static_cast<size_t>(cfg.max_position * half));
            sn.resize(cs.size());
            for (int64_t t = 0; t < cfg.max_position; ++t)
                for (int64_t i = 0; i < half; ++i) {
                    const float ang = static_cast<float>(t) * inv[static_cast<size_t>(i)];
                    cs[static_cast<size_t>(t * half + i)] = static_cast<float>(std::cos(static_cast<double>(ang)));
                    sn[static_cast<size_t>(t * half + i)] = static_cast<float>(std::sin(static_cast<double>(ang)));
                }
        };
        tables(cfg.rotary_base, rot_cos_, rot_sin_);
        if (cfg.local_window > 0) tables(cfg.rotary_base_local, rot_cos_local_, rot_sin_local_);
    }
    if (cfg.local_window < 0 || cfg.global_every < 1)
        throw std::invalid_argument("encoder config: the local window must be >= 0 and global_every >= 1");
    if (cfg.local_window > 0) {
        if (cfg.attention_bias != AttentionBias::none)
            throw std::invalid_argument("encoder config: local attention windows need attention_bias none");
        // the score bias of a local layer by distance j - i: 0 inside the window, a large
        // negative number outside (its softmax weight is 0 to float precision)
        const int64_t M = cfg.max_tokens();
        win_bias_.assign(static_cast<size_t>(2 * M - 1), 0.0f);
        for (int64_t r = -(M - 1); r <= M - 1; ++r)
            if (r > cfg.local_window || -r > cfg.local_window) win_bias_[static_cast<size_t>(r + M - 1)] = -1e30f;
    }
    layers_.resize(static_cast<size_t>(cfg.layers));
    for (auto& l : layers_) {
        l.qkv.n = 3 * cfg.hidden;
        l.qkv.k = cfg.hidden;
        l.attn_out.n = cfg.hidden;
        l.attn_out.k = cfg.hidden;
        l.up.n = cfg.up_rows();
        l.up.k = cfg.hidden;
        l.down.n = cfg.hidden;
        l.down.k = cfg.intermediate;
    }
}

Linear& EncoderModel::linear(int64_t layer, int slot) {
    if (layer < 0 || layer >= cfg_.layers) throw std::invalid_argument("layer index out of range");
    EncoderLayer& l = layers_[static_cast<size_t>(layer)];
    switch (slot) {
        case 0: return l.qkv;
        case 1: return l.attn_out;
        case 2: return l.up;
        case 3: return l.down;
        default: throw std::invalid_argument("linear slot out of range");
    }
}

void EncoderModel::set_embeddings(const float* word, const float* position, const float* token_type,
                               const float* ln_g, const float* ln_b) {
    word_ = word;
    pos_ = position;
    type_ = token_type;
    emb_g_.assign(ln_g, ln_g + cfg_.hidden);
    emb_b_.assign(ln_b, ln_b + cfg_.hidden);
}

void EncoderModel::set_relative_bias(const float* table) {
    if (cfg_.attention_bias != AttentionBias::relative)
        throw std::invalid_argument("encoder: the spec has no relative attention bias");
    rel_bias_.assign(table, table + cfg_.heads * (2 * cfg_.max_tokens() - 1));
}

void EncoderModel::set_linear_f32(int64_t layer, int slot, const float* w, const float* bias) {
    Linear& L = linear(layer, slot);
    L.int8 = false;
    L.wf.assign(static_cast<size_t>(enc_packed_f32_size(L.n, L.k)), 0.0f);
    enc_pack_f32(w, L.n, L.k, L.k, L.wf.data());
    L.wq = Int8Packed();
    L.scale.clear();
    L.out_idx.clear();
    L.out_w.clear();
    L.q_mul.clear();
    if (bias) L.bias.assign(bias, bias + L.n);
    else L.bias.clear();
}

void EncoderModel::set_linear_int8(int64_t layer, int slot, const int8_t* w, const float* scale,
                                const float* bias, const int64_t* outlier_idx, int64_t n_outliers,
                                const float* outlier_w) {
    Linear& L = linear(layer, slot);
    if (n_outliers < 0 || n_outliers > L.k) throw std::invalid_argument("int8 linear: bad outlier count");
    for (int64_t o = 0; o < n_outliers; ++o)
        if (outlier_idx[o] < 0 || outlier_idx[o] >= L.k)
            throw std::invalid_argument("int8 linear: outlier channel out of range");
    L.out_idx.assign(outlier_idx, outlier_idx + n_outliers);
    L.out_w.assign(outlier_w, outlier_w + n_outliers * L.n);
    if (L.k > kInt8MaxK) throw std::invalid_argument("int8 linear: input width exceeds the int8 limit");
    L.int8 = true;
    L.wf.clear();
    int8_pack(w, L.n, L.k, L.k, &L.wq);
    L.scale.assign(scale, scale + L.n);
    if (bias) L.bias.assign(bias, bias + L.n);
    else L.bias.clear();
    L.q_mul.clear();
    if (n_outliers > 0) {
        L.q_mul.assign(static_cast<size_t>(L.k), 1.0f);
        for (int64_t o = 0; o < n_outliers; ++o) L.q_mul[static_cast<size_t>(outlier_idx[o])] = 0.0f;
    }
}

void EncoderModel::set_layernorms(int64_t layer, const float* ln1_g, const float* ln1_b,
                               const float* ln2_g, const float* ln2_b) {
    if (layer < 0 || layer >= cfg_.layers) throw std::invalid_argument("layer index out of range");
    EncoderLayer& l = layers_[static_cast<size_t>(layer)];
    int64_t h = cfg_.hidden;
    if (!ln1_g && cfg_.norm != NormPlacement::pre)
        throw std::invalid_argument("encoder: only a pre-LayerNorm layer may have no first LayerNorm");
    if (ln1_g) {
        l.ln1_g.assign(ln1_g, ln1_g + h);
        l.ln1_b.assign(ln1_b, ln1_b + h);
    } else {
        l.ln1_g.clear();
        l.ln1_b.clear();
    }
    l.ln2_g.assign(ln2_g, ln2_g + h);
    l.ln2_b.assign(ln2_b, ln2_b + h);
}

void EncoderModel::set_final_norm(const float* g, const float* b) {
    if (cfg_.norm != NormPlacement::pre)
        throw std::invalid_argument("encoder: only pre-LayerNorm models have a final LayerNorm");
    final_g_.assign(g, g + cfg_.hidden);
    final_b_.assign(b, b + cfg_.hidden);
}

void EncoderModel::finalize() {
    if (!word_ || (!pos_ && cfg_.has_position_table()) || (cfg_.type_vocab > 0 && !type_) ||
        emb_g_.empty())
        throw std::invalid_argument("encoder: embeddings were not set");
    if (cfg_.attention_bias == AttentionBias::relative && rel_bias_.empty())
        throw std::invalid_argument("encoder: the relative attention bias was not set");
    for (size_t i = 0; i < layers_.size(); ++i) {
        const EncoderLayer& l = layers_[i];
        for (const Linear* L : {&l.qkv, &l.attn_out, &l.up, &l.down})
            if (L->wf.empty() && L->wq.data.empty())
                throw std::invalid_argument("encoder: layer " + std::to_string(i) + " is incomplete");
        if ((l.ln1_g.empty() && cfg_.norm != NormPlacement::pre) || l.ln2_g.empty())
            throw std::invalid_argument("encoder: layer " + std::to_string(i) + " has no LayerNorm");
    }
    if (cfg_.norm == NormPlacement::pre && final_g_.empty())
        throw std::invalid_argument("encoder: the final LayerNorm was not set");
    finalized_ = true;
}

struct Workspace {
    std::vector<float> x, x1, qkv, ctx, hf;
    std::vector<uint8_t> xq, cq, x1q, hq;  // uint8 codes q + 128
    std::vector<float> xs, cs, x1s, hs;
    std::vector<float> xo, co, x1o, ho;  // outlier channel values per row
    std::vector<int64_t> pos;
};

namespace {

// Token rows per block of a linear layer (the unit of work of a thread, and the rows whose
// epilogue runs while their output is in cache); 32 measured faster than 16 or 64.
constexpr int64_t kRowBlock = 32;

template <class T>
T* grow(std::vector<T>& v, int64_t n) {
    if (static_cast<int64_t>(v.size()) < n) v.resize(static_cast<size_t>(n));
    return v.data();
}

// The multiplier the quantizer applies to L's input: zeros at the outlier channels (null
// when there are none).
const float* quant_mul(const Linear& L) { return L.out_idx.empty() ? nullptr : L.q_mul.data(); }

// The outlier channels' values of one input row of L, to xo[0 .. nout).
void take_outliers(const Linear& L, const float* src, float* xo) {
    const int64_t nout = static_cast<int64_t>(L.out_idx.size());
    for (int64_t o = 0; o < nout; ++o) xo[o] = src[L.out_idx[static_cast<size_t>(o)]];
}

// Quantizes one input row of L; the outlier channels' values go to xo[0 .. nout) and drop
// out of the int8 row (their q_mul is 0). tmp: k floats.
float quantize_input(const Linear& L, const float* src, uint8_t* q, float* tmp, float* xo) {
    take_outliers(L, src, xo);
    return enc_quantize_row(src, L.k, nullptr, quant_mul(L), q, tmp);
}

int64_t nout_of(const Linear& L) { return static_cast<int64_t>(L.out_idx.size()); }

// Runs y = W x + b over T rows in row blocks across the pool. Rows go to dst + i * ld_dst
// when dst is given, else to a scratch tile; then post(i, row) runs for each row while it is
// cache-hot.
template <class Post>
void run_linear(const Linear& L, const float* xf, int64_t ldx, const uint8_t* xq, const float* xs,
                const float* xo, int64_t T, float* dst, int64_t ld_dst, Post post) {
    const int64_t nout = nout_of(L);
    const int64_t n = L.n, k = L.k;
    const float* bias = L.bias.empty() ? nullptr : L.bias.data();
    int64_t blocks = (T + kRowBlock - 1) / kRowBlock;
    parallel_for(blocks, 1, [&](int64_t b0, int64_t b1) {
        thread_local std::vector<float> tf;
        for (int64_t b = b0; b < b1; ++b) {
            int64_t r0 = b * kRowBlock;
            int64_t rb = std::min(kRowBlock, T - r0);
            float* c;
            int64_t ldc;
            if (dst) {
                c = dst + r0 * ld_dst;
                ldc = ld_dst;
            } else {
                c = grow(tf, kRowBlock * n);
                ldc = n;
            }
            if (L.int8) {
                int8_gemm_packed_f32(xq + r0 * k, true, rb, k, L.wq, 0, n, xs + r0, L.scale.data(),
                                     bias, c, ldc, nout ? xo + r0 * nout : nullptr, nout,
                                     nout ? L.out_w.data() : nullptr);
            } else {
                enc_sgemm_packed(xf + r0 * ldx, rb, ldx, L.wf.data(), n, k, 0, (n + 15) / 16, c, ldc);
                if (bias)
                    for (int64_t r = 0; r < rb; ++r) enc_bias_row(c + r * ldc, n, bias, c + r * ldc);
            }
            for (int64_t r = 0; r < rb; ++r) post(r0 + r, c + r * ldc);
        }
    });
}

}  // namespace

void EncoderModel::embed(const int64_t* ids, const int64_t* type_ids, const int64_t* offsets,
                      int64_t nseq, const std::vector<Pooling>& poolings, int64_t num_layers,
                      float* out, float* absmax) const {
    if (poolings.empty()) throw std::invalid_argument("no pooling mode given");
    if (absmax)
        for (const EncoderLayer& l : layers_)
            for (const Linear* L : {&l.qkv, &l.attn_out, &l.up, &l.down})
                if (L->int8) throw std::invalid_argument("activation statistics need an fp32 model");
    if (!finalized_) throw std::invalid_argument("encoder: the model is not complete");
    if (num_layers < 0 || num_layers > cfg_.layers)
        throw std::invalid_argument("layers must be between 0 and " + std::to_string(cfg_.layers));
    if (nseq <= 0) return;
    if (offsets[0] != 0) throw std::invalid_argument("offsets must start at 0");
    for (int64_t s = 0; s < nseq; ++s) {
        int64_t len = offsets[s + 1] - offsets[s];
        if (len <= 0)
            throw std::invalid_argument("sequence " + std::to_string(s) + " is empty");
        if (len > cfg_.max_tokens())
            throw std::invalid_argument("sequence " + std::to_string(s) + " has " + std::to_string(len) +
                                        " tokens; the model takes at most " +
                                        std::to_string(cfg_.max_tokens()));
    }
    if (type_ids && cfg_.type_vocab == 0)
        throw std::invalid_argument("this model has no token types; type_ids must be None");
    int64_t total = offsets[nseq];
    for (int64_t t = 0; t < total; ++t) {
        if (ids[t] < 0 || ids[t] >= cfg_.vocab)
            throw std::invalid_argument("token id " + std::to_string(ids[t]) +
                                        " is outside the vocabulary (size " + std::to_string(cfg_.vocab) + ")");
        if (type_ids && (type_ids[t] < 0 || type_ids[t] >= cfg_.type_vocab))
            throw std::invalid_argument("token type id " + std::to_string(type_ids[t]) +
                                        " is outside [0, " + std::to_string(cfg_.type_vocab) + ")");
    }
    Workspace ws;
    std::vector<int64_t> offs;
    const int64_t budget = max_chunk_tokens * std::max(1, get_num_threads());
    int64_t s0 = 0;
    while (s0 < nseq) {
        int64_t s1 = s0 + 1;
        while (s1 < nseq && offsets[s1 + 1] - offsets[s0] <= budget) ++s1;
        offs.resize(static_cast<size_t>(s1 - s0 + 1));
        for (int64_t s = s0; s <= s1; ++s) offs[static_cast<size_t>(s - s0)] = offsets[s] - offsets[s0];
        forward_chunk(ids + offsets[s0], type_ids ? type_ids + offsets[s0] : nullptr, offs.data(),
                      s1 - s0, poolings, num_layers,
                      out + s0 * cfg_.hidden * static_cast<int64_t>(poolings.size()), ws, absmax);
        s0 = s1;
    }
}

void EncoderModel::forward_chunk(const int64_t* ids, const int64_t* type_ids, const int64_t* offsets,
                              int64_t nseq, const std::vector<Pooling>& poolings, int64_t num_layers,
                              float* out, Workspace& ws, float* absmax) const {
    const int64_t h = cfg_.hidden, h3 = 3 * h, I = cfg_.intermediate;
    const int64_t heads = cfg_.heads, d = h / heads;
    const int64_t T = offsets[nseq];
    const float eps = cfg_.eps;

    float* x = grow(ws.x, T * h);
    float* x1 = grow(ws.x1, T * h);
    float* qkv = grow(ws.qkv, T * h3);
    float* ctx = grow(ws.ctx, T * h);
    uint8_t* xq = grow(ws.xq, T * h);
    uint8_t* cq = grow(ws.cq, T * h);
    uint8_t* x1q = grow(ws.x1q, T * h);
    float* xs = grow(ws.xs, T);
    float* cs = grow(ws.cs, T);
    float* x1s = grow(ws.x1s, T);
    float* hs = grow(ws.hs, T);
    uint8_t* hq = nullptr;
    float* hf = nullptr;
    bool any_int8_down = false, any_f32_down = false;
    for (int64_t l = 0; l < num_layers; ++l) {
        if (layers_[static_cast<size_t>(l)].down.int8) any_int8_down = true;
        else any_f32_down = true;
    }
    const bool gated = cfg_.ffn != FfnKind::gelu;
    const bool pre = cfg_.norm == NormPlacement::pre;
    if (any_int8_down) hq = grow(ws.hq, T * I);
    if (any_f32_down) hf = grow(ws.hf, T * I);
    int64_t* pos = grow(ws.pos, T);
    int64_t maxout = 1;
    for (int64_t l = 0; l < num_layers; ++l) {
        const EncoderLayer& Ly = layers_[static_cast<size_t>(l)];
        for (const Linear* L : {&Ly.qkv, &Ly.attn_out, &Ly.up, &Ly.down}) maxout = std::max(maxout, nout_of(*L));
    }
    float* xo = grow(ws.xo, T * maxout);
    float* co = grow(ws.co, T * maxout);
    float* x1o = grow(ws.x1o, T * maxout);
    float* ho = grow(ws.ho, T * maxout);
    if (cfg_.position != PositionScheme::offset) {  // absolute, rotary, none: 0, 1, 2, ...
        for (int64_t s = 0; s < nseq; ++s)
            for (int64_t t = offsets[s]; t < offsets[s + 1]; ++t) pos[t] = t - offsets[s];
    } else {  // past the padding index, counting the non-padding tokens (as HF does)
        const int64_t pad = cfg_.padding_idx;
        for (int64_t s = 0; s < nseq; ++s) {
            int64_t count = 0;
            for (int64_t t = offsets[s]; t < offsets[s + 1]; ++t) {
                if (ids[t] != pad) ++count;
                pos[t] = ids[t] != pad ? pad + count : pad;
            }
        }
    }
    const int64_t rel_width = 2 * cfg_.max_tokens() - 1;
    const float* rel = rel_bias_.empty() ? nullptr : rel_bias_.data();

    // LayerNorm of y + res into dst, and (when L is given) dst quantized as L's input in the
    // same pass.
    auto layernorm_quantize = [&](const float* y, const float* res, const float* g, const float* b,
                                  float* dst, const Linear* L, uint8_t* q, float* qs, float* qo) {
        if (!L) {
            enc_add_layernorm_row(y, res, h, g, b, eps, dst);
            return;
        }
        *qs = enc_add_layernorm_quantize_row(y, res, h, g, b, eps, dst, quant_mul(*L), q);
        take_outliers(*L, dst, qo);
    };

    std::vector<int64_t> by_len(static_cast<size_t>(nseq));
    for (int64_t s = 0; s < nseq; ++s) by_len[static_cast<size_t>(s)] = s;
    std::stable_sort(by_len.begin(), by_len.end(), [&](int64_t a, int64_t b) {
        return offsets[a + 1] - offsets[a] > offsets[b + 1] - offsets[b];
    });

    // Embeddings + LayerNorm (+ the first layer's quantized input).
    const Linear* first = num_layers > 0 ? &layers_[0].qkv : nullptr;
    parallel_for(T, 64, [&](int64_t t0, int64_t t1) {
        for (int64_t t = t0; t < t1; ++t) {
            float* row = x + t * h;
            const float* w = word_ + ids[t] * h;
            if (!pos_) {  // rotary, none: no position rows
                const float* ty = type_ ? type_ + (type_ids ? type_ids[t] : 0) * h : nullptr;
                if (ty)
                    for (int64_t j = 0; j < h; ++j) row[j] = w[j] + ty[j];
                else
                    for (int64_t j = 0; j < h; ++j) row[j] = w[j];
            } else if (type_) {
                const float* p = pos_ + pos[t] * h;
                const float* ty = type_ + (type_ids ? type_ids[t] : 0) * h;
                for (int64_t j = 0; j < h; ++j) row[j] = w[j] + p[j] + ty[j];
            } else {
                const float* p = pos_ + pos[t] * h;
                for (int64_t j = 0; j < h; ++j) row[j] = w[j] + p[j];
            }
            layernorm_quantize(row, nullptr, emb_g_.data(), emb_b_.data(), row,
                               first && first->int8 ? first : nullptr, xq + t * h, xs + t,
                               first ? xo + t * nout_of(*first) : nullptr);
        }
    });

    // Folds max |rows[t, j]| over the T rows into dst[j] (calibration statistics).
    auto record = [&](const float* rows, int64_t ld, int64_t k, float* dst) {
        for (int64_t t = 0; t < T; ++t)
            for (int64_t j = 0; j < k; ++j) dst[j] = std::max(dst[j], std::fabs(rows[t * ld + j]));
    };

    for (int64_t l = 0; l < num_layers; ++l) {
        const EncoderLayer& Ly = layers_[static_cast<size_t>(l)];
        const Linear* next = l + 1 < num_layers ? &layers_[static_cast<size_t>(l + 1)].qkv : nullptr;
        float* stats = absmax ? absmax + l * absmax_per_layer() : nullptr;
        const bool local = cfg_.is_local(l);
        // Pre-LayerNorm: the layer reads LN1(x) (in x1, quantized as its QKV input), or x itself
        // when it has no first LayerNorm (quantized by the step before).
        const bool pre_ln1 = pre && !Ly.ln1_g.empty();
        const float* qin = pre_ln1 ? x1 : x;
        if (pre_ln1) {
            parallel_for(T, 64, [&](int64_t t0, int64_t t1) {
                for (int64_t t = t0; t < t1; ++t)
                    layernorm_quantize(x + t * h, nullptr, Ly.ln1_g.data(), Ly.ln1_b.data(), x1 + t * h,
                                       Ly.qkv.int8 ? &Ly.qkv : nullptr, xq + t * h, xs + t,
                                       xo + t * nout_of(Ly.qkv));
            });
        }
        if (stats) record(qin, h, h, stats);

        // Q, K, V in one product (rotary: q and k rotated by the token's position while the
        // row is in cache).
        if (cfg_.position == PositionScheme::rotary) {
            const float* rc = local ? rot_cos_local_.data() : rot_cos_.data();
            const float* rs = local ? rot_sin_local_.data() : rot_sin_.data();
            run_linear(Ly.qkv, qin, h, xq, xs, xo, T, qkv, h3, [&](int64_t i, float* row) {
                enc_rotary_rows(row, 2 * heads, d, rc + pos[i] * (d / 2), rs + pos[i] * (d / 2));
            });
        } else {
            run_linear(Ly.qkv, qin, h, xq, xs, xo, T, qkv, h3, [&](int64_t, float*) {});
        }
        const float* win = local ? win_bias_.data() + (cfg_.max_tokens() - 1) : nullptr;

        // Attention per (sequence, head), longest sequences first so that the last chunks the
        // threads take are the cheap ones.
        parallel_for(nseq * heads, 1, [&](int64_t a0, int64_t a1) {
            thread_local std::vector<float> scratch;
            for (int64_t a = a0; a < a1; ++a) {
                int64_t s = by_len[static_cast<size_t>(a / heads)], hd = a % heads;
                int64_t off = offsets[s], L = offsets[s + 1] - off;
                float* scr = grow(scratch, enc_attention_scratch(L, d));
                const float* base = qkv + off * h3 + hd * d;
                if (rel) {
                    // score bias of (i, j): rel[hd][j - i + max_tokens - 1]: row i starts at
                    // max_tokens - 1 - i, one step back per row
                    const float* b = rel + hd * rel_width + (cfg_.max_tokens() - 1);
                    enc_attention_head_bias(base, base + h, base + 2 * h, h3, L, d, b, -1,
                                            ctx + off * h + hd * d, h, scr);
                } else if (win) {  // a local layer: the window as a bias by distance, read alike
                    enc_attention_head_bias(base, base + h, base + 2 * h, h3, L, d, win, -1,
                                            ctx + off * h + hd * d, h, scr);
                } else {
                    enc_attention_head(base, base + h, base + 2 * h, h3, L, d, ctx + off * h + hd * d, h,
                                       scr);
                }
            }
        });
        if (stats) record(ctx, h, h, stats + h);
        if (Ly.attn_out.int8) {
            parallel_for(T, 64, [&](int64_t t0, int64_t t1) {
                thread_local std::vector<float> scratch;
                float* scr = grow(scratch, 2 * h);
                for (int64_t t = t0; t < t1; ++t)
                    cs[t] = quantize_input(Ly.attn_out, ctx + t * h, cq + t * h, scr,
                                           co + t * nout_of(Ly.attn_out));
            });
        }

        // Attention output + residual + LayerNorm -> x1 (+ the up projection's input); pre-LN:
        // x += the output, x1 = LN2(x).
        run_linear(Ly.attn_out, ctx, h, cq, cs, co, T, nullptr, 0,
                   [&](int64_t i, float* y) {
                       float* dst = x1 + i * h;
                       if (pre) {
                           enc_bias_row(y, h, x + i * h, x + i * h);
                           layernorm_quantize(x + i * h, nullptr, Ly.ln2_g.data(), Ly.ln2_b.data(), dst,
                                              Ly.up.int8 ? &Ly.up : nullptr, x1q + i * h, x1s + i,
                                              x1o + i * nout_of(Ly.up));
                           return;
                       }
                       layernorm_quantize(y, x + i * h, Ly.ln1_g.data(), Ly.ln1_b.data(), dst,
                                          Ly.up.int8 ? &Ly.up : nullptr, x1q + i * h, x1s + i,
                                          x1o + i * nout_of(Ly.up));
                   });

        if (stats) record(x1, h, h, stats + 2 * h);

        // Up projection + a gated FFN from the two halves of the row (SwiGLU: value *
        // silu(gate); GeGLU: gelu(first) * second), to hf or (int8 down) quantized as the down
        // projection's input.
        if (gated) {
            const bool silu = cfg_.ffn == FfnKind::swiglu;
            run_linear(Ly.up, x1, h, x1q, x1s, x1o, T, nullptr, 0, [&](int64_t i, float* y) {
                if (!Ly.down.int8) {
                    if (silu) enc_swiglu_row(y, y + I, I, hf + i * I);
                    else enc_geglu_row(y, y + I, I, hf + i * I);
                    return;
                }
                hs[i] = silu ? enc_swiglu_quantize_row(y, y + I, I, y, quant_mul(Ly.down), hq + i * I)
                             : enc_geglu_quantize_row(y, y + I, I, y, quant_mul(Ly.down), hq + i * I);
                take_outliers(Ly.down, y, ho + i * nout_of(Ly.down));
            });
        } else {
            // Up projection + GELU (+ the down projection's input).
            run_linear(Ly.up, x1, h, x1q, x1s, x1o, T, Ly.down.int8 ? nullptr : hf, I,
                       [&](int64_t i, float* y) {
                           if (!Ly.down.int8) {
                               enc_gelu_row(y, I);
                               return;
                           }
                           // GELU and the quantization in one pass over the row
                           hs[i] = enc_gelu_quantize_row(y, I, quant_mul(Ly.down), hq + i * I);
                           take_outliers(Ly.down, y, ho + i * nout_of(Ly.down));
                       });
        }

        if (stats) record(hf, I, I, stats + 3 * h);

        // Down projection + residual + LayerNorm -> x (+ the next layer's input); pre-LN:
        // x += the output (quantized as the next layer's input when it has no LN1).
        const bool next_reads_x = next && next->int8 && pre &&
                                  layers_[static_cast<size_t>(l + 1)].ln1_g.empty();
        run_linear(Ly.down, hf, I, hq, hs, ho, T, nullptr, 0,
                   [&](int64_t i, float* y) {
                       float* dst = x + i * h;
                       if (pre) {
                           enc_bias_row(y, h, dst, dst);
                           if (next_reads_x) {
                               thread_local std::vector<float> tmp;
                               xs[i] = quantize_input(*next, dst, xq + i * h, grow(tmp, 2 * h),
                                                      xo + i * nout_of(*next));
                           }
                           return;
                       }
                       layernorm_quantize(y, x1 + i * h, Ly.ln2_g.data(), Ly.ln2_b.data(), dst,
                                          next && next->int8 ? next : nullptr, xq + i * h, xs + i,
                                          next ? xo + i * nout_of(*next) : nullptr);
                   });
    }

    // Pre-LN: the final LayerNorm.
    if (pre && num_layers > 0) {
        parallel_for(T, 64, [&](int64_t t0, int64_t t1) {
            for (int64_t t = t0; t < t1; ++t)
                enc_add_layernorm_row(x + t * h, nullptr, h, final_g_.data(), final_b_.data(), eps, x + t * h);
        });
    }

    // Pooling, sequences across the pool.
    const int64_t np = static_cast<int64_t>(poolings.size());
    parallel_for(nseq, 1, [&](int64_t s0, int64_t s1) {
    for (int64_t s = s0; s < s1; ++s)
    for (int64_t pi = 0; pi < np; ++pi) {
        const Pooling pooling = poolings[static_cast<size_t>(pi)];
        int64_t off = offsets[s], L = offsets[s + 1] - off;
        float* o = out + (s * np + pi) * h;
        const float* rows = x + off * h;
        switch (pooling) {
            case Pooling::cls: std::memcpy(o, rows, sizeof(float) * h); break;
            case Pooling::lasttoken: std::memcpy(o, rows + (L - 1) * h, sizeof(float) * h); break;
            case Pooling::max:
                std::memcpy(o, rows, sizeof(float) * h);
                for (int64_t t = 1; t < L; ++t)
                    for (int64_t j = 0; j < h; ++j) o[j] = std::max(o[j], rows[t * h + j]);
                break;
            case Pooling::mean:
            case Pooling::mean_sqrt_len:
            case Pooling::weightedmean: {
                std::vector<double> acc(static_cast<size_t>(h), 0.0);
                double wsum = 0.0;
                for (int64_t t = 0; t < L; ++t) {
                    double w = pooling == Pooling::weightedmean ? double(t + 1) : 1.0;
                    wsum += w;
                    for (int64_t j = 0; j < h; ++j) acc[j] += w * rows[t * h + j];
                }
                double div = pooling == Pooling::mean_sqrt_len ? std::sqrt(double(L)) : wsum;
                for (int64_t j = 0; j < h; ++j) o[j] = static_cast<float>(acc[j] / div);
                break;
            }
        }
    }
    });
}

}  // namespace encoder
}  // namespace embedrt
