// The CUDA entry points: cuda_available and advance_cuda (one launch per step); without a CUDA build
// they report False and say how to rebuild.
#include "bind_common.hpp"
#include "register.hpp"

namespace torchsched::bindings {
namespace {

bool core_cuda_available() {
#ifdef TORCHSCHED_WITH_CUDA
  return cuda_available();
#else
  return false;
#endif
}

void advance_cuda(std::uintptr_t ops, std::uintptr_t aux, std::uintptr_t roots, std::uintptr_t scale, int64_t groups,
                  std::uintptr_t step, std::uintptr_t blocks_done, std::uintptr_t mirror, std::uintptr_t out,
                  int32_t dtype, bool read_prev, std::uintptr_t found_inf, bool advance, std::uintptr_t stream,
                  std::uintptr_t signals, int64_t slots) {
#ifdef TORCHSCHED_WITH_CUDA
  check_dtype(dtype);
  if (!ops || !aux || !roots || !scale || !step || !blocks_done || !mirror || !out)
    throw std::invalid_argument("advance_cuda: a required device pointer is null");
  advance_groups_cuda(reinterpret_cast<const Op*>(ops), reinterpret_cast<const double*>(aux),
                      reinterpret_cast<const int32_t*>(roots), reinterpret_cast<const double*>(scale), groups,
                      reinterpret_cast<int64_t*>(step), reinterpret_cast<unsigned int*>(blocks_done),
                      reinterpret_cast<double*>(mirror), reinterpret_cast<void*>(out), dtype, read_prev,
                      reinterpret_cast<const float*>(found_inf), advance, stream,
                      reinterpret_cast<const double*>(signals), slots);
#else
  (void)ops; (void)aux; (void)roots; (void)scale; (void)groups; (void)step; (void)blocks_done; (void)mirror;
  (void)out; (void)dtype; (void)read_prev; (void)found_inf; (void)advance; (void)stream; (void)signals; (void)slots;
  throw std::runtime_error(
      "torchsched was built without CUDA; reinstall with nvcc on PATH and TORCHSCHED_CUDA=ON "
      "(pip install --force-reinstall --no-binary torchsched torchsched, or `make build` from a checkout)");
#endif
}

}  // namespace

void register_cuda(py::module_& m) {
  m.def("cuda_available", &core_cuda_available, "True when built with CUDA and a CUDA device is visible.");
  m.def("advance_cuda", &advance_cuda, py::arg("ops"), py::arg("aux"), py::arg("roots"), py::arg("scale"),
        py::arg("groups"), py::arg("step"), py::arg("blocks_done"), py::arg("mirror"), py::arg("out"), py::arg("dtype"),
        py::arg("read_prev"), py::arg("found_inf"), py::arg("advance"), py::arg("stream"), py::arg("signals") = 0,
        py::arg("slots") = 0,
        "One CUDA launch: advance the device step counter (unless *found_inf) and write every group's LR.");
}

}  // namespace torchsched::bindings
