// Shared helpers for the pybind11 layer: argument checks and numpy <-> pointer plumbing.
// No arithmetic lives in bindings/; kernels hold no Python.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <cstring>
#include <vector>
#include <string>

namespace py = pybind11;

namespace embedrt {
namespace bind {

template <class T>
inline const char* dtype_name() {
    if (std::is_same<T, uint8_t>::value) return "uint8";
    if (std::is_same<T, int8_t>::value) return "int8";
    if (std::is_same<T, uint16_t>::value) return "uint16";
    if (std::is_same<T, int16_t>::value) return "int16";
    if (std::is_same<T, uint32_t>::value) return "uint32";
    if (std::is_same<T, int32_t>::value) return "int32";
    if (std::is_same<T, uint64_t>::value) return "uint64";
    if (std::is_same<T, int64_t>::value) return "int64";
    if (std::is_same<T, float>::value) return "float32";
    if (std::is_same<T, double>::value) return "float64";
    if (std::is_same<T, bool>::value) return "bool";
    return "?";
}

// A C-contiguous array of exactly element type T. Raises TypeError when `obj` is not a numpy
// array of that dtype (values are never converted between types), ValueError when ndim
// differs (ndim < 0: any). Non-contiguous, byte-swapped or misaligned inputs (a view at an odd
// offset of a buffer, e.g. a safetensors tensor) are copied, so kernels only ever read
// naturally aligned elements.
template <class T>
py::array_t<T, py::array::c_style> as_array(const py::handle& obj, const char* name, int ndim) {
    if (!py::isinstance<py::array>(obj))
        throw py::type_error(std::string(name) + ": expected a numpy array of dtype " + dtype_name<T>());
    auto arr = py::reinterpret_borrow<py::array>(obj);
    py::dtype want = py::dtype::of<T>();
    if (arr.dtype().kind() != want.kind() || arr.dtype().itemsize() != want.itemsize())
        throw py::type_error(std::string(name) + ": expected dtype " + dtype_name<T>() + ", got " +
                             std::string(py::str(arr.dtype())));
    if (ndim >= 0 && arr.ndim() != ndim)
        throw py::value_error(std::string(name) + ": expected a " + std::to_string(ndim) +
                              "-D array, got " + std::to_string(arr.ndim()) + "-D");
    auto out = py::array_t<T, py::array::c_style>::ensure(arr);
    if (reinterpret_cast<uintptr_t>(out.data()) % alignof(T) != 0) {
        py::array_t<T, py::array::c_style> copy(std::vector<py::ssize_t>(out.shape(), out.shape() + out.ndim()));
        std::memcpy(copy.mutable_data(), out.data(), static_cast<size_t>(out.nbytes()));
        return copy;
    }
    return out;
}

}  // namespace bind

// One registration function per kernel family (csrc/bindings/<family>.cpp).
void register_runtime(py::module_& m);
void register_bits(py::module_& m);
void register_int8(py::module_& m);
void register_sdc(py::module_& m);
void register_hash(py::module_& m);
void register_encoder(py::module_& m);
void register_encoder_ops(py::module_& m);

}  // namespace embedrt
