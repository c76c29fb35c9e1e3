// The native encoder's float building blocks (csrc/kernels/encoder_ops.h), one call per row or
// per attention head, as the submodule _core.encoder_ops: for tests and references against
// numpy at every ISA level. Argument checks and GIL release only.
#include <cstring>
#include <string>

#include "bindings/common.h"
#include "kernels/encoder_ops.h"

namespace embedrt {
namespace {

using F32 = py::array_t<float, py::array::c_style>;

F32 vec(const py::handle& obj, const char* name, int64_t n) {
    F32 a = bind::as_array<float>(obj, name, 1);
    if (n >= 0 && a.shape(0) != n)
        throw py::value_error(std::string(name) + ": expected " + std::to_string(n) + " values, got " +
                              std::to_string(a.shape(0)));
    return a;
}

// An optional 1-D float32 of n values (None: null).
const float* opt(const py::object& obj, const char* name, int64_t n, F32* keep) {
    if (obj.is_none()) return nullptr;
    *keep = vec(obj, name, n);
    return keep->data();
}

// A writable C-contiguous float32 array of ndim dimensions, written in place (never a copy).
py::array out_array(const py::handle& obj, const char* name, int ndim) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(name) + ": expected a numpy array of dtype float32");
    auto a = py::reinterpret_borrow<py::array>(obj);
    if (a.dtype().kind() != 'f' || a.dtype().itemsize() != 4)
        throw py::type_error(std::string(name) + ": expected dtype float32, got " + std::string(py::str(a.dtype())));
    if (a.ndim() != ndim)
        throw py::value_error(std::string(name) + ": expected a " + std::to_string(ndim) + "-D array");
    if (!(a.flags() & py::array::c_style) || !a.writeable() ||
        reinterpret_cast<uintptr_t>(a.data()) % alignof(float) != 0)
        throw py::value_error(std::string(name) + ": expected a writable, aligned, C-contiguous array");
    return a;
}

}  // namespace

