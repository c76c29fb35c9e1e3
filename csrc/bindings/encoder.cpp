#include "bindings/common.h"

namespace embedrt {

void register_encoder(py::module_& m) {}

}  // namespace embedrt
