// Bindings of the SDC kernels (multi-bit binary codes, BEBR symmetric distance).
#include "bindings/common.h"
#include "kernels/sdc.h"

namespace embedrt {
namespace {

struct Codes {
    py::array_t<uint8_t, py::array::c_style> arr;
    int64_t n, u, nb;
};

Codes check_codes(const py::handle& obj, const char* name) {
    auto arr = bind::as_array<uint8_t>(obj, name, 3);
    Codes c{arr, arr.shape(0), arr.shape(1), arr.shape(2)};
    if (c.u < 1 || c.u > kSdcMaxBits)
        throw py::value_error(std::string(name) + ": bits (axis 1) must be 1..4, got " + std::to_string(c.u));
    if (c.nb < 1) throw py::value_error(std::string(name) + ": codes must hold at least one byte per plane");
    return c;
}

void check_pair(const Codes& q, const Codes& d, int64_t dim) {
    if (q.u != d.u)
        throw py::value_error("q_codes and db_codes have different bits: " + std::to_string(q.u) +
                              " vs " + std::to_string(d.u));
    if (q.nb != d.nb)
        throw py::value_error("q_codes and db_codes have different widths: " + std::to_string(q.nb) +
                              " vs " + std::to_string(d.nb) + " bytes per plane");
    if (dim <= 8 * (q.nb - 1) || dim > 8 * q.nb)
        throw py::value_error("dim " + std::to_string(dim) + " does not match " + std::to_string(q.nb) +
                              " bytes per plane");
    if (sdc_max_abs_score(static_cast<int>(q.u), q.nb) >= INT32_MAX)
        throw py::value_error("codes are too wide: scores would overflow int32");
}

SdcLayout layout_of(const py::handle& obj, int u) {
    if (obj.is_none()) return sdc_layout(u);
    const std::string name = py::cast<std::string>(obj);
    if (name == "groups8") return SdcLayout::groups8;
    if (name == "blocks32") return SdcLayout::blocks32;
    throw py::value_error("layout must be 'groups8' or 'blocks32', got '" + name + "'");
}

const char* layout_name(SdcLayout l) { return l == SdcLayout::blocks32 ? "blocks32" : "groups8"; }

}  // namespace

void register_sdc(py::module_& m) {
    m.def("sdc_scores", [](const py::handle& q_obj, const py::handle& d_obj, int64_t dim) {
        Codes q = check_codes(q_obj, "q_codes"), d = check_codes(d_obj, "db_codes");
        check_pair(q, d, dim);
        py::array_t<int32_t> out({q.n, d.n});
        {
            py::gil_scoped_release nogil;
            sdc_scores(q.arr.data(), q.n, d.arr.data(), d.n, static_cast<int>(q.u), q.nb, dim,
                       out.mutable_data());
        }
        return out;
    }, py::arg("q_codes"), py::arg("db_codes"), py::arg("dim"),
       "Exact integer SDC scores int32 [m, n] of codes [m, bits, nb] and [n, bits, nb].");

    m.def("sdc_topk", [](const py::handle& q_obj, const py::handle& d_obj, int64_t k, int64_t dim,
                         const py::handle& packed_obj, const py::handle& layout_obj) {
        Codes q = check_codes(q_obj, "q_codes"), d = check_codes(d_obj, "db_codes");
        check_pair(q, d, dim);
        if (k < 1) throw py::value_error("k must be >= 1, got " + std::to_string(k));
        const uint64_t* pp = nullptr;
        py::array_t<uint64_t, py::array::c_style> packed;
        const SdcLayout layout = layout_of(layout_obj, static_cast<int>(d.u));
        if (!packed_obj.is_none()) {
            packed = bind::as_array<uint64_t>(packed_obj, "packed", 1);
            const int64_t want = sdc_packed_words(d.n, static_cast<int>(d.u), d.nb, layout);
            if (packed.shape(0) < want)
                throw py::value_error("packed: " + std::to_string(packed.shape(0)) +
                                      " words, the codes need " + std::to_string(want));
            pp = packed.data();
        }
        const int64_t kk = std::min(k, d.n);
        py::array_t<int32_t> scores({q.n, kk});
        py::array_t<int64_t> ids({q.n, kk});
        {
            py::gil_scoped_release nogil;
            sdc_topk(q.arr.data(), q.n, d.arr.data(), d.n, static_cast<int>(q.u), q.nb, dim, kk,
                     scores.mutable_data(), ids.mutable_data(), pp, layout);
        }
        return py::make_tuple(scores, ids);
    }, py::arg("q_codes"), py::arg("db_codes"), py::arg("k"), py::arg("dim"),
       py::arg("packed") = py::none(), py::arg("layout") = py::none(),
       "The k best SDC scores per query (descending, ties by smaller id): (int32 [m, k'], int64 [m, k']). "
       "packed: sdc_pack(db_codes, layout) (or of a longer array of which db_codes is the start), "
       "read instead of packing db_codes per search when `layout` (default: sdc_layout(bits)) is "
       "the layout the running variant searches (otherwise db_codes are packed on the way).");
    m.def("sdc_pack", [](const py::handle& d_obj, const py::handle& layout_obj) {
        Codes d = check_codes(d_obj, "db_codes");
        const SdcLayout layout = layout_of(layout_obj, static_cast<int>(d.u));
        py::array_t<uint64_t> out(sdc_packed_words(d.n, static_cast<int>(d.u), d.nb, layout));
        {
            py::gil_scoped_release nogil;
            sdc_pack(d.arr.data(), d.n, static_cast<int>(d.u), d.nb, out.mutable_data(), layout);
        }
        return out;
    }, py::arg("db_codes"), py::arg("layout") = py::none(),
       "The search layout of codes [n, bits, nb] as uint64 words, zero padded: 'groups8' (ceil(n / 8) "
       "groups of 8 codes, [bits][ceil(nb / 8)][8] words each) or 'blocks32' (ceil(n / 32) blocks of "
       "32 codes, [bits][nb][32] bytes of nibbles each); default: sdc_layout(bits).");
    m.def("sdc_layout", [](int u) {
        if (u < 1 || u > kSdcMaxBits) throw py::value_error("bits must be 1..4, got " + std::to_string(u));
        return std::string(layout_name(sdc_layout(u)));
    }, py::arg("bits"), "The database layout the SDC variant that runs now searches ('groups8' or 'blocks32').");
    m.def("sdc_layout_codes", [](const std::string& name) {
        return sdc_layout_codes(layout_of(py::str(name), 1));
    }, py::arg("layout"), "Codes per group (groups8: 8) or block (blocks32: 32) of a layout.");
    m.def("sdc_variant", [](int u) {
        if (u < 1 || u > kSdcMaxBits) throw py::value_error("bits must be 1..4, got " + std::to_string(u));
        return std::string(sdc_variant_name(u));
    }, py::arg("bits"), "The SDC kernel variant that runs now for codes of `bits` planes.");
}

}  // namespace embedrt
