// Baseline (any x86-64 / armv8-a) encoder row operations.
#include "kernels/encoder_ops.h"

namespace embedrt {

#define ENC_FN(name) name##_scalar
#define ENC_GENERIC_SGEMM 1
#include "kernels/encoder_ops_generic.inc"

}  // namespace embedrt
