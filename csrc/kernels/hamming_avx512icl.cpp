// Hamming scan with VPOPCNTQ (Ice Lake, Zen 4 and later).
#define EMBEDRT_POPCNT64(v) _mm512_popcnt_epi64(v)
#define EMBEDRT_HAMMING_FN hamming_scan_avx512icl
#include "kernels/hamming_avx512.inc"
