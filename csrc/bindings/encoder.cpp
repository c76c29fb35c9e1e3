#include <memory>
#include <stdexcept>
#include <vector>

#include "bindings/common.h"
#include "encoder/model.h"

namespace embedrt {
namespace {

using encoder::EncoderModel;
using encoder::EncoderSpec;

const char* kSlots[4] = {"qkv", "attn_out", "up", "down"};

// An EncoderModel plus the numpy arrays it references (the embedding tables).
class NativeEncoder {
public:
    NativeEncoder(int64_t vocab, int64_t hidden, int64_t heads, int64_t intermediate, int64_t layers,
                  int64_t max_position, int64_t type_vocab, double eps, const py::dict& arrays,
                  const std::string& position, int64_t padding_idx, const std::string& attention_bias,
                  const std::string& ffn, double rotary_base, const std::string& norm,
                  int64_t local_window, int64_t global_every, double rotary_base_local) {
        EncoderSpec cfg;
        cfg.vocab = vocab;
        cfg.hidden = hidden;
        cfg.heads = heads;
        cfg.intermediate = intermediate;
        cfg.layers = layers;
        cfg.max_position = max_position;
        cfg.type_vocab = type_vocab;
        cfg.eps = static_cast<float>(eps);
        if (position == "absolute") cfg.position = encoder::PositionScheme::absolute;
        else if (position == "offset") cfg.position = encoder::PositionScheme::offset;
        else if (position == "rotary") cfg.position = encoder::PositionScheme::rotary;
        else if (position == "none") cfg.position = encoder::PositionScheme::none;
        else throw py::value_error("position must be 'absolute', 'offset', 'rotary' or 'none', got '" + position +
                                   "'");
        cfg.rotary_base = static_cast<float>(rotary_base);
        if (ffn == "gelu") cfg.ffn = encoder::FfnKind::gelu;
        else if (ffn == "swiglu") cfg.ffn = encoder::FfnKind::swiglu;
        else if (ffn == "geglu") cfg.ffn = encoder::FfnKind::geglu;
        else throw py::value_error("ffn must be 'gelu', 'swiglu' or 'geglu', got '" + ffn + "'");
        if (norm == "post") cfg.norm = encoder::NormPlacement::post;
        else if (norm == "pre") cfg.norm = encoder::NormPlacement::pre;
        else throw py::value_error("norm must be 'post' or 'pre', got '" + norm + "'");
        cfg.local_window = local_window;
        cfg.global_every = global_every;
        cfg.rotary_base_local = static_cast<float>(rotary_base_local);
        cfg.padding_idx = padding_idx;
        if (attention_bias == "none") cfg.attention_bias = encoder::AttentionBias::none;
        else if (attention_bias == "relative") cfg.attention_bias = encoder::AttentionBias::relative;
        else throw py::value_error("attention_bias must be 'none' or 'relative', got '" + attention_bias + "'");
        // Every layer's arrays must be there before the model sizes anything by `layers`: a
        // small file claiming millions of layers is refused here, not allocated.
        if (layers < 0 || (layers > 0 && !arrays.contains(std::to_string(layers - 1) + ".qkv.weight")) ||
            arrays.contains(std::to_string(layers) + ".qkv.weight"))
            throw py::value_error("encoder weights: the arrays do not hold " + std::to_string(layers) +
                                  " layers");
        model_ = std::make_unique<EncoderModel>(cfg);  // validates the sizes

        auto word = f32(arrays, "word_embeddings", {vocab, hidden});
        const bool table = cfg.has_position_table();
        py::array_t<float, py::array::c_style> pos;
        if (table) pos = f32(arrays, "position_embeddings", {max_position, hidden});
        else if (arrays.contains("position_embeddings"))
            throw py::value_error("encoder weights: position_embeddings given for positions without a table "
                                  "(rotary or none)");
        py::array_t<float, py::array::c_style> type;
        if (type_vocab > 0) type = f32(arrays, "token_type_embeddings", {type_vocab, hidden});
        else if (arrays.contains("token_type_embeddings"))
            throw py::value_error("encoder weights: token_type_embeddings given for a model without "
                                  "token types (type_vocab = 0)");
        auto g = f32(arrays, "embeddings_ln_g", {hidden});
        auto b = f32(arrays, "embeddings_ln_b", {hidden});
        keep_ = {word};
        if (table) keep_.push_back(pos);
        if (type_vocab > 0) keep_.push_back(type);
        model_->set_embeddings(word.data(), table ? pos.data() : nullptr, type_vocab > 0 ? type.data() : nullptr, g.data(),
                               b.data());
        if (cfg.attention_bias == encoder::AttentionBias::relative) {
            auto rel = f32(arrays, "relative_attention_bias", {heads, 2 * cfg.max_tokens() - 1});
            model_->set_relative_bias(rel.data());
        } else if (arrays.contains("relative_attention_bias")) {
            throw py::value_error("encoder weights: relative_attention_bias given, but attention_bias "
                                  "is 'none'");
        }

        const int64_t ns[4] = {3 * hidden, hidden, cfg.up_rows(), hidden};
        const int64_t ks[4] = {hidden, hidden, hidden, intermediate};
        for (int64_t l = 0; l < layers; ++l) {
            std::string pre = std::to_string(l) + ".";
            for (int s = 0; s < 4; ++s) {
                std::string base = pre + kSlots[s] + ".";
                int64_t n = ns[s], k = ks[s];
                py::object w = get(arrays, base + "weight");
                // a linear without a bias (NomicBert) has no "bias" array
                py::array_t<float, py::array::c_style> bias;
                const bool has_bias = arrays.contains(base + "bias");
                if (has_bias) bias = f32(arrays, base + "bias", {n});
                const float* bp = has_bias ? bias.data() : nullptr;
                py::dtype dt = py::reinterpret_borrow<py::array>(w).dtype();
                if (dt.kind() == 'i' && dt.itemsize() == 1) {
                    auto wq = bind::as_array<int8_t>(w, (base + "weight").c_str(), 2);
                    check_shape(wq, base + "weight", {n, k});
                    auto scale = f32(arrays, base + "scale", {n});
                    py::array_t<int64_t, py::array::c_style> oidx;
                    py::array_t<float, py::array::c_style> ow;
                    int64_t nout = 0;
                    if (arrays.contains(base + "outlier_idx")) {
                        oidx = bind::as_array<int64_t>(get(arrays, base + "outlier_idx"),
                                                       (base + "outlier_idx").c_str(), 1);
                        nout = oidx.shape(0);
                        ow = f32(arrays, base + "outlier_w", {nout, n});
                    }
                    model_->set_linear_int8(l, s, wq.data(), scale.data(), bp,
                                            nout ? oidx.data() : nullptr, nout,
                                            nout ? ow.data() : nullptr);
                } else {
                    auto wf = f32(arrays, base + "weight", {n, k});
                    model_->set_linear_f32(l, s, wf.data(), bp);
                }
            }
            // a pre-LayerNorm layer without "ln1_g" reads its input as it is
            const bool has_ln1 = cfg.norm != encoder::NormPlacement::pre || arrays.contains(pre + "ln1_g");
            py::array_t<float, py::array::c_style> g1, b1;
            if (has_ln1) {
                g1 = f32(arrays, pre + "ln1_g", {hidden});
                b1 = f32(arrays, pre + "ln1_b", {hidden});
            }
            auto g2 = f32(arrays, pre + "ln2_g", {hidden});
            auto b2 = f32(arrays, pre + "ln2_b", {hidden});
            model_->set_layernorms(l, has_ln1 ? g1.data() : nullptr, has_ln1 ? b1.data() : nullptr, g2.data(),
                                   b2.data());
        }
        if (cfg.norm == encoder::NormPlacement::pre) {
            auto fg = f32(arrays, "final_ln_g", {hidden});
            auto fb = f32(arrays, "final_ln_b", {hidden});
            model_->set_final_norm(fg.data(), fb.data());
        }
        model_->finalize();
    }

