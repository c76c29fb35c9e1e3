// Hash embeddings: MurmurHash3 / MurmurHash64A / fastText FNV-1a, HashEmbed forward and
// EmbeddingBag. Argument checks and GIL release only; the arithmetic is in kernels/.
#include <string>
#include <vector>

#include "bindings/common.h"
#include "memory.h"
#include "kernels/embedding_bag.h"
#include "kernels/hash_embed.h"

namespace embedrt {
namespace {

// Outputs of BufferCache::kMin bytes and more come from the buffer cache (memory.h) and go
// back to it when numpy frees them.
struct CachedBuffer {
    void* ptr;
    size_t cap;
};

// An uninitialised C-contiguous array of `shape`.
template <class T>
py::array_t<T> new_output(std::vector<py::ssize_t> shape) {
    size_t count = 1;
    for (auto d : shape) count *= size_t(d);
    size_t bytes = count * sizeof(T);
    if (bytes < BufferCache::kMin) return py::array_t<T>(shape);
    size_t cap = 0;
    void* p = buffer_cache().get(bytes, &cap);
    auto* holder = new CachedBuffer{p, cap};
    py::capsule owner(holder, [](void* h) {
        auto* b = static_cast<CachedBuffer*>(h);
        buffer_cache().put(b->ptr, b->cap);
        delete b;
    });
    return py::array_t<T>(shape, static_cast<T*>(p), owner);
}

uint32_t as_seed32(int64_t seed) {
    if (seed < 0 || seed > int64_t(0xffffffffLL))
        throw py::value_error("seed must be in [0, 2**32), got " + std::to_string(seed));
    return static_cast<uint32_t>(seed);
}

// The byte buffer of a bytes object and offsets[n + 1] into it, checked.
void check_offsets(const py::array_t<int64_t, py::array::c_style>& offsets, int64_t nbytes,
                   const char* name) {
    const int64_t* o = offsets.data();
    int64_t n = offsets.shape(0);
    if (n < 1) throw py::value_error(std::string(name) + ": needs at least one entry");
    if (o[0] != 0) throw py::value_error(std::string(name) + ": must start at 0");
    for (int64_t i = 0; i + 1 < n; ++i)
        if (o[i + 1] < o[i]) throw py::value_error(std::string(name) + ": must be non-decreasing");
    if (o[n - 1] != nbytes)
        throw py::value_error(std::string(name) + ": last entry must equal the data length");
}

// Optional per-id weights: nullptr when `obj` is None, else a float32 [n] array kept in `holder`.
const float* optional_weights(const py::object& obj, int64_t n,
                              py::array_t<float, py::array::c_style>* holder) {
    if (obj.is_none()) return nullptr;
    *holder = bind::as_array<float>(obj, "weights", 1);
    if (holder->shape(0) != n)
        throw py::value_error("weights: needs one entry per id (" + std::to_string(n) + "), got " +
                              std::to_string(holder->shape(0)));
    return holder->data();
}

// ValueError naming the first id outside [0, limit) (the scan runs without the GIL).
void check_ids_in_range(const int64_t* ids, int64_t n, int64_t limit) {
    int64_t bad;
    {
        py::gil_scoped_release nogil;
        bad = embedding_bag_first_invalid(ids, n, limit);
    }
    if (bad >= 0)
        throw py::value_error("ids: ids[" + std::to_string(bad) + "] = " + std::to_string(ids[bad]) +
                              " is outside [0, " + std::to_string(limit) + ")");
}

// The UTF-8 bytes of a sequence of str, concatenated, and offsets[n + 1] into them.
void gather_utf8(py::handle seq_obj, const char* name, std::string* buf,
                 std::vector<int64_t>* offsets) {
    if (PyUnicode_Check(seq_obj.ptr()) || PyBytes_Check(seq_obj.ptr()))
        throw py::type_error(std::string(name) + ": expected a sequence of str");
    PyObject* seq = PySequence_Fast(seq_obj.ptr(), "expected a sequence of str");
    if (!seq) throw py::error_already_set();
    py::object owner = py::reinterpret_steal<py::object>(seq);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    PyObject** items = PySequence_Fast_ITEMS(seq);
    offsets->assign(size_t(n) + 1, 0);
    for (Py_ssize_t i = 0; i < n; ++i) {
        PyObject* item = items[i];
        if (!PyUnicode_Check(item))
            throw py::type_error(std::string(name) + ": expected str items, got " +
                                 Py_TYPE(item)->tp_name + " at position " + std::to_string(i));
        Py_ssize_t len = 0;
        const char* utf8 = PyUnicode_AsUTF8AndSize(item, &len);
        if (!utf8) throw py::error_already_set();
        buf->append(utf8, size_t(len));
        (*offsets)[size_t(i) + 1] = int64_t(buf->size());
    }
}

}  // namespace

void register_hash(py::module_& m) {
    m.def(
        "murmurhash3_128",
        [](py::handle keys_obj, int64_t seed) {
            auto keys = bind::as_array<uint64_t>(keys_obj, "keys", 1);
            uint32_t s = as_seed32(seed);
            int64_t n = keys.shape(0);
            auto out = new_output<uint32_t>({n, 4});
            const uint64_t* kp = keys.data();
            uint32_t* op = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                murmur3_128_u64(kp, n, s, op);
            }
            return out;
        },
        py::arg("keys"), py::arg("seed"),
        "MurmurHash3 x64_128 of each uint64 key (8 little-endian bytes): uint32 [n, 4].");

