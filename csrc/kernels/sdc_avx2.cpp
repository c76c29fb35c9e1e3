// AVX2 SDC tile kernels.
//
// Table lookups (sdc_lut_tile_avx2, the blocks32 layout): per query one 16-entry table per
// nibble of a plane (4 dimensions), its entries the exact integer contribution of those
// dimensions; one VPSHUFB looks up 32 nibbles of one plane byte at once (16 codes x 2
// nibbles), 32 codes per block. Lookups are summed in bytes for K plane bytes (at most
// 8 K (2^u - 1) <= 255), the two nibble halves then added into one byte vector per block
// (bytes: codes 0-15 | 16-31) and widened into 16-bit sums of even and odd bytes (the high
// bytes summed apart and subtracted back at the end, so each widening costs one shift and two
// adds); planes are weighted by doubling the 16-bit sums between planes (Horner). The 16-bit
// sums cover at most 65535 / (8 (2^u - 1)^2) plane bytes before they are folded into 32 bits,
// so nothing overflows for any width.
//
// (The nibble-count popcount tiles over the groups8 layout that this file held before ran
// 1.3x-3.4x slower; the AVX2 and AVX-512-without-VPOPCNTDQ levels run the table scan.)
#include <immintrin.h>

#include "kernels/sdc.h"

namespace embedrt {
namespace {

template <int U, int Q>
void lut_q(const uint8_t* lut, const int32_t* bias, const uint8_t* dbblk, int64_t blocks,
           int64_t nb, int32_t* x, int64_t ldx, const int32_t* thr, uint8_t* mask, int64_t ldm) {
    constexpr int kTop = (1 << U) - 1;
    constexpr int64_t K = 255 / (8 * kTop);                // plane bytes per byte-sum run
    constexpr int64_t kChunk = 65535 / (8 * kTop * kTop);  // plane bytes per 16-bit run
    const __m256i low = _mm256_set1_epi8(0x0f);
    const int64_t rows = static_cast<int64_t>(U) * nb;
    const int64_t qs = nb * 32;
    for (int64_t blk = 0; blk < blocks; ++blk) {
        const uint8_t* db = dbblk + blk * rows * 32;
        if (Q == 1 && blk + 2 < blocks) {  // few queries: the scan streams; ask for blocks ahead
            const char* pf = reinterpret_cast<const char*>(db + 2 * rows * 32);
            for (int64_t o = 0; o < rows * 32; o += 64) _mm_prefetch(pf + o, _MM_HINT_T0);
        }
        __m256i z[Q][4];
        for (int q = 0; q < Q; ++q)
            for (int g = 0; g < 4; ++g) z[q][g] = _mm256_setzero_si256();
        for (int64_t c0 = 0; c0 < nb; c0 += kChunk) {
            const int64_t c1 = nb - c0 < kChunk ? nb : c0 + kChunk;
            __m256i a[Q], h[Q];  // 16-bit sums of the byte pairs, and of their high bytes
            for (int q = 0; q < Q; ++q) a[q] = h[q] = _mm256_setzero_si256();
            for (int p = 0; p < U; ++p) {
                if (p)
                    for (int q = 0; q < Q; ++q) {
                        a[q] = _mm256_add_epi16(a[q], a[q]);
                        h[q] = _mm256_add_epi16(h[q], h[q]);
                    }
                const uint8_t* dp = db + p * nb * 32;
                for (int64_t s0 = c0; s0 < c1; s0 += K) {
                    const int64_t s1 = c1 - s0 < K ? c1 : s0 + K;
                    __m256i lo[Q], hi[Q];
                    for (int q = 0; q < Q; ++q) lo[q] = hi[q] = _mm256_setzero_si256();
                    for (int64_t b = s0; b < s1; ++b) {
                        const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(dp + b * 32));
                        const __m256i il = _mm256_and_si256(v, low);
                        const __m256i ih = _mm256_and_si256(_mm256_srli_epi16(v, 4), low);
                        for (int q = 0; q < Q; ++q) {
                            const __m256i t =
                                _mm256_loadu_si256(reinterpret_cast<const __m256i*>(lut + q * qs + b * 32));
                            lo[q] = _mm256_add_epi8(lo[q], _mm256_shuffle_epi8(t, il));
                            hi[q] = _mm256_add_epi8(hi[q], _mm256_shuffle_epi8(t, ih));
                        }
                    }
                    for (int q = 0; q < Q; ++q) {
                        // bytes: codes 0-15 (both nibble halves) | codes 16-31
                        const __m256i r = _mm256_add_epi8(_mm256_permute2x128_si256(lo[q], hi[q], 0x20),
                                                          _mm256_permute2x128_si256(lo[q], hi[q], 0x31));
                        a[q] = _mm256_add_epi16(a[q], r);
                        h[q] = _mm256_add_epi16(h[q], _mm256_srli_epi16(r, 8));
                    }
                }
            }
            for (int q = 0; q < Q; ++q) {
                // even bytes = codes w, odd bytes = codes 8 + w (per 16-byte half)
                const __m256i even = _mm256_sub_epi16(a[q], _mm256_slli_epi16(h[q], 8));
                const __m256i odd = h[q];
                z[q][0] = _mm256_add_epi32(z[q][0], _mm256_cvtepu16_epi32(_mm256_castsi256_si128(even)));
                z[q][1] = _mm256_add_epi32(z[q][1], _mm256_cvtepu16_epi32(_mm256_castsi256_si128(odd)));
                z[q][2] = _mm256_add_epi32(z[q][2], _mm256_cvtepu16_epi32(_mm256_extracti128_si256(even, 1)));
                z[q][3] = _mm256_add_epi32(z[q][3], _mm256_cvtepu16_epi32(_mm256_extracti128_si256(odd, 1)));
            }
        }
        for (int q = 0; q < Q; ++q) {
            const __m256i bq = _mm256_set1_epi32(bias[q]);
            int32_t* out = x + q * ldx + blk * 32;
            unsigned bits = 0;
            for (int g = 0; g < 4; ++g) {
                const __m256i xs = _mm256_sub_epi32(bq, z[q][g]);
                _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + 8 * g), xs);
                if (mask) {
                    const __m256i th = _mm256_set1_epi32(thr[q]);
                    bits = static_cast<unsigned>(
                        _mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpgt_epi32(th, xs))));
                    mask[q * ldm + blk * 4 + g] = static_cast<uint8_t>(bits);
                }
            }
        }
    }
}

