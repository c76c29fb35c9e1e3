// Bit codes: sign packing, Hamming distances, top-k, +/-1 dot products.
#include "bindings/common.h"
#include "kernels/hamming.h"
#include "kernels/pack_bits.h"

namespace embedrt {
namespace {

using u8array = py::array_t<uint8_t, py::array::c_style>;

int64_t check_nbits(int64_t nbits, int64_t width, const char* what) {
    if (nbits < 1 || nbits > 8 * width)
        throw py::value_error(std::string("nbits must be in [1, ") + std::to_string(8 * width) + "] for " +
                              what + " of " + std::to_string(width) + " bytes, got " + std::to_string(nbits));
    return nbits;
}

void check_widths(const u8array& a, const u8array& b, const char* an, const char* bn) {
    if (a.shape(1) != b.shape(1))
        throw py::value_error(std::string(an) + " and " + bn + " must have the same code width, got " +
                              std::to_string(a.shape(1)) + " and " + std::to_string(b.shape(1)) + " bytes");
    if (a.shape(1) < 1) throw py::value_error(std::string(an) + ": codes must be at least 1 byte wide");
}

}  // namespace

void register_bits(py::module_& m) {
    m.def("pack_bits", [](py::handle xo) {
        if (!py::isinstance<py::array>(xo)) throw py::type_error("x: expected a numpy array");
        auto arr = py::reinterpret_borrow<py::array>(xo);
        if (arr.ndim() != 2) throw py::value_error("x: expected a 2-D array");
        const char kind = arr.dtype().kind();
        const auto size = arr.dtype().itemsize();
        const int64_t n = arr.shape(0), d = arr.shape(1), nb = (d + 7) / 8;
        u8array out({n, nb});
        uint8_t* o = out.mutable_data();
        if (kind == 'f' && size == 4) {
            auto x = bind::as_array<float>(arr, "x", 2);
            bool ok;
            {
                py::gil_scoped_release nogil;
                ok = pack_bits_f32(x.data(), n, d, o);
            }
            if (!ok) throw py::value_error("x: contains NaN (its sign bit is undefined)");
        } else if (kind == 'f' && size == 8) {
            auto x = bind::as_array<double>(arr, "x", 2);
            bool ok;
            {
                py::gil_scoped_release nogil;
                ok = pack_bits_f64(x.data(), n, d, o);
            }
            if (!ok) throw py::value_error("x: contains NaN (its sign bit is undefined)");
        } else if (kind == 'b' && size == 1) {
            auto x = py::array_t<uint8_t, py::array::c_style>::ensure(arr.attr("view")("uint8"));
            py::gil_scoped_release nogil;
            pack_bits_u8(x.data(), n, d, o);
        } else {
            throw py::type_error("x: expected float32, float64 or bool, got " + std::string(py::str(arr.dtype())));
        }
        return out;
    }, py::arg("x"), "Packs x > 0 MSB-first into uint8 [n, ceil(d/8)] (as numpy.packbits).");

    m.def("unpack_bits", [](py::handle co, int64_t d) {
        auto c = bind::as_array<uint8_t>(co, "codes", 2);
        const int64_t n = c.shape(0), nb = c.shape(1);
        if (d < 0 || d > 8 * nb)
            throw py::value_error("d must be in [0, " + std::to_string(8 * nb) + "], got " + std::to_string(d));
        u8array out({n, d});
        py::gil_scoped_release nogil;
        unpack_bits(c.data(), n, nb, d, out.mutable_data());
        return out;
    }, py::arg("codes"), py::arg("d"));

    m.def("hamming", [](py::handle ao, py::handle bo, int64_t nbits, py::object outo) {
        auto a = bind::as_array<uint8_t>(ao, "a", 2);
        auto b = bind::as_array<uint8_t>(bo, "b", 2);
        check_widths(a, b, "a", "b");
        check_nbits(nbits, a.shape(1), "codes");
        const int64_t m = a.shape(0), n = b.shape(0), w = a.shape(1);
        py::array_t<uint32_t, py::array::c_style> out;
        if (outo.is_none()) {
            out = py::array_t<uint32_t, py::array::c_style>({m, n});
        } else {
            if (!py::isinstance<py::array_t<uint32_t>>(outo))
                throw py::type_error("out: expected a numpy array of dtype uint32");
            out = py::reinterpret_borrow<py::array_t<uint32_t, py::array::c_style>>(outo);
            if (out.ndim() != 2 || out.shape(0) != m || out.shape(1) != n)
                throw py::value_error("out: expected shape (" + std::to_string(m) + ", " + std::to_string(n) + ")");
            if (!out.writeable() || !(out.flags() & py::array::c_style) ||
                out.dtype().byteorder() == '>')
                throw py::value_error("out: must be a writeable, C-contiguous uint32 array");
        }
        uint32_t* o = out.mutable_data();
        {
            py::gil_scoped_release nogil;
            hamming_matrix(a.data(), m, w, b.data(), n, w, nbits, o, n);
        }
        return out;
    }, py::arg("a"), py::arg("b"), py::arg("nbits"), py::arg("out") = py::none());

    m.def("binary_matmul", [](py::handle ao, py::handle bo, int64_t nbits) {
        auto a = bind::as_array<uint8_t>(ao, "a", 2);
        auto b = bind::as_array<uint8_t>(bo, "b", 2);
        check_widths(a, b, "a", "b");
        check_nbits(nbits, a.shape(1), "codes");
        const int64_t m = a.shape(0), n = b.shape(0), w = a.shape(1);
        py::array_t<int32_t, py::array::c_style> out({m, n});
        int32_t* o = out.mutable_data();
        py::gil_scoped_release nogil;
        binary_matmul(a.data(), m, w, b.data(), n, w, nbits, o, n);
        return out;
    }, py::arg("a"), py::arg("b"), py::arg("nbits"));

    m.def("hamming_topk", [](py::handle qo, py::handle co, int64_t k, int64_t nbits) {
        auto q = bind::as_array<uint8_t>(qo, "queries", 2);
        auto c = bind::as_array<uint8_t>(co, "codes", 2);
        check_widths(q, c, "queries", "codes");
        check_nbits(nbits, q.shape(1), "codes");
        if (k < 1) throw py::value_error("k must be >= 1, got " + std::to_string(k));
        const int64_t m = q.shape(0), n = c.shape(0), w = q.shape(1);
        const int64_t kk = std::min(k, n);
        py::array_t<int32_t, py::array::c_style> dist({m, kk});
        py::array_t<int64_t, py::array::c_style> ids({m, kk});
        int32_t* pd = dist.mutable_data();
        int64_t* pi = ids.mutable_data();
        {
            py::gil_scoped_release nogil;
            hamming_topk(q.data(), m, w, c.data(), n, w, nbits, k, pd, pi);
        }
        return py::make_tuple(dist, ids);
    }, py::arg("queries"), py::arg("codes"), py::arg("k"), py::arg("nbits"));
}

}  // namespace embedrt
