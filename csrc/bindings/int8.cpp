#include "bindings/common.h"

namespace embedrt {

void register_int8(py::module_& m) {}

}  // namespace embedrt
