#include "bindings/common.h"

namespace embedrt {

void register_hash(py::module_& m) {}

}  // namespace embedrt