    m.def(
        "hash_embed",
        [](py::handle ids_obj, int64_t seed, py::handle table_obj) {
            auto ids = bind::as_array<uint64_t>(ids_obj, "ids", 1);
            auto table = bind::as_array<float>(table_obj, "table", 2);
            uint32_t s = as_seed32(seed);
            int64_t rows = table.shape(0), dim = table.shape(1);
            if (rows < 1 || rows > int64_t(0xffffffffLL))
                throw py::value_error("table: needs between 1 and 2**32 - 1 rows, got " +
                                      std::to_string(rows));
            int64_t n = ids.shape(0);
            auto out = new_output<float>({n, dim});
            const uint64_t* ip = ids.data();
            const float* tp = table.data();
            float* op = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                hash_embed(ip, n, s, tp, uint64_t(rows), dim, op);
            }
            return out;
        },
        py::arg("ids"), py::arg("seed"), py::arg("table"),
        "Sum of the 4 rows table[h % rows] of murmurhash3_128(id, seed): float32 [n, dim].");

    m.def(
        "murmurhash64a",
        [](py::bytes data, py::handle offsets_obj, uint64_t seed) {
            char* buf = nullptr;
            Py_ssize_t len = 0;
            if (PyBytes_AsStringAndSize(data.ptr(), &buf, &len) != 0) throw py::error_already_set();
            auto offsets = bind::as_array<int64_t>(offsets_obj, "offsets", 1);
            check_offsets(offsets, int64_t(len), "offsets");
            int64_t n = offsets.shape(0) - 1;
            py::array_t<uint64_t> out(n);
            const int64_t* op = offsets.data();
            uint64_t* hp = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                murmurhash64a_batch(buf, op, n, seed, hp);
            }
            return out;
        },
        py::arg("data"), py::arg("offsets"), py::arg("seed"),
        "MurmurHash64A of data[offsets[i]:offsets[i+1]] for each i: uint64 [len(offsets) - 1].");

    m.def(
        "hash_strings",
        [](py::handle strings, uint64_t seed) {
            std::string buf;
            std::vector<int64_t> offsets;
            gather_utf8(strings, "strings", &buf, &offsets);
            int64_t n = int64_t(offsets.size()) - 1;
            auto out = new_output<uint64_t>({n});
            uint64_t* hp = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                murmurhash64a_batch(buf.data(), offsets.data(), n, seed, hp);
            }
            return out;
        },
        py::arg("strings"), py::arg("seed"),
        "MurmurHash64A of each str's UTF-8 bytes: uint64 [len(strings)].");

    m.def(
        "fasttext_subwords",
        [](py::handle words, int minn, int maxn, int64_t bucket, int64_t nwords) {
            std::string data;
            std::vector<int64_t> offsets;
            gather_utf8(words, "words", &data, &offsets);
            const char* buf = data.data();
            if (minn < 0 || maxn < 0) throw py::value_error("minn and maxn must be >= 0");
            if (bucket < 1 || bucket > int64_t(0x7fffffffLL))
                throw py::value_error("bucket must be in [1, 2**31), got " + std::to_string(bucket));
            if (nwords < 0) throw py::value_error("nwords must be >= 0");
            int64_t n = int64_t(offsets.size()) - 1;
            std::vector<int64_t> ids, word_offsets;
            const int64_t* op = offsets.data();
            {
                py::gil_scoped_release nogil;
                fasttext_subwords(buf, op, n, minn, maxn, uint32_t(bucket), nwords, &ids,
                                  &word_offsets);
            }
            py::array_t<int64_t> ids_arr(int64_t(ids.size()));
            std::copy(ids.begin(), ids.end(), ids_arr.mutable_data());
            py::array_t<int64_t> off_arr(int64_t(word_offsets.size()));
            std::copy(word_offsets.begin(), word_offsets.end(), off_arr.mutable_data());
            return py::make_tuple(ids_arr, off_arr);
        },
        py::arg("words"), py::arg("minn"), py::arg("maxn"), py::arg("bucket"), py::arg("nwords"),
        "fastText subword ids of each UTF-8 word: (ids int64, word offsets int64 [n + 1]).");

    m.def(
        "fnv1a_fasttext",
        [](py::bytes data) {
            char* buf = nullptr;
            Py_ssize_t len = 0;
            if (PyBytes_AsStringAndSize(data.ptr(), &buf, &len) != 0) throw py::error_already_set();
            return fnv1a_fasttext(buf, size_t(len));
        },
        py::arg("data"), "fastText's Dictionary::hash (FNV-1a 32-bit, bytes sign-extended).");

    m.def(
        "embedding_bag",
        [](py::handle table_obj, py::handle ids_obj, py::handle offsets_obj, py::object weights_obj,
           int mode) {
            auto table = bind::as_array<float>(table_obj, "table", 2);
            auto ids = bind::as_array<int64_t>(ids_obj, "ids", 1);
            auto offsets = bind::as_array<int64_t>(offsets_obj, "offsets", 1);
            if (mode != 0 && mode != 1) throw py::value_error("mode must be 0 (sum) or 1 (mean)");
            int64_t rows = table.shape(0), dim = table.shape(1), n = ids.shape(0);
            check_offsets(offsets, n, "offsets");
            int64_t n_bags = offsets.shape(0) - 1;
            py::array_t<float, py::array::c_style> weights;
            const float* wp = optional_weights(weights_obj, n, &weights);
            const int64_t* ip = ids.data();
            check_ids_in_range(ip, n, rows);
            auto out = new_output<float>({n_bags, dim});
            const float* tp = table.data();
            const int64_t* offp = offsets.data();
            float* op = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                embedding_bag(tp, rows, dim, ip, offp, n_bags, wp, static_cast<BagMode>(mode), op);
            }
            return out;
        },
        py::arg("table"), py::arg("ids"), py::arg("offsets"), py::arg("weights"), py::arg("mode"),
        "EmbeddingBag: offsets has n_bags + 1 entries (the last = len(ids)); float32 [n_bags, dim].");

    m.def(
        "qr_embedding_bag",
        [](py::handle q_obj, py::handle r_obj, int64_t num_embeddings, py::handle ids_obj,
           py::handle offsets_obj, py::object weights_obj, int mode, int op) {
            auto q = bind::as_array<float>(q_obj, "q_table", 2);
            auto r = bind::as_array<float>(r_obj, "r_table", 2);
            auto ids = bind::as_array<int64_t>(ids_obj, "ids", 1);
            auto offsets = bind::as_array<int64_t>(offsets_obj, "offsets", 1);
            if (mode != 0 && mode != 1) throw py::value_error("mode must be 0 (sum) or 1 (mean)");
            if (op < 0 || op > 2) throw py::value_error("op must be 0 (mult), 1 (add) or 2 (concat)");
            int64_t m_rows = r.shape(0), width = r.shape(1), n = ids.shape(0);
            if (q.shape(1) != width) throw py::value_error("q_table and r_table widths differ");
            if (m_rows < 1) throw py::value_error("r_table: needs at least one row");
            if (num_embeddings < 1 || (num_embeddings + m_rows - 1) / m_rows > q.shape(0))
                throw py::value_error("q_table: too few rows for num_embeddings");
            check_offsets(offsets, n, "offsets");
            int64_t n_bags = offsets.shape(0) - 1;
            py::array_t<float, py::array::c_style> weights;
            const float* wp = optional_weights(weights_obj, n, &weights);
            const int64_t* ip = ids.data();
            check_ids_in_range(ip, n, num_embeddings);
            int64_t out_w = op == 2 ? 2 * width : width;
            auto out = new_output<float>({n_bags, out_w});
            const float* qp = q.data();
            const float* rp = r.data();
            const int64_t* offp = offsets.data();
            float* op_ = out.mutable_data();
            {
                py::gil_scoped_release nogil;
                qr_embedding_bag(qp, rp, width, m_rows, ip, offp, n_bags, wp,
                                 static_cast<BagMode>(mode), static_cast<QrOp>(op), op_);
            }
            return out;
        },
        py::arg("q_table"), py::arg("r_table"), py::arg("num_embeddings"), py::arg("ids"),
        py::arg("offsets"), py::arg("weights"), py::arg("mode"), py::arg("op"),
        "Quotient-remainder embedding bags; offsets has n_bags + 1 entries.");
}

}  // namespace embedrt
