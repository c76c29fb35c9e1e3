// Bits set in each 64-bit lane of a zmm register with AVX512-BW only (no VPOPCNTDQ): nibble
// lookups (vpshufb), summed per lane by vpsadbw. For files compiled with the avx512 (Skylake-SP)
// flags: the Hamming and SDC variants of avx512-skx and avx512-vnni.
#pragma once

#include <immintrin.h>

namespace embedrt {

inline __m512i popcnt64_bw(__m512i v) {
    const __m512i lut = _mm512_broadcast_i32x4(_mm_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4));
    const __m512i low = _mm512_set1_epi8(0x0f);
    const __m512i lo = _mm512_and_si512(v, low);
    const __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
    const __m512i c = _mm512_add_epi8(_mm512_shuffle_epi8(lut, lo), _mm512_shuffle_epi8(lut, hi));
    return _mm512_sad_epu8(c, _mm512_setzero_si512());
}

}  // namespace embedrt
