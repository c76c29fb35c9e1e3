// int8 family bindings: packed int8 matrices, exact int8 products, int8 index scans.
#include <memory>

#include "bindings/common.h"
#include "kernels/int8_gemm.h"

namespace embedrt {

namespace {

void check_k(int64_t k) {
    if (k > kInt8MaxK)
        throw py::value_error("k = " + std::to_string(k) + " exceeds the int8 product limit kInt8MaxK = " +
                              std::to_string(kInt8MaxK) + " (int32 accumulators could overflow)");
}

template <class T>
void check_out(const py::array& out, int64_t m, int64_t n, const char* what) {
    if (!py::isinstance<py::array_t<T>>(out) || out.dtype().kind() != py::dtype::of<T>().kind() ||
        out.dtype().itemsize() != int(sizeof(T)))
        throw py::type_error(std::string("out: expected dtype ") + bind::dtype_name<T>() + " for " + what);
    if (out.ndim() != 2 || out.shape(0) != m || out.shape(1) != n)
        throw py::value_error("out: expected shape (" + std::to_string(m) + ", " + std::to_string(n) + ")");
    if (!(out.flags() & py::array::c_style) || !out.writeable())
        throw py::value_error("out: must be a writeable C-contiguous array");
}

std::shared_ptr<Int8Packed> pack(const py::handle& b_obj) {
    auto b = bind::as_array<int8_t>(b_obj, "b", 2);
    int64_t n = b.shape(0), k = b.shape(1);
    check_k(k);
    auto packed = std::make_shared<Int8Packed>();
    {
        py::gil_scoped_release nogil;
        int8_pack(b.data(), n, k, k, packed.get());
    }
    return packed;
}

// a: int8 (a_u8 false) or uint8 codes a + 128.
py::array prepare_a(const py::handle& a_obj, const Int8Packed& b, bool* a_u8) {
    py::array a;
    if (py::isinstance<py::array>(a_obj) && py::reinterpret_borrow<py::array>(a_obj).dtype().kind() == 'u') {
        a = bind::as_array<uint8_t>(a_obj, "a", 2);
        *a_u8 = true;
    } else {
        a = bind::as_array<int8_t>(a_obj, "a", 2);
        *a_u8 = false;
    }
    if (a.shape(1) != b.k)
        throw py::value_error("a: has " + std::to_string(a.shape(1)) + " columns, b has k = " + std::to_string(b.k));
    return a;
}

}  // namespace

void register_int8(py::module_& m) {
    m.attr("INT8_MAX_K") = py::int_(kInt8MaxK);

    py::class_<Int8Packed, std::shared_ptr<Int8Packed>>(m, "Int8Packed",
        "An int8 matrix B[n, k] packed once for repeated exact products A . B^T.")
        .def_property_readonly("n", [](const Int8Packed& p) { return p.n; })
        .def_property_readonly("k", [](const Int8Packed& p) { return p.k; })
        .def_property_readonly("nbytes", [](const Int8Packed& p) {
            return int64_t(p.data.size() + p.comp.size() * sizeof(int32_t));
        });

    m.def("int8_pack", &pack, py::arg("b"), "Packs an int8 matrix B[n, k] (k <= INT8_MAX_K).");

    m.def("int8_gemm", [](const py::handle& a_obj, const Int8Packed& b, py::array out, bool threaded) {
        bool a_u8 = false;
        py::array a = prepare_a(a_obj, b, &a_u8);
        int64_t mm = a.shape(0);
        check_out<int32_t>(out, mm, b.n, "an int32 product");
        const void* ap = a.data();
        int32_t* cp = static_cast<int32_t*>(out.mutable_data());
        int64_t lda = b.k;
        {
            py::gil_scoped_release nogil;
            if (a_u8) {
                if (threaded) int8_gemm_packed_u8_mt(static_cast<const uint8_t*>(ap), mm, lda, b, cp, b.n);
                else int8_gemm_packed_u8(static_cast<const uint8_t*>(ap), mm, lda, b, 0, b.n, cp, b.n);
            } else {
                if (threaded) int8_gemm_packed_mt(static_cast<const int8_t*>(ap), mm, lda, b, cp, b.n);
                else int8_gemm_packed(static_cast<const int8_t*>(ap), mm, lda, b, 0, b.n, cp, b.n);
            }
        }
        return out;
    }, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("threaded") = true,
    "out[m, n] = a . b^T in int32 (a int8, or uint8 codes a + 128).");

    m.def("int8_gemm_f32", [](const py::handle& a_obj, const Int8Packed& b, const py::handle& a_scale_obj,
                              const py::handle& b_scale_obj, const py::handle& bias_obj, py::array out,
                              bool threaded) {
        bool a_u8 = false;
        py::array a = prepare_a(a_obj, b, &a_u8);
        int64_t mm = a.shape(0);
        check_out<float>(out, mm, b.n, "a float32 product");
        py::array_t<float, py::array::c_style> as, bs, bias;
        const float *asp = nullptr, *bsp = nullptr, *biasp = nullptr;
        if (!a_scale_obj.is_none()) {
            as = bind::as_array<float>(a_scale_obj, "a_scale", 1);
            if (as.shape(0) != mm) throw py::value_error("a_scale: expected " + std::to_string(mm) + " entries");
            asp = as.data();
        }
        if (!b_scale_obj.is_none()) {
            bs = bind::as_array<float>(b_scale_obj, "b_scale", 1);
            if (bs.shape(0) != b.n) throw py::value_error("b_scale: expected " + std::to_string(b.n) + " entries");
            bsp = bs.data();
        }
        if (!bias_obj.is_none()) {
            bias = bind::as_array<float>(bias_obj, "bias", 1);
            if (bias.shape(0) != b.n) throw py::value_error("bias: expected " + std::to_string(b.n) + " entries");
            biasp = bias.data();
        }
        const void* ap = a.data();
        float* cp = static_cast<float*>(out.mutable_data());
        {
            py::gil_scoped_release nogil;
            if (threaded) int8_gemm_packed_f32_mt(ap, a_u8, mm, b.k, b, asp, bsp, biasp, cp, b.n);
            else int8_gemm_packed_f32(ap, a_u8, mm, b.k, b, 0, b.n, asp, bsp, biasp, cp, b.n);
        }
        return out;
    }, py::arg("a"), py::arg("b"), py::arg("a_scale"), py::arg("b_scale"), py::arg("bias"), py::arg("out"),
    py::arg("threaded") = true,
    "out[i, j] = a_scale[i] * b_scale[j] * (a . b^T)[i, j] (+ bias[j]) in float32.");
}

}  // namespace embedrt
