// Program: a validated, immutable schedule program (the op table and its aux table), shared by the
// HostEngine and the Stepper. Its methods and its pybind11 face are in register_program.cpp.
#pragma once

#include <cstdint>
#include <vector>

#include "bind_common.hpp"

namespace torchsched::bindings {

class Program {
 public:
  Program(py::buffer ops, DoubleArray aux);

  int64_t size() const { return static_cast<int64_t>(ops_.size()); }
  const Op* ops() const { return ops_.data(); }
  const double* aux() const { return aux_.data(); }
  int64_t aux_size() const { return static_cast<int64_t>(aux_.size()); }

  void check_root(int64_t root) const;
  double value(int64_t root, int64_t step, double prev) const;
  py::array_t<double> values(int64_t root, Int64Array steps, double prev) const;
  // values() at start, start + stride, ... (count of them, stride >= 1), without a step array.
  py::array_t<double> values_range(int64_t root, int64_t start, int64_t stride, int64_t count, double prev) const;
  py::bytes op_bytes() const;
  py::array_t<double> aux_array() const;

 private:
  std::vector<Op> ops_;
  std::vector<double> aux_;
};

}  // namespace torchsched::bindings
