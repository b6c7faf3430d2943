// The module torchsched._core: its facts, and each part's register_* function (one file per part).
#include "bind_common.hpp"
#include "cpython_fast.hpp"
#include "group_store.hpp"
#include "register.hpp"

#include <string>

namespace py = pybind11;
using namespace torchsched;
using namespace torchsched::bindings;

#ifdef TORCHSCHED_WITH_CUDA
constexpr bool kBuiltWithCuda = true;
#else
constexpr bool kBuiltWithCuda = false;
#endif
#ifndef TORCHSCHED_VERSION
#define TORCHSCHED_VERSION "0+unknown"  // built outside the package's build (plain CMake)
#endif
#ifndef TORCHSCHED_CUDA_ARCHITECTURES
#define TORCHSCHED_CUDA_ARCHITECTURES ""
#endif

PYBIND11_MODULE(_core, m) {
  m.doc() = "torchsched compiled core: schedule programs evaluated on the CPU and, when built, on CUDA.";
  intern_names();
  start_dict_tracking();

  // The package checks this against its own version at import: a partial upgrade must not half-work.
  m.attr("__version__") = TORCHSCHED_VERSION;
  m.attr("OP_RECORD_BYTES") = static_cast<int>(sizeof(Op));
  m.attr("NUM_PARAMS") = kNumParams;
  m.attr("MAX_DEPTH") = kMaxDepth;
  m.def(
      "cos",
      [](DoubleArray x) {
        py::array_t<double> out(x.size());
        const double* in = x.data();
        double* o = out.mutable_data();
        for (py::ssize_t k = 0; k < x.size(); ++k) o[k] = ts_cos(in[k]);
        return out;
      },
      py::arg("x"), "The core's cosine (the native cosine families use it), elementwise.");
  m.def("built_with_cuda", [] { return kBuiltWithCuda; }, "True when the CUDA engine was compiled in.");
  m.def(
      "cuda_architectures",
      [] {
        py::list out;
        std::string archs = TORCHSCHED_CUDA_ARCHITECTURES;
        for (std::size_t start = 0; start < archs.size();) {
          std::size_t end = archs.find(',', start);
          if (end == std::string::npos) end = archs.size();
          out.append(archs.substr(start, end - start));
          start = end + 1;
        }
        return py::tuple(out);
      },
      "The CUDA architectures the build compiled device code for, as CMake lists them (empty without CUDA).");
  m.def("cpython_shortcuts", &dict_tracking_on,
        "True when the scheduler step skips lookups in unchanged group dicts (dict versions or a watcher).");

  register_program(m);
  register_engine(m);
  register_stepper(m);
  register_plateau(m);
  register_cuda(m);
  register_families(m);
  register_signals(m);
}
