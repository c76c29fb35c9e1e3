// Sign binarization into packed bit codes: bit = (x > 0), MSB-first within a byte, the
// unused low bits of the last byte zero: exactly numpy.packbits(x > 0, axis=-1).
#pragma once

#include <cstdint>

namespace embedrt {

// x [n, d] row-major -> out [n, ceil(d / 8)]. Return false (out undefined) when x holds a NaN.
bool pack_bits_f32(const float* x, int64_t n, int64_t d, uint8_t* out);
bool pack_bits_f64(const double* x, int64_t n, int64_t d, uint8_t* out);
// Any nonzero byte is a 1 bit (numpy bool arrays).
void pack_bits_u8(const uint8_t* x, int64_t n, int64_t d, uint8_t* out);

// codes [n, nbytes] -> out [n, d] of 0/1 bytes (d <= 8 * nbytes), as numpy.unpackbits(count=d).
void unpack_bits(const uint8_t* codes, int64_t n, int64_t nbytes, int64_t d, uint8_t* out);

// Per-ISA row kernels (rows [0, n) of one contiguous block). Return false on NaN.
bool pack_bits_f32_scalar(const float* x, int64_t n, int64_t d, uint8_t* out);
bool pack_bits_f32_avx2(const float* x, int64_t n, int64_t d, uint8_t* out);
bool pack_bits_f32_avx512(const float* x, int64_t n, int64_t d, uint8_t* out);
bool pack_bits_f32_neon(const float* x, int64_t n, int64_t d, uint8_t* out);  // aarch64 builds only

}  // namespace embedrt
