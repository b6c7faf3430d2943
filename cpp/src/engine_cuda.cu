// CUDA engine: one kernel launch per step writes every group's LR. The step counter lives in device
// memory, so the launch can be captured in a CUDA graph and replayed with no host involvement.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "torchsched/engine.hpp"

namespace torchsched {

namespace {

constexpr int kThreads = 256;

void check(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(err));
}

// Every block reads the old step first; the last block to finish publishes the new one. That keeps a
// single launch correct for any number of groups without a grid-wide barrier.
__global__ void advance_kernel(const Op* ops, const double* aux, const int32_t* roots, const double* scale,
                               int64_t groups, int64_t* step, unsigned int* blocks_done, double* mirror,
                               void* out, int32_t dtype, bool read_prev, const float* found_inf,
                               bool advance) {
  __shared__ int64_t t_shared;
  __shared__ bool last_block;
  if (threadIdx.x == 0) {
    bool skip = (found_inf != nullptr) && (*found_inf != 0.0f);  // GradScaler skipped the update
    t_shared = *(volatile int64_t*)step + ((advance && !skip) ? 1 : 0);
  }
  __syncthreads();
  const int64_t t = t_shared;
  const int64_t g = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (g < groups) {
    float* out32 = static_cast<float*>(out);
    double* out64 = static_cast<double*>(out);
    double prev = mirror[g];
    if (read_prev) prev = (dtype == DT_FLOAT32) ? static_cast<double>(out32[g]) : out64[g];
    double lr = scale[g] * evaluate(ops, aux, roots[g], static_cast<double>(t), Ctx{prev});
    mirror[g] = lr;
    if (dtype == DT_FLOAT32) out32[g] = static_cast<float>(lr);
    else out64[g] = lr;
  }
  if (threadIdx.x == 0) {
    __threadfence();
    unsigned int done = atomicAdd(blocks_done, 1u);
    last_block = (done == gridDim.x - 1);
  }
  __syncthreads();
  if (last_block && threadIdx.x == 0) {
    *step = t;
    *blocks_done = 0u;  // ready for the next launch (or graph replay)
  }
}

}  // namespace

bool cuda_built() { return true; }

bool cuda_available() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return false;
  }
  return count > 0;
}

void advance_groups_cuda(const Op* ops, const double* aux, const int32_t* roots, const double* scale,
                         int64_t groups, int64_t* step, unsigned int* blocks_done, double* mirror,
                         void* out, int32_t dtype, bool read_prev, const float* found_inf,
                         bool advance, std::uintptr_t stream) {
  if (groups < 1) throw std::invalid_argument("groups must be >= 1");
  const int64_t blocks = (groups + kThreads - 1) / kThreads;
  if (blocks > 0x7fffffff) throw std::invalid_argument("too many groups for one launch");
  advance_kernel<<<static_cast<unsigned int>(blocks), kThreads, 0, reinterpret_cast<cudaStream_t>(stream)>>>(
      ops, aux, roots, scale, groups, step, blocks_done, mirror, out, dtype, read_prev, found_inf, advance);
  check(cudaGetLastError(), "torchsched CUDA launch failed");
}

}  // namespace torchsched
