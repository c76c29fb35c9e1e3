#include "bindings/common.h"

PYBIND11_MODULE(_core, m) {
    m.doc() = "embedrt native core: run-time dispatched SIMD kernels";
    embedrt::register_runtime(m);
    embedrt::register_bits(m);
    embedrt::register_int8(m);
    embedrt::register_sdc(m);
    embedrt::register_hash(m);
    embedrt::register_encoder(m);
    embedrt::register_encoder_ops(m);
}