template <int U>
void lut_u(const uint8_t* lut, const int32_t* bias, int64_t m, const uint8_t* dbblk, int64_t blocks,
           int64_t nb, int32_t* x, int64_t ldx, const int32_t* thr, uint8_t* mask, int64_t ldm) {
    // 3 queries share each load and nibble split of the codes (their 12 accumulators fit
    // the 16 ymm registers); the rest 2 or 1 at a time.
    const int64_t qs = nb * 32;
    int64_t i = 0;
    for (; i + 3 <= m; i += 3)
        lut_q<U, 3>(lut + i * qs, bias + i, dbblk, blocks, nb, x + i * ldx, ldx, thr ? thr + i : nullptr,
                    mask ? mask + i * ldm : nullptr, ldm);
    if (i + 2 <= m) {
        lut_q<U, 2>(lut + i * qs, bias + i, dbblk, blocks, nb, x + i * ldx, ldx, thr ? thr + i : nullptr,
                    mask ? mask + i * ldm : nullptr, ldm);
        i += 2;
    }
    if (i < m)
        lut_q<U, 1>(lut + i * qs, bias + i, dbblk, blocks, nb, x + i * ldx, ldx, thr ? thr + i : nullptr,
                    mask ? mask + i * ldm : nullptr, ldm);
}

}  // namespace

