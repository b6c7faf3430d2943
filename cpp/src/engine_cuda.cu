// CUDA engine: one kernel launch per step writes every group's LR. The step counter lives in device
// memory, so the launch can be captured in a CUDA graph and replayed with no host involvement.
//
// Graph-capture safety: the launch takes only device pointers and by-value scalars, allocates
// nothing, never synchronizes and never reads host memory, so a captured launch replays exactly:
// each replay reads the step the previous replay published. The kernel self-resets its arrival
// counter, so replays need no memset node.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "torchsched/engine.hpp"

namespace torchsched {

namespace {

constexpr int kThreads = 256;

[[noreturn]] void fail(cudaError_t err, const char* what) {
  std::string msg = std::string("torchsched: ") + what + ": " + cudaGetErrorName(err) + ": " +
                    cudaGetErrorString(err);
  switch (err) {
    case cudaErrorInsufficientDriver:
    case cudaErrorCompatNotSupportedOnDevice:
      msg += " (no CUDA driver, or one older than the CUDA runtime " + std::to_string(CUDART_VERSION / 1000) + "." +
             std::to_string((CUDART_VERSION % 1000) / 10) +
             " that the core links statically: update the driver, or rebuild torchsched with an nvcc the driver "
             "supports)";
      break;
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorInvalidDeviceFunction:
    case cudaErrorUnsupportedPtxVersion:
      msg += " (no kernel image for this GPU: rebuild with CMAKE_CUDA_ARCHITECTURES covering its compute "
             "capability, e.g. -Ccmake.define.CMAKE_CUDA_ARCHITECTURES=native)";
      break;
    case cudaErrorInvalidResourceHandle:
      msg += " (the stream does not belong to the current device: launch with the engine's device current)";
      break;
    default:
      break;
  }
  throw std::runtime_error(msg);
}

// One thread per group. Every block reads the step as it was before this launch; the last block to
// arrive publishes the new one. That keeps a single launch correct for any number of groups without a
// grid-wide barrier:
//  * a block reads *step (thread 0, first thing) before its arrival on blocks_done, with a device-scope
//    fence between the two; the last block publishes only after seeing every other arrival, with a
//    fence between that observation and its store. The two fences order every read before the store,
//    so no block can read the new step of this same launch.
//  * atomicInc wraps the counter back to 0 on the last arrival, so the next launch (or graph replay)
//    starts from 0 with no separate reset.
//  * LR and mirror writes are per group and read by no other block; the end of the kernel makes them
//    visible to whatever runs next on the stream (the optimizer).
// found_inf (float32, may be null): when `advance` is set and *found_inf is non-zero (or NaN), the
// optimizer skipped this step, so the launch holds the schedule: it writes nothing at all (rewriting
// would re-apply chainable rules that read the previous LR) and leaves the step where it was.
__global__ void __launch_bounds__(kThreads)
    advance_kernel(const Op* ops, const double* aux, const int32_t* roots, const double* scale, int64_t groups,
                   int64_t* step, unsigned int* blocks_done, double* mirror, void* out, int32_t dtype,
                   bool read_prev, const float* found_inf, bool advance, const double* signals,
                   int64_t slots) {
  __shared__ int64_t t_shared;
  __shared__ int skip_shared;
  __shared__ int last_shared;
  if (threadIdx.x == 0) {
    const bool skip = advance && found_inf != nullptr && !(*found_inf == 0.0f);
    skip_shared = skip ? 1 : 0;
    t_shared = *static_cast<volatile const int64_t*>(step) + (advance ? 1 : 0);
  }
  __syncthreads();
  if (skip_shared) return;  // the same answer in every block: nothing is written, nothing counted
  const int64_t t = t_shared;
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g < groups) {
    float* out32 = static_cast<float*>(out);
    double* out64 = static_cast<double*>(out);
    double prev = mirror[g];
    if (read_prev) prev = (dtype == DT_FLOAT32) ? static_cast<double>(out32[g]) : out64[g];
    const double* row = signals != nullptr ? signals + g * slots : nullptr;
    // torch's rules (the drop-ins) run in float32 arithmetic on float32 LRs, as torch computes them
    const double lr = scale[g] * evaluate(ops, aux, roots[g], time_at(t), Ctx{prev, row, dtype == DT_FLOAT32});
    // A learning rate is never non-finite: where this step's LR would be (or would overflow a float32
    // buffer), the group keeps the LR it has, and the optimizer never reads inf or NaN. (The host engine
    // refuses such a step before storing anything; a kernel cannot raise.)
    const bool fits = isfinite(lr) && (dtype != DT_FLOAT32 || isfinite(static_cast<float>(lr)));
    if (fits) {
      mirror[g] = lr;
      if (dtype == DT_FLOAT32) out32[g] = static_cast<float>(lr);
      else out64[g] = lr;
    }
  }
  if (threadIdx.x == 0) {
    __threadfence();  // this block's read of *step happens before its arrival
    const unsigned int arrived = atomicInc(blocks_done, gridDim.x - 1u);
    last_shared = (arrived == gridDim.x - 1u) ? 1 : 0;
  }
  __syncthreads();
  if (last_shared && threadIdx.x == 0) {
    __threadfence();  // every other block's arrival (hence its read) happens before this store
    *static_cast<volatile int64_t*>(step) = t;
  }
}

}  // namespace

bool cuda_built() { return true; }

bool cuda_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the "no device" / "insufficient driver" error so it is not reported later
    return false;
  }
  return count > 0;
}

void advance_groups_cuda(const Op* ops, const double* aux, const int32_t* roots, const double* scale,
                         int64_t groups, int64_t* step, unsigned int* blocks_done, double* mirror,
                         void* out, int32_t dtype, bool read_prev, const float* found_inf,
                         bool advance, std::uintptr_t stream, const double* signals, int64_t slots) {
  if (groups < 1) throw std::invalid_argument("groups must be >= 1, got " + std::to_string(groups));
  if (dtype != DT_FLOAT32 && dtype != DT_FLOAT64)
    throw std::invalid_argument("dtype code must be 0 (float32) or 1 (float64), got " + std::to_string(dtype));
  const int64_t blocks = (groups + kThreads - 1) / kThreads;
  if (blocks > 0x7fffffff) throw std::invalid_argument("too many groups for one launch: " + std::to_string(groups));
  advance_kernel<<<static_cast<unsigned int>(blocks), kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      ops, aux, roots, scale, groups, step, blocks_done, mirror, out, dtype, read_prev, found_inf, advance, signals,
      slots);
  // Launch errors only (bad configuration, no image for this GPU, bad stream); no synchronization, so
  // this is legal while the stream is being captured.
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) fail(err, "CUDA launch of advance_kernel failed");
}

}  // namespace torchsched
