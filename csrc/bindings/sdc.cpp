#include "bindings/common.h"

namespace embedrt {

void register_sdc(py::module_& m) {}

}  // namespace embedrt