void sdc_pack32_avx2(const uint8_t* const code[32], int64_t r0, int64_t r1, uint8_t* out) {
    // r1 - r0: a multiple of 16
    // 16 plane bytes at a time: row i of a 16 x 16 byte matrix holds bytes [r, r + 16) of code
    // sdc_lut_code(i) (low 128 bits) and of code 16 + sdc_lut_code(i) (high 128 bits); the
    // transpose (4 rounds of unpacks) gives per plane byte t the 16 bytes of both codes sets,
    // which are then split into nibbles and merged as the layout wants.
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i high = _mm256_set1_epi8(static_cast<char>(0xf0));
    for (int64_t r = r0; r < r1; r += 16) {
        __m256i v[16];
        for (int i = 0; i < 16; ++i) {
            const int ca = sdc_lut_code(i);
            const __m128i a = code[ca] ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(code[ca] + r))
                                       : _mm_setzero_si128();
            const __m128i b = code[16 + ca]
                                  ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(code[16 + ca] + r))
                                  : _mm_setzero_si128();
            v[i] = _mm256_inserti128_si256(_mm256_castsi128_si256(a), b, 1);
        }
        __m256i t[16];
        for (int i = 0; i < 8; ++i) {
            t[2 * i] = _mm256_unpacklo_epi8(v[2 * i], v[2 * i + 1]);
            t[2 * i + 1] = _mm256_unpackhi_epi8(v[2 * i], v[2 * i + 1]);
        }
        for (int i = 0; i < 4; ++i)
            for (int j = 0; j < 2; ++j) {
                v[4 * i + 2 * j] = _mm256_unpacklo_epi16(t[4 * i + j], t[4 * i + j + 2]);
                v[4 * i + 2 * j + 1] = _mm256_unpackhi_epi16(t[4 * i + j], t[4 * i + j + 2]);
            }
        for (int i = 0; i < 2; ++i)
            for (int j = 0; j < 4; ++j) {
                t[8 * i + 2 * j] = _mm256_unpacklo_epi32(v[8 * i + j], v[8 * i + j + 4]);
                t[8 * i + 2 * j + 1] = _mm256_unpackhi_epi32(v[8 * i + j], v[8 * i + j + 4]);
            }
        for (int j = 0; j < 8; ++j) {
            v[2 * j] = _mm256_unpacklo_epi64(t[j], t[j + 8]);
            v[2 * j + 1] = _mm256_unpackhi_epi64(t[j], t[j + 8]);
        }
        // v[k]: plane byte r + k of the 16 codes of each set (low half: set a, high half: b)
        for (int k = 0; k < 16; ++k) {
            const int64_t row = r + k;
            const __m256i a = v[k];
            const __m256i b = _mm256_permute2x128_si256(a, a, 0x01);
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(a, 4), low),
                                               _mm256_and_si256(b, high));
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(a, low),
                                               _mm256_and_si256(_mm256_slli_epi16(b, 4), high));
            const __m256i o = _mm256_inserti128_si256(hi, _mm256_castsi256_si128(lo), 1);
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + row * 32), o);
        }
    }
}

void sdc_lut_tile_avx2(const uint8_t* lut, const int32_t* bias, int64_t m, const uint8_t* dbblk,
                       int64_t blocks, int u, int64_t nb, int32_t* x, int64_t ldx,
                       const int32_t* thr, uint8_t* mask, int64_t ldm) {
    switch (u) {
        case 1: lut_u<1>(lut, bias, m, dbblk, blocks, nb, x, ldx, thr, mask, ldm); break;
        case 2: lut_u<2>(lut, bias, m, dbblk, blocks, nb, x, ldx, thr, mask, ldm); break;
        case 3: lut_u<3>(lut, bias, m, dbblk, blocks, nb, x, ldx, thr, mask, ldm); break;
        default: lut_u<4>(lut, bias, m, dbblk, blocks, nb, x, ldx, thr, mask, ldm); break;
    }
}

}  // namespace embedrt
