// Scoring of int8 vectors (one float32 scale each) against queries, for Int8Index and the
// rescoring stage of the two-stage Index.
//
// Queries are given in 16-bit fixed point: q16[k] = rint(q[k] / q_scale) with
// |q16| <= int8_q16_max(dim), so that dot(q16, doc) is exact in int32 on every path
// (|doc| <= 128). Query rows are zero padded to int8_q16_stride(dim) entries. The score of
// document i for query j is
//     score = (q_scale[j] * doc_scale[i]) * float(dot(q16[j], doc[i]))
// computed with the same float operations everywhere, so results are identical on every ISA
// path. A float query keeps ~15 bits of precision: the score error is dominated by the int8
// documents, not by the query.
#pragma once

#include <cstdint>

namespace embedrt {

// Largest |q16| for which dim products with |doc| <= 128 cannot overflow int32 (<= 32767).
int64_t int8_q16_max(int64_t dim);
// Row stride of query arrays: dim rounded up to a multiple of 32.
int64_t int8_q16_stride(int64_t dim);

// out[j * ldo + t] = dot(q16[j], docs[row_t]) for j < nq, t < n, where row_t = ids[t] if ids
// is not null, else t. docs: [*, dim] int8 rows (stride dim). Runs on the calling thread.
void int8_dot_q16(const int16_t* q16, int64_t nq, const int8_t* docs, int64_t dim,
                  const int64_t* ids, int64_t n, int32_t* out, int64_t ldo);

// Exact top-k by score (descending, ties by smaller id) over all n documents, for nq queries:
// out_scores / out_ids [nq][k] (k <= n). One pass over the documents, split in blocks over the
// worker pool; each block keeps its own top-k and the blocks are merged.
void int8_search_q16(const int16_t* q16, const float* q_scale, int64_t nq, const int8_t* docs,
                     const float* doc_scale, int64_t n, int64_t dim, int64_t k, float* out_scores,
                     int64_t* out_ids);

// Rescoring: for each query j, scores the c candidate ids cand[j * c ..] (negative ids are
// skipped) and keeps the best k (descending, ties by smaller id). Missing results (fewer
// valid candidates than k) get score -inf and id -1. Threaded over queries.
void int8_rescore_q16(const int16_t* q16, const float* q_scale, int64_t nq, const int8_t* docs,
                      const float* doc_scale, int64_t n, int64_t dim, const int64_t* cand,
                      int64_t c, int64_t k, float* out_scores, int64_t* out_ids);

// Reads every byte of [p, p + nbytes) once over the worker pool and returns their xor
// folded to 64 bits: the reference for memory read bandwidth in benchmarks.
uint64_t int8_stream_read(const uint8_t* p, int64_t nbytes);

// Per-ISA dot kernels (int8_scan_<isa>.cpp), same contract as int8_dot_q16.
void int8_dot_q16_scalar(const int16_t* q16, int64_t nq, const int8_t* docs, int64_t dim,
                         const int64_t* ids, int64_t n, int32_t* out, int64_t ldo);
void int8_dot_q16_avx2(const int16_t* q16, int64_t nq, const int8_t* docs, int64_t dim,
                       const int64_t* ids, int64_t n, int32_t* out, int64_t ldo);
void int8_dot_q16_avx512(const int16_t* q16, int64_t nq, const int8_t* docs, int64_t dim,
                         const int64_t* ids, int64_t n, int32_t* out, int64_t ldo);
void int8_dot_q16_avx512vnni(const int16_t* q16, int64_t nq, const int8_t* docs, int64_t dim,
                             const int64_t* ids, int64_t n, int32_t* out, int64_t ldo);
void int8_dot_q16_neon(const int16_t* q16, int64_t nq, const int8_t* docs, int64_t dim,
                       const int64_t* ids, int64_t n, int32_t* out, int64_t ldo);

}  // namespace embedrt