    py::array_t<float> embed(const py::handle& ids_obj, const py::handle& offsets_obj,
                             const py::handle& types_obj, const std::string& pooling_name,
                             int64_t layers) {
        return run(ids_obj, offsets_obj, types_obj, pooling_name, layers, nullptr);
    }

    // Per-channel max |input| of every linear layer over the sequences, [layers, 3 * hidden +
    // intermediate] (see EncoderModel::embed); fp32 models only.
    py::object activation_absmax(const py::handle& ids_obj, const py::handle& offsets_obj,
                                 const py::object& pooling) {
        const EncoderSpec& c = model_->config();
        py::array_t<float> stats({c.layers, model_->absmax_per_layer()});
        std::fill(stats.mutable_data(), stats.mutable_data() + stats.size(), 0.0f);
        std::string name = pooling.is_none() ? std::string("mean") : pooling.cast<std::string>();
        py::array_t<float> pooled = run(ids_obj, offsets_obj, py::none(), name, c.layers, stats.mutable_data());
        if (pooling.is_none()) return std::move(stats);
        return py::make_tuple(stats, pooled);
    }

private:
    py::array_t<float> run(const py::handle& ids_obj, const py::handle& offsets_obj,
                           const py::handle& types_obj, const std::string& pooling_name,
                           int64_t layers, float* absmax) {
        std::vector<encoder::Pooling> poolings;
        size_t start = 0;
        while (true) {
            size_t plus = pooling_name.find('+', start);
            std::string part = pooling_name.substr(start, plus == std::string::npos ? std::string::npos : plus - start);
            encoder::Pooling p;
            if (!encoder::parse_pooling(part, &p))
                throw py::value_error("unknown pooling " + pooling_name +
                                      "; choose mean, cls, max, mean_sqrt_len, lasttoken or weightedmean "
                                      "(several joined with +)");
            poolings.push_back(p);
            if (plus == std::string::npos) break;
            start = plus + 1;
        }
        auto ids = bind::as_array<int64_t>(ids_obj, "ids", 1);
        auto offsets = bind::as_array<int64_t>(offsets_obj, "offsets", 1);
        if (offsets.shape(0) < 1) throw py::value_error("offsets: expected at least one entry");
        int64_t nseq = offsets.shape(0) - 1;
        const int64_t* off = offsets.data();
        for (int64_t s = 0; s < nseq; ++s)
            if (off[s + 1] < off[s]) throw py::value_error("offsets must not decrease");
        if (off[0] != 0 || off[nseq] != ids.shape(0))
            throw py::value_error("offsets must run from 0 to len(ids)");
        py::array_t<int64_t, py::array::c_style> types;
        const int64_t* tp = nullptr;
        if (!types_obj.is_none()) {
            types = bind::as_array<int64_t>(types_obj, "type_ids", 1);
            if (types.shape(0) != ids.shape(0))
                throw py::value_error("type_ids must have one entry per token");
            tp = types.data();
        }
        const int64_t h = model_->config().hidden;
        py::array_t<float> out({nseq, h * static_cast<int64_t>(poolings.size())});
        float* o = out.mutable_data();
        const int64_t* ip = ids.data();
        {
            py::gil_scoped_release release;
            model_->embed(ip, tp, off, nseq, poolings, layers, o, absmax);
        }
        return out;
    }

public:

