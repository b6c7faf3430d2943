// What the binding files share: the numpy array types they take, the GIL threshold, the dtype and number checks.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "torchsched/engine.hpp"

namespace torchsched::bindings {

namespace py = pybind11;

// Loops this long are worth releasing the GIL for; shorter ones would pay more to release it.
constexpr int64_t kReleaseGilAbove = 4096;

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using Int32Array = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using Int64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

inline void check_dtype(int32_t dtype) {
  if (dtype != DT_FLOAT32 && dtype != DT_FLOAT64)
    throw std::invalid_argument("dtype code must be 0 (float32) or 1 (float64), got " + std::to_string(dtype));
}

// A Python number as a double; a Python error (not a number) becomes the C++ exception pybind11 re-raises.
inline double as_double(PyObject* o) {
  double v = PyFloat_AsDouble(o);
  if (v == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  return v;
}

}  // namespace torchsched::bindings
