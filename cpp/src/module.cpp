// The module torchsched._core: its facts, and each part's register_* function (one file per part).
#include "bind_common.hpp"
#include "cpython_fast.hpp"
#include "group_store.hpp"
#include "register.hpp"

namespace py = pybind11;
using namespace torchsched;
using namespace torchsched::bindings;

#ifdef TORCHSCHED_WITH_CUDA
constexpr bool kBuiltWithCuda = true;
#else
constexpr bool kBuiltWithCuda = false;
#endif

PYBIND11_MODULE(_core, m) {
  m.doc() = "torchsched compiled core: schedule programs evaluated on the CPU and, when built, on CUDA.";
  intern_names();
  start_dict_tracking();

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
  m.def("cpython_shortcuts", &dict_tracking_on,
        "True when the scheduler step skips lookups in unchanged group dicts (dict versions or a watcher).");

  register_program(m);
  register_engine(m);
  register_stepper(m);
  register_plateau(m);
  register_cuda(m);
}
