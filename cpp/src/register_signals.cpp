// average_gradient_observe: the average-gradient rule's update for every group of a CPU signal bank in one
// call, on the bank's own tensors (host memory: reading it is no sync).
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "bind_common.hpp"
#include "register.hpp"
#include "torchsched/signals.hpp"

namespace torchsched::bindings {
namespace {

template <typename T>
T* at(std::uintptr_t address) {
  return reinterpret_cast<T*>(address);
}

// norms[i]: param i's gradient norm (order 1, or order 2 when l2), owned by group owner[i]; counts[g]: the
// group's gradient elements. G per group is sum(norms) / count (mean_abs) or sqrt(sum(norms^2)) (l2), then
// divided by *grad_scale (float32, 0: none) and observed unless *found_inf (float32, 0: none) is non-zero.
// The factor lands in factors[g * slots + slot].
void average_gradient_observe(std::uintptr_t norms, int64_t n, std::uintptr_t owner, std::uintptr_t counts,
                              int64_t groups, bool l2, std::uintptr_t grad_scale, std::uintptr_t found_inf,
                              std::uintptr_t g0, std::uintptr_t last, std::uintptr_t factor, std::uintptr_t ignored,
                              std::uintptr_t factors, int64_t slots, int64_t slot, double ema, double min_factor,
                              double max_factor) {
  if (groups < 1 || n < 0 || slot < 0 || slot >= slots || !counts || !g0 || !last || !factor || !ignored ||
      !factors || (n > 0 && (!norms || !owner)))
    throw std::invalid_argument("average_gradient_observe: bad arguments");
  const double* norm = at<const double>(norms);
  const int64_t* who = at<const int64_t>(owner);
  const double* count = at<const double>(counts);
  for (int64_t i = 0; i < n; ++i)
    if (who[i] < 0 || who[i] >= groups) throw std::invalid_argument("average_gradient_observe: owner out of range");
  const bool skipped = found_inf != 0 && !(*at<const float>(found_inf) == 0.0f);
  const GradientRule rule{ema, min_factor, max_factor};
  thread_local std::vector<double> sums;
  sums.assign(static_cast<size_t>(groups), 0.0);
  for (int64_t i = 0; i < n; ++i) sums[static_cast<size_t>(who[i])] += l2 ? norm[i] * norm[i] : norm[i];
  for (int64_t g = 0; g < groups; ++g) {
    const double sum = sums[static_cast<size_t>(g)];
    double value = l2 ? std::sqrt(sum) : sum / count[g];
    if (!(count[g] > 0.0)) value = NAN;  // no gradients: no signal
    if (grad_scale != 0) value = value / static_cast<double>(*at<const float>(grad_scale));
    double* f = at<double>(factor) + g;
    gradient_observe(rule, value, skipped, at<double>(g0) + g, at<double>(last) + g, f, at<int64_t>(ignored) + g);
    at<double>(factors)[g * slots + slot] = *f;
  }
}

}  // namespace

void register_signals(py::module_& m) {
  m.def("average_gradient_observe", &average_gradient_observe, py::arg("norms"), py::arg("n"), py::arg("owner"),
        py::arg("counts"), py::arg("groups"), py::arg("l2"), py::arg("grad_scale"), py::arg("found_inf"), py::arg("g0"),
        py::arg("last"), py::arg("factor"), py::arg("ignored"), py::arg("factors"), py::arg("slots"), py::arg("slot"),
        py::arg("ema"), py::arg("min_factor"), py::arg("max_factor"),
        "The average-gradient rule's update of every group of a CPU signal bank, on its tensors' memory.");
}

}  // namespace torchsched::bindings
