// int8 family bindings: packed int8 matrices, exact int8 products, int8 index scans.
#include <memory>

#include "bindings/common.h"
#include "kernels/int8_gemm.h"
#include "kernels/int8_scan.h"

namespace embedrt {

namespace {

void check_k(int64_t k) {
    if (k > kInt8MaxK)
        throw py::value_error("k = " + std::to_string(k) + " exceeds the int8 product limit INT8_MAX_K = " +
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

// a: int8, or uint8 codes a + 128; fills the A side of p (the array keeps it alive).
py::array prepare_a(const py::handle& a_obj, const Int8Packed& b, Int8GemmParams* p) {
    py::array a;
    p->a_u8 = py::isinstance<py::array>(a_obj) && py::reinterpret_borrow<py::array>(a_obj).dtype().kind() == 'u';
    if (p->a_u8) a = bind::as_array<uint8_t>(a_obj, "a", 2);
    else a = bind::as_array<int8_t>(a_obj, "a", 2);
    if (a.shape(1) != b.k)
        throw py::value_error("a: has " + std::to_string(a.shape(1)) + " columns, b has k = " + std::to_string(b.k));
    p->a = a.data();
    p->m = a.shape(0);
    p->lda = b.k;
    p->b = &b;
    return a;
}

// An optional float32 vector of `n` entries (None: *ptr stays null); the array keeps it alive.
py::array_t<float, py::array::c_style> optional_vector(const py::handle& obj, const char* name, int64_t n,
                                                       const float** ptr) {
    py::array_t<float, py::array::c_style> v;
    if (obj.is_none()) return v;
    v = bind::as_array<float>(obj, name, 1);
    if (v.shape(0) != n) throw py::value_error(std::string(name) + ": expected " + std::to_string(n) + " entries");
    *ptr = v.data();
    return v;
}

// The product of p, threaded across the pool or on the calling thread, without the GIL.
void run(const Int8GemmParams& p, bool threaded) {
    py::gil_scoped_release nogil;
    if (threaded) int8_gemm_run_mt(p);
    else int8_gemm_run(p);
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

    m.def("int8_gemm", [](const py::handle& a_obj, const Int8Packed& b, py::array out, bool threaded,
                          int64_t j0, int64_t j1) {
        Int8GemmParams p;
        py::array a = prepare_a(a_obj, b, &p);
        check_out<int32_t>(out, p.m, b.n, "an int32 product");
        if (j1 < 0) j1 = b.n;
        if (j0 < 0 || j0 > j1 || j1 > b.n) throw py::value_error("columns: need 0 <= j0 <= j1 <= n");
        p.c32 = static_cast<int32_t*>(out.mutable_data());
        p.ldc = b.n;
        p.j0 = j0;
        p.j1 = j1;
        // a column range runs on the calling thread
        run(p, threaded && j0 == 0 && j1 == b.n);
        return out;
    }, py::arg("a"), py::arg("b"), py::arg("out"), py::arg("threaded") = true, py::arg("j0") = 0,
    py::arg("j1") = -1,
    "out[m, n] = a . b^T in int32 (a int8, or uint8 codes a + 128); only columns [j0, j1) when given.");

    m.def("int8_gemm_f32", [](const py::handle& a_obj, const Int8Packed& b, const py::handle& a_scale_obj,
                              const py::handle& b_scale_obj, const py::handle& bias_obj, py::array out,
                              bool threaded) {
        Int8GemmParams p;
        py::array a = prepare_a(a_obj, b, &p);
        check_out<float>(out, p.m, b.n, "a float32 product");
        auto as = optional_vector(a_scale_obj, "a_scale", p.m, &p.a_scale);
        auto bs = optional_vector(b_scale_obj, "b_scale", b.n, &p.b_scale);
        auto bias = optional_vector(bias_obj, "bias", b.n, &p.bias);
        p.cf = static_cast<float*>(out.mutable_data());
        p.ldc = b.n;
        run(p, threaded);
        return out;
    }, py::arg("a"), py::arg("b"), py::arg("a_scale"), py::arg("b_scale"), py::arg("bias"), py::arg("out"),
    py::arg("threaded") = true,
    "out[i, j] = a_scale[i] * b_scale[j] * (a . b^T)[i, j] (+ bias[j]) in float32.");
    // ---- int8 vectors with per-vector scales, scored against 16-bit fixed-point queries ----
    m.def("int8_stream_read", [](const py::handle& obj) {
        auto a = bind::as_array<uint8_t>(obj, "data", 1);
        const uint8_t* p = a.data();
        int64_t nb = a.shape(0);
        py::gil_scoped_release nogil;
        return int8_stream_read(p, nb);
    }, py::arg("data"), "Reads every byte once (threaded); for measuring memory read bandwidth.");
    m.def("int8_q16_max", &int8_q16_max, py::arg("dim"),
          "Largest |q16| for exact int32 dot products with int8 vectors of this dim.");
    m.def("int8_q16_stride", &int8_q16_stride, py::arg("dim"), "Row stride of q16 query arrays.");

    m.def("int8_dot_q16", [](const py::handle& q_obj, const py::handle& docs_obj, const py::handle& ids_obj) {
        auto docs = bind::as_array<int8_t>(docs_obj, "docs", 2);
        int64_t n = docs.shape(0), dim = docs.shape(1);
        auto q = bind::as_array<int16_t>(q_obj, "q16", 2);
        if (q.shape(1) != int8_q16_stride(dim))
            throw py::value_error("q16: expected rows of " + std::to_string(int8_q16_stride(dim)) + " entries");
        py::array_t<int64_t, py::array::c_style> ids;
        const int64_t* idp = nullptr;
        int64_t cnt = n;
        if (!ids_obj.is_none()) {
            ids = bind::as_array<int64_t>(ids_obj, "ids", 1);
            cnt = ids.shape(0);
            for (int64_t t = 0; t < cnt; ++t)
                if (ids.data()[t] < 0 || ids.data()[t] >= n) throw py::index_error("ids: out of range");
            idp = ids.data();
        }
        int64_t nq = q.shape(0);
        py::array_t<int32_t> out({nq, cnt});
        int32_t* op = out.mutable_data();
        {
            py::gil_scoped_release nogil;
            int8_dot_q16(q.data(), nq, docs.data(), dim, idp, cnt, op, cnt);
        }
        return out;
    }, py::arg("q16"), py::arg("docs"), py::arg("ids") = py::none(),
    "Exact int32 dot products of 16-bit queries [nq, stride] with int8 rows (all, or ids).");

    auto check_scan_args = [](const py::array_t<int16_t, py::array::c_style>& q,
                              const py::array_t<float, py::array::c_style>& qs,
                              const py::array_t<int8_t, py::array::c_style>& docs,
                              const py::array_t<float, py::array::c_style>& ds) {
        int64_t dim = docs.shape(1);
        if (q.shape(1) != int8_q16_stride(dim))
            throw py::value_error("q16: expected rows of " + std::to_string(int8_q16_stride(dim)) + " entries");
        if (qs.shape(0) != q.shape(0)) throw py::value_error("q_scale: expected one scale per query");
        if (ds.shape(0) != docs.shape(0)) throw py::value_error("doc_scale: expected one scale per vector");
    };

    m.def("int8_search", [check_scan_args](const py::handle& q_obj, const py::handle& qs_obj, const py::handle& docs_obj,
                                           const py::handle& ds_obj, int64_t k) {
        auto q = bind::as_array<int16_t>(q_obj, "q16", 2);
        auto qs = bind::as_array<float>(qs_obj, "q_scale", 1);
        auto docs = bind::as_array<int8_t>(docs_obj, "docs", 2);
        auto ds = bind::as_array<float>(ds_obj, "doc_scale", 1);
        check_scan_args(q, qs, docs, ds);
        int64_t nq = q.shape(0), n = docs.shape(0), dim = docs.shape(1);
        if (k < 0 || k > n) throw py::value_error("k: must be in [0, " + std::to_string(n) + "]");
        py::array_t<float> scores({nq, k});
        py::array_t<int64_t> ids({nq, k});
        float* sp = scores.mutable_data();
        int64_t* ip = ids.mutable_data();
        {
            py::gil_scoped_release nogil;
            int8_search_q16(q.data(), qs.data(), nq, docs.data(), ds.data(), n, dim, k, sp, ip);
        }
        return py::make_tuple(scores, ids);
    }, py::arg("q16"), py::arg("q_scale"), py::arg("docs"), py::arg("doc_scale"), py::arg("k"),
    "Top-k (scores, ids) of every int8 row for each query: one threaded pass over the rows.");

    m.def("int8_rescore", [check_scan_args](const py::handle& q_obj, const py::handle& qs_obj, const py::handle& docs_obj,
                                            const py::handle& ds_obj, const py::handle& cand_obj, int64_t k) {
        auto q = bind::as_array<int16_t>(q_obj, "q16", 2);
        auto qs = bind::as_array<float>(qs_obj, "q_scale", 1);
        auto docs = bind::as_array<int8_t>(docs_obj, "docs", 2);
        auto ds = bind::as_array<float>(ds_obj, "doc_scale", 1);
        auto cand = bind::as_array<int64_t>(cand_obj, "candidates", 2);
        check_scan_args(q, qs, docs, ds);
        int64_t nq = q.shape(0), n = docs.shape(0), dim = docs.shape(1);
        if (cand.shape(0) != nq) throw py::value_error("candidates: expected one row per query");
        if (k < 0) throw py::value_error("k: must be >= 0");
        int64_t c = cand.shape(1);
        py::array_t<float> scores({nq, k});
        py::array_t<int64_t> ids({nq, k});
        float* sp = scores.mutable_data();
        int64_t* ip = ids.mutable_data();
        {
            py::gil_scoped_release nogil;
            int8_rescore_q16(q.data(), qs.data(), nq, docs.data(), ds.data(), n, dim, cand.data(), c, k, sp, ip);
        }
        return py::make_tuple(scores, ids);
    }, py::arg("q16"), py::arg("q_scale"), py::arg("docs"), py::arg("doc_scale"), py::arg("candidates"), py::arg("k"),
    "Rescores candidate ids [nq, c] (ids < 0 skipped) and keeps the top k per query.");
}

}  // namespace embedrt