void register_encoder_ops(py::module_& parent) {
    py::module_ m = parent.def_submodule(
        "encoder_ops", "The native encoder's float operations (one row or one attention head per call) "
                       "at the active ISA level, for tests and references.");

    m.def("bias_row", [](const py::handle& y_obj, const py::object& bias_obj) {
        F32 y = vec(y_obj, "y", -1), kb;
        const int64_t n = y.shape(0);
        const float* bias = opt(bias_obj, "bias", n, &kb);
        F32 out(n);
        float* o = out.mutable_data();
        {
            py::gil_scoped_release nogil;
            enc_bias_row(y.data(), n, bias, o);
        }
        return out;
    }, py::arg("y"), py::arg("bias") = py::none(), "y + bias (bias may be None).");

    m.def("add_layernorm", [](const py::handle& y_obj, const py::object& res_obj, const py::handle& g_obj,
                              const py::handle& b_obj, float eps) {
        F32 y = vec(y_obj, "y", -1), kr;
        const int64_t n = y.shape(0);
        if (n < 1) throw py::value_error("y: expected at least one value");
        const float* res = opt(res_obj, "res", n, &kr);
        F32 g = vec(g_obj, "g", n), b = vec(b_obj, "b", n);
        F32 out(n);
        float* o = out.mutable_data();
        {
            py::gil_scoped_release nogil;
            enc_add_layernorm_row(y.data(), res, n, g.data(), b.data(), eps, o);
        }
        return out;
    }, py::arg("y"), py::arg("res"), py::arg("g"), py::arg("b"), py::arg("eps"),
       "LayerNorm of y + res (res may be None): (v - mean) / sqrt(var + eps) * g + b.");

    m.def("add_layernorm_quantize", [](const py::handle& y_obj, const py::object& res_obj,
                                       const py::handle& g_obj, const py::handle& b_obj, float eps,
                                       const py::object& mul_obj) {
        F32 y = vec(y_obj, "y", -1), kr, km;
        const int64_t n = y.shape(0);
        if (n < 1) throw py::value_error("y: expected at least one value");
        const float* res = opt(res_obj, "res", n, &kr);
        const float* mul = opt(mul_obj, "mul", n, &km);
        F32 g = vec(g_obj, "g", n), b = vec(b_obj, "b", n);
        F32 out(n);
        py::array_t<uint8_t> q(n);
        float* o = out.mutable_data();
        uint8_t* qp = q.mutable_data();
        float s;
        {
            py::gil_scoped_release nogil;
            s = enc_add_layernorm_quantize_row(y.data(), res, n, g.data(), b.data(), eps, o, mul, qp);
        }
        return py::make_tuple(out, q, s);
    }, py::arg("y"), py::arg("res"), py::arg("g"), py::arg("b"), py::arg("eps"), py::arg("mul") = py::none(),
       "add_layernorm, then the uint8 codes of out * mul: (out, codes, scale).");

    m.def("gelu", [](const py::handle& x_obj) {
        F32 x = vec(x_obj, "x", -1);
        const int64_t n = x.shape(0);
        F32 out(n);
        float* o = out.mutable_data();
        {
            py::gil_scoped_release nogil;
            std::memcpy(o, x.data(), sizeof(float) * static_cast<size_t>(n));
            enc_gelu_row(o, n);
        }
        return out;
    }, py::arg("x"), "x * (1 + erf(x / sqrt 2)) / 2 (a new array).");

    m.def("gelu_quantize", [](const py::handle& x_obj, const py::object& mul_obj) {
        F32 x = vec(x_obj, "x", -1), km;
        const int64_t n = x.shape(0);
        const float* mul = opt(mul_obj, "mul", n, &km);
        F32 out(n);
        py::array_t<uint8_t> q(n);
        float* o = out.mutable_data();
        uint8_t* qp = q.mutable_data();
        float s;
        {
            py::gil_scoped_release nogil;
            std::memcpy(o, x.data(), sizeof(float) * static_cast<size_t>(n));
            s = enc_gelu_quantize_row(o, n, mul, qp);
        }
        return py::make_tuple(out, q, s);
    }, py::arg("x"), py::arg("mul") = py::none(), "gelu, then the uint8 codes of it * mul: (out, codes, scale).");

    m.def("rotary", [](const py::handle& x_obj, const py::handle& cos_obj, const py::handle& sin_obj) {
        F32 x = bind::as_array<float>(x_obj, "x", 2);
        const int64_t nvec = x.shape(0), d = x.shape(1);
        if (d % 2 != 0) throw py::value_error("x: the head size (columns) must be even");
        F32 c = vec(cos_obj, "cos", d / 2), sn = vec(sin_obj, "sin", d / 2);
        F32 out({nvec, d});
        float* o = out.mutable_data();
        {
            py::gil_scoped_release nogil;
            std::memcpy(o, x.data(), sizeof(float) * static_cast<size_t>(nvec * d));
            enc_rotary_rows(o, nvec, d, c.data(), sn.data());
        }
        return out;
    }, py::arg("x"), py::arg("cos"), py::arg("sin"),
       "Each row of x [nvec, d] rotated in the rotate_half layout by the angles of cos / sin [d / 2] "
       "(a new array).");

    m.def("swiglu", [](const py::handle& up_obj, const py::handle& gate_obj) {
        F32 up = vec(up_obj, "up", -1);
        const int64_t n = up.shape(0);
        F32 gate = vec(gate_obj, "gate", n);
        F32 out(n);
        float* o = out.mutable_data();
        {
            py::gil_scoped_release nogil;
            enc_swiglu_row(up.data(), gate.data(), n, o);
        }
        return out;
    }, py::arg("up"), py::arg("gate"), "up * silu(gate) (a new array).");

    m.def("swiglu_quantize", [](const py::handle& up_obj, const py::handle& gate_obj, const py::object& mul_obj) {
        F32 up = vec(up_obj, "up", -1), km;
        const int64_t n = up.shape(0);
        F32 gate = vec(gate_obj, "gate", n);
        const float* mul = opt(mul_obj, "mul", n, &km);
        F32 out(n);
        py::array_t<uint8_t> q(n);
        float* o = out.mutable_data();
        uint8_t* qp = q.mutable_data();
        float s;
        {
            py::gil_scoped_release nogil;
            s = enc_swiglu_quantize_row(up.data(), gate.data(), n, o, mul, qp);
        }
        return py::make_tuple(out, q, s);
    }, py::arg("up"), py::arg("gate"), py::arg("mul") = py::none(),
       "swiglu, then the uint8 codes of it * mul: (out, codes, scale).");

    m.def("geglu", [](const py::handle& x_obj, const py::handle& gate_obj) {
        F32 x = vec(x_obj, "x", -1);
        const int64_t n = x.shape(0);
        F32 gate = vec(gate_obj, "gate", n);
        F32 out(n);
        float* o = out.mutable_data();
        {
            py::gil_scoped_release nogil;
            enc_geglu_row(x.data(), gate.data(), n, o);
        }
        return out;
    }, py::arg("x"), py::arg("gate"), "gelu(x) * gate (a new array).");

    m.def("geglu_quantize", [](const py::handle& x_obj, const py::handle& gate_obj, const py::object& mul_obj) {
        F32 x = vec(x_obj, "x", -1), km;
        const int64_t n = x.shape(0);
        F32 gate = vec(gate_obj, "gate", n);
        const float* mul = opt(mul_obj, "mul", n, &km);
        F32 out(n);
        py::array_t<uint8_t> q(n);
        float* o = out.mutable_data();
        uint8_t* qp = q.mutable_data();
        float s;
        {
            py::gil_scoped_release nogil;
            s = enc_geglu_quantize_row(x.data(), gate.data(), n, o, mul, qp);
        }
        return py::make_tuple(out, q, s);
    }, py::arg("x"), py::arg("gate"), py::arg("mul") = py::none(),
       "geglu, then the uint8 codes of it * mul: (out, codes, scale).");

    m.def("quantize_row", [](const py::handle& x_obj, const py::object& shift_obj, const py::object& mul_obj) {
        F32 x = vec(x_obj, "x", -1), ks, km;
        const int64_t n = x.shape(0);
        const float* shift = opt(shift_obj, "shift", n, &ks);
        const float* mul = opt(mul_obj, "mul", n, &km);
        py::array_t<uint8_t> q(n);
        F32 tmp(n);
        uint8_t* qp = q.mutable_data();
        float* t = tmp.mutable_data();
        float s;
        {
            py::gil_scoped_release nogil;
            s = enc_quantize_row(x.data(), n, shift, mul, qp, t);
        }
        return py::make_tuple(q, s);
    }, py::arg("x"), py::arg("shift") = py::none(), py::arg("mul") = py::none(),
       "t = (x - shift) * mul; codes round(t / s) + 128 with s = max|t| / 127: (codes, s).");

    m.def("attention_scratch", &enc_attention_scratch, py::arg("L"), py::arg("d"),
          "Floats of scratch one attention head of L tokens and width d needs.");

    m.def("attention_head", [](const py::handle& qkv_obj, int64_t d, int64_t q_col, int64_t k_col,
                               int64_t v_col, const py::object& bias_obj, int64_t bias_offset, int64_t ldb,
                               const py::handle& out_obj, const py::handle& scratch_obj) {
        F32 qkv = bind::as_array<float>(qkv_obj, "qkv", 2);
        const int64_t L = qkv.shape(0), ld = qkv.shape(1);
        if (d < 1) throw py::value_error("d must be >= 1");
        for (int64_t col : {q_col, k_col, v_col})
            if (col < 0 || col + d > ld) throw py::value_error("q_col, k_col, v_col: columns past qkv's width");
        py::array out = out_array(out_obj, "out", 2);
        if (out.shape(0) != L || out.shape(1) < d)
            throw py::value_error("out: expected shape (L, >= d)");
        py::array scratch = out_array(scratch_obj, "scratch", 1);
        if (scratch.shape(0) < enc_attention_scratch(L, d))
            throw py::value_error("scratch: expected at least attention_scratch(L, d) floats");
        F32 kb;
        const float* bias = nullptr;
        if (!bias_obj.is_none()) {
            kb = vec(bias_obj, "bias", -1);
            const int64_t nb = kb.shape(0);
            // row i reads bias[bias_offset + i * ldb + j], j < L
            for (int64_t i : {int64_t(0), L - 1})
                if (L > 0 && (bias_offset + i * ldb < 0 || bias_offset + i * ldb + L > nb))
                    throw py::value_error("bias: rows past the array (bias_offset, ldb)");
            bias = kb.data() + bias_offset;
        }
        const float* base = qkv.data();
        float* o = static_cast<float*>(out.mutable_data());
        const int64_t ldo = out.shape(1);
        float* scr = static_cast<float*>(scratch.mutable_data());
        {
            py::gil_scoped_release nogil;
            if (bias)
                enc_attention_head_bias(base + q_col, base + k_col, base + v_col, ld, L, d, bias, ldb, o, ldo, scr);
            else
                enc_attention_head(base + q_col, base + k_col, base + v_col, ld, L, d, o, ldo, scr);
        }
    }, py::arg("qkv"), py::arg("d"), py::arg("q_col"), py::arg("k_col"), py::arg("v_col"),
       py::arg("bias"), py::arg("bias_offset"), py::arg("ldb"), py::arg("out"), py::arg("scratch"),
       "One attention head over the L rows of qkv: out[i, :d] = softmax(q_i . K^T + bias_i) V with "
       "q, k, v the d columns of qkv from q_col, k_col, v_col (the 1/sqrt(d) scale folded into q). "
       "Bias row i is bias[bias_offset + i * ldb:][:L] (ldb may be negative); bias may be None.");

    m.def("sgemm", [](const py::handle& a_obj, const py::handle& b_obj, int64_t p0, int64_t p1,
                      const py::handle& out_obj) {
        F32 a = bind::as_array<float>(a_obj, "a", 2), b = bind::as_array<float>(b_obj, "b", 2);
        const int64_t m_ = a.shape(0), k = a.shape(1), n = b.shape(0);
        if (b.shape(1) != k) throw py::value_error("b: expected as many columns as a");
        py::array out = out_array(out_obj, "out", 2);
        if (out.shape(0) != m_ || out.shape(1) < n) throw py::value_error("out: expected shape (len(a), >= len(b))");
        const int64_t panels = (n + 15) / 16;
        if (p0 < 0 || p1 > panels || p0 > p1) throw py::value_error("p0, p1: panels out of range");
        F32 packed(enc_packed_f32_size(n, k));
        float* bp = packed.mutable_data();
        float* o = static_cast<float*>(out.mutable_data());
        const int64_t ldc = out.shape(1);
        {
            py::gil_scoped_release nogil;
            enc_pack_f32(b.data(), n, k, k, bp);
            enc_sgemm_packed(a.data(), m_, k, bp, n, k, p0, p1, o, ldc);
        }
    }, py::arg("a"), py::arg("b"), py::arg("p0"), py::arg("p1"), py::arg("out"),
       "out[i, j] = a[i] . b[j] for the output columns of panels p0 .. p1 (16 columns each); "
       "the rest of out is left as it is.");
}

}  // namespace embedrt
