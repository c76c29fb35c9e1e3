#include "bindings/common.h"

namespace embedrt {

void register_bits(py::module_& m) {}

}  // namespace embedrt
