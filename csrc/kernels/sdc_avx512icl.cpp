// SDC tiles with VPOPCNTQ (Ice Lake, Zen 4 and later).
#define EMBEDRT_POPCNT64(v) _mm512_popcnt_epi64(v)
#define EMBEDRT_SDC_FN sdc_tile_avx512icl
#include "kernels/sdc_avx512.inc"
