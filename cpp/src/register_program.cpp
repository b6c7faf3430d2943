// Program's methods and its pybind11 face: build and validate a program, evaluate it at steps.
#include <climits>
#include <cstring>

#include "program.hpp"
#include "register.hpp"

namespace torchsched::bindings {

Program::Program(py::buffer ops, DoubleArray aux) {
  py::buffer_info info = ops.request();
  if (info.ndim != 1 || info.itemsize != static_cast<py::ssize_t>(sizeof(Op)) ||
      info.strides[0] != static_cast<py::ssize_t>(sizeof(Op)))
    throw std::invalid_argument("ops must be a contiguous 1-d array of " + std::to_string(sizeof(Op)) + "-byte records");
  ops_.resize(static_cast<size_t>(info.shape[0]));
  if (!ops_.empty()) std::memcpy(ops_.data(), info.ptr, ops_.size() * sizeof(Op));
  aux_.assign(aux.data(), aux.data() + aux.size());
  if (aux_.empty()) aux_.push_back(0.0);  // never hand out a null table pointer
  validate_program(ops_.data(), size(), static_cast<int64_t>(aux_.size()), aux_.data(), nullptr, 0);
}

void Program::check_root(int64_t root) const {
  int32_t r = static_cast<int32_t>(root);
  if (root < 0 || root >= size()) throw std::invalid_argument("root " + std::to_string(root) + " out of range");
  validate_program(ops_.data(), size(), aux_size(), aux_.data(), &r, 1);
}

double Program::value(int64_t root, int64_t step, double prev) const {
  check_root(root);
  if (step < 0) throw std::invalid_argument("step must be >= 0, got " + std::to_string(step));
  return evaluate(ops(), aux(), static_cast<int32_t>(root), time_at(step), Ctx{prev});
}

py::array_t<double> Program::values(int64_t root, Int64Array steps, double prev) const {
  check_root(root);
  const int64_t n = steps.size();
  const int64_t* s = steps.data();
  for (int64_t k = 0; k < n; ++k)
    if (s[k] < 0) throw std::invalid_argument("steps must be >= 0, got " + std::to_string(s[k]));
  py::array_t<double> out(n);
  double* o = out.mutable_data();
  if (n > kReleaseGilAbove) {
    py::gil_scoped_release release;
    evaluate_steps(ops(), aux(), static_cast<int32_t>(root), s, n, prev, o);
  } else {
    evaluate_steps(ops(), aux(), static_cast<int32_t>(root), s, n, prev, o);
  }
  return out;
}

py::array_t<double> Program::values_range(int64_t root, int64_t start, int64_t stride, int64_t count,
                                          double prev) const {
  check_root(root);
  if (start < 0) throw std::invalid_argument("steps must be >= 0, got " + std::to_string(start));
  if (stride < 1) throw std::invalid_argument("stride must be >= 1, got " + std::to_string(stride));
  if (count < 0) throw std::invalid_argument("count must be >= 0, got " + std::to_string(count));
  if (count > 0 && (INT64_MAX - start) / stride < count - 1)
    throw std::invalid_argument("the last step does not fit in int64");
  py::array_t<double> out(count);
  double* o = out.mutable_data();
  if (count > kReleaseGilAbove) {
    py::gil_scoped_release release;
    evaluate_range(ops(), aux(), static_cast<int32_t>(root), start, stride, count, prev, o);
  } else {
    evaluate_range(ops(), aux(), static_cast<int32_t>(root), start, stride, count, prev, o);
  }
  return out;
}

py::bytes Program::op_bytes() const {
  return py::bytes(reinterpret_cast<const char*>(ops_.data()), ops_.size() * sizeof(Op));
}

py::array_t<double> Program::aux_array() const { return py::array_t<double>(aux_.size(), aux_.data()); }

void register_program(py::module_& m) {
  py::class_<Program>(m, "Program")
      .def(py::init<py::buffer, DoubleArray>(), py::arg("ops"), py::arg("aux"))
      .def_property_readonly("size", &Program::size)
      .def("value", &Program::value, py::arg("root"), py::arg("step"), py::arg("prev") = 0.0)
      .def("values", &Program::values, py::arg("root"), py::arg("steps"), py::arg("prev") = 0.0)
      .def("values_range", &Program::values_range, py::arg("root"), py::arg("start"), py::arg("stride"),
           py::arg("count"), py::arg("prev") = 0.0)
      .def("op_bytes", &Program::op_bytes)
      .def("aux_array", &Program::aux_array);
}

}  // namespace torchsched::bindings
