// torchsched engines: the loop over param groups, on the host and (when built) as one CUDA kernel.
// Both call the formulas in formulas.hpp and nothing else.
#pragma once

#include <cstdint>

#include "formulas.hpp"

namespace torchsched {

// Element type of a destination buffer (the LR tensors the optimizer reads).
enum DType : int32_t { DT_FLOAT32 = 0, DT_FLOAT64 = 1 };

// Rejects a malformed program with std::invalid_argument: unknown codes, subtree sizes that do not
// nest, tables out of bounds, nesting deeper than kMaxDepth, non-finite parameters, roots out of range.
void validate_program(const Op* ops, int64_t n_ops, int64_t n_aux, const double* aux,
                      const int32_t* roots, int64_t n_roots);

// The program's value at each of `steps` (all >= 0), into out[n]. Throws on a non-finite value.
void evaluate_steps(const Op* ops, const double* aux, int32_t root, const int64_t* steps, int64_t n,
                    double prev, double* out);

// The same at steps start, start + stride, ... (n of them; start >= 0, stride >= 1).
void evaluate_range(const Op* ops, const double* aux, int32_t root, int64_t start, int64_t stride, int64_t n,
                    double prev, double* out);

// One past the largest signal slot the program's SIGNAL leaves read (0: no signal-driven leaf): the row
// length a factor table must have.
int64_t signal_slots(const Op* ops, int64_t n_ops);

// out[g] = scale[g] * program_g(step) for every group g, in float64 into `mirror` and in `dtype` into
// `out`. SIGNAL leaves of group g read signals[g * slots + slot] (signals may be null: every factor 1). prev (for chainable rules) comes from `out` when read_prev is set, otherwise from `mirror`.
// All or nothing: when any LR would be non-finite (or overflow float32 in a float32 `out`), it throws
// std::invalid_argument naming the group and stores nothing.
void write_groups_cpu(const Op* ops, const double* aux, const int32_t* roots, const double* scale,
                      int64_t groups, int64_t step, double* mirror, void* out, int32_t dtype,
                      bool read_prev, const double* signals = nullptr, int64_t slots = 0);

// The CUDA engine: one launch on `stream` (a cudaStream_t as an integer). Every pointer is device
// memory; `blocks_done` must be zero before the first launch (the kernel leaves it zero). With
// `advance`, the launch moves *step on by one and writes every group's LR for the new step, unless
// *found_inf (float32, may be null) is non-zero: then it writes nothing and holds the step (the
// optimizer skipped it). Without `advance`, it rewrites the LRs of the current step. `signals` (device
// memory, may be null) is the factor table as write_groups_cpu reads it. A group whose LR would not be
// finite (or would overflow a float32 buffer) keeps the LR it had: a kernel cannot raise. Launch errors
// raise std::runtime_error with the CUDA error string. Only defined when built with CUDA.
bool cuda_built();
bool cuda_available();
void advance_groups_cuda(const Op* ops, const double* aux, const int32_t* roots, const double* scale,
                         int64_t groups, int64_t* step, unsigned int* blocks_done, double* mirror,
                         void* out, int32_t dtype, bool read_prev, const float* found_inf,
                         bool advance, std::uintptr_t stream, const double* signals = nullptr,
                         int64_t slots = 0);

}  // namespace torchsched