    int64_t max_chunk_tokens() const { return model_->max_chunk_tokens; }
    void set_max_chunk_tokens(int64_t v) {
        if (v < 1) throw py::value_error("max_chunk_tokens must be >= 1");
        model_->max_chunk_tokens = v;
    }
    const EncoderSpec& config() const { return model_->config(); }

private:
    static py::object get(const py::dict& arrays, const std::string& name) {
        if (!arrays.contains(name)) throw py::value_error("encoder weights: missing array " + name);
        return arrays[py::str(name)];
    }
    template <class A>
    static void check_shape(const A& a, const std::string& name, std::vector<int64_t> shape) {
        bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
        for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
        if (!ok) {
            std::string want = "(";
            for (size_t i = 0; i < shape.size(); ++i) want += (i ? ", " : "") + std::to_string(shape[i]);
            throw py::value_error("encoder weights: " + name + " must have shape " + want + ")");
        }
    }
    static py::array_t<float, py::array::c_style> f32(const py::dict& arrays, const std::string& name,
                                                      std::vector<int64_t> shape) {
        auto a = bind::as_array<float>(get(arrays, name), name.c_str(), static_cast<int>(shape.size()));
        check_shape(a, name, shape);
        return a;
    }

    std::unique_ptr<EncoderModel> model_;
    std::vector<py::array_t<float, py::array::c_style>> keep_;
};

}  // namespace

void register_encoder(py::module_& m) {
    py::class_<NativeEncoder>(m, "NativeEncoder",
                              "The native encoder forward pass (weights as prepared by "
                              "embedrt.encoder.native). position: 'absolute', 'offset' (rows "
                              "past padding_idx), 'rotary' (no table; q and k rotated, base "
                              "rotary_base) or 'none' (no table, no rotation: order from the "
                              "attention bias alone); type_vocab 0: no token types; attention_bias "
                              "'relative': arrays['relative_attention_bias'] [heads, 2 * max_tokens "
                              "- 1] added to the scores by the distance j - i; ffn 'gelu', "
                              "'swiglu' (up weight [2 * intermediate, hidden]: value | gate) or "
                              "'geglu' (gelu(first half) * second half). A linear without a "
                              "'<layer>.<slot>.bias' array has no bias. norm 'pre': LN1 before "
                              "the attention (a layer without '<layer>.ln1_g' has none), LN2 "
                              "before the FFN, 'final_ln_g' / 'final_ln_b' after the last layer; "
                              "local_window > 0: the layers l with l % global_every != 0 attend "
                              "to |j - i| <= local_window, rotary base rotary_base_local.")
        .def(py::init<int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, double, const py::dict&,
                      const std::string&, int64_t, const std::string&, const std::string&, double,
                      const std::string&, int64_t, int64_t, double>(),
             py::arg("vocab"), py::arg("hidden"), py::arg("heads"), py::arg("intermediate"),
             py::arg("layers"), py::arg("max_position"), py::arg("type_vocab"), py::arg("eps"),
             py::arg("arrays"), py::kw_only(), py::arg("position") = "absolute", py::arg("padding_idx") = 0,
             py::arg("attention_bias") = "none", py::arg("ffn") = "gelu", py::arg("rotary_base") = 10000.0,
             py::arg("norm") = "post", py::arg("local_window") = 0, py::arg("global_every") = 1,
             py::arg("rotary_base_local") = 10000.0)
        .def("embed", &NativeEncoder::embed, py::arg("ids"), py::arg("offsets"), py::arg("type_ids"),
             py::arg("pooling"), py::arg("layers"),
             "Pooled embeddings [n, hidden * modes] of the sequences ids[offsets[s]:offsets[s+1]]; "
             "pooling: one mode or several joined with '+', concatenated in that order.")
        .def("activation_absmax", &NativeEncoder::activation_absmax, py::arg("ids"), py::arg("offsets"),
             py::arg("pooling") = py::none(),
             "Per-channel max |input| of every linear layer over the sequences (fp32 weights only): "
             "float32 [layers, 3 * hidden + intermediate], per layer qkv | attn_out | up | down. "
             "With a pooling mode, (stats, the pooled embeddings of the same pass) instead.")
        .def_property("max_chunk_tokens", &NativeEncoder::max_chunk_tokens,
                      &NativeEncoder::set_max_chunk_tokens,
                      "Tokens of one forward chunk per thread in use (whole sequences; a longer "
                      "sequence makes a chunk of its own).")
        .def_property_readonly("hidden", [](const NativeEncoder& e) { return e.config().hidden; })
        .def_property_readonly("layers", [](const NativeEncoder& e) { return e.config().layers; })
        .def_property_readonly("max_tokens", [](const NativeEncoder& e) { return e.config().max_tokens(); });
}

}  // namespace embedrt
