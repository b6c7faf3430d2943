// pybind11 face of the core, kept thin: convert, validate, release the GIL for large loops, forward.
// Pointers arrive as integers from the Python layer, which checks device, dtype, size and lifetime.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "torchsched/engine.hpp"

namespace py = pybind11;
using namespace torchsched;

namespace {

// Loops this long are worth releasing the GIL for; shorter ones would pay more to release it.
constexpr int64_t kReleaseGilAbove = 4096;

using DoubleArray = py::array_t<double, py::array::c_style | py::array::forcecast>;
using Int32Array = py::array_t<int32_t, py::array::c_style | py::array::forcecast>;
using Int64Array = py::array_t<int64_t, py::array::c_style | py::array::forcecast>;

void check_dtype(int32_t dtype) {
  if (dtype != DT_FLOAT32 && dtype != DT_FLOAT64)
    throw std::invalid_argument("dtype code must be 0 (float32) or 1 (float64), got " + std::to_string(dtype));
}

// A validated, immutable schedule program: the op table and its aux table.
class Program {
 public:
  Program(py::buffer ops, DoubleArray aux) {
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

  int64_t size() const { return static_cast<int64_t>(ops_.size()); }
  const Op* ops() const { return ops_.data(); }
  const double* aux() const { return aux_.data(); }
  int64_t aux_size() const { return static_cast<int64_t>(aux_.size()); }

  void check_root(int64_t root) const {
    int32_t r = static_cast<int32_t>(root);
    if (root < 0 || root >= size()) throw std::invalid_argument("root " + std::to_string(root) + " out of range");
    validate_program(ops_.data(), size(), aux_size(), aux_.data(), &r, 1);
  }

  double value(int64_t root, int64_t step, double prev) const {
    check_root(root);
    if (step < 0) throw std::invalid_argument("step must be >= 0, got " + std::to_string(step));
    return evaluate(ops(), aux(), static_cast<int32_t>(root), static_cast<double>(step), Ctx{prev});
  }

  py::array_t<double> values(int64_t root, Int64Array steps, double prev) const {
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

  py::bytes op_bytes() const { return py::bytes(reinterpret_cast<const char*>(ops_.data()), ops_.size() * sizeof(Op)); }
  py::array_t<double> aux_array() const { return py::array_t<double>(aux_.size(), aux_.data()); }

 private:
  std::vector<Op> ops_;
  std::vector<double> aux_;
};

// G param groups on the host: step counter, per-group root and scale, and the float64 mirror of the
// last LRs written (what get_last_lr() reports, and `prev` for chainable rules).
class Engine {
 public:
  Engine(const Program& program, Int32Array roots, DoubleArray scale, int64_t step)
      : program_(program), roots_(roots.data(), roots.data() + roots.size()),
        scale_(scale.data(), scale.data() + scale.size()) {
    if (roots_.empty()) throw std::invalid_argument("an engine needs at least one group");
    if (scale_.size() != roots_.size())
      throw std::invalid_argument("scale has " + std::to_string(scale_.size()) + " entries for " +
                                  std::to_string(roots_.size()) + " groups");
    for (size_t g = 0; g < scale_.size(); ++g)
      if (!std::isfinite(scale_[g])) throw std::invalid_argument("scale of group " + std::to_string(g) + " is not finite");
    validate_program(program_.ops(), program_.size(), program_.aux_size(), program_.aux(), roots_.data(),
                     static_cast<int64_t>(roots_.size()));
    set_step(step);
    mirror_.assign(roots_.size(), 0.0);
  }

  int64_t groups() const { return static_cast<int64_t>(roots_.size()); }
  int64_t step() const { return step_; }
  void set_step(int64_t step) {
    if (step < 0) throw std::invalid_argument("step must be >= 0, got " + std::to_string(step));
    step_ = step;
  }

  // LRs at the current step into a caller-owned buffer of `count` elements of `dtype` (0 for none).
  void write(std::uintptr_t ptr, int32_t dtype, int64_t count, bool read_prev) {
    check_dtype(dtype);
    if (ptr != 0 && count != groups())
      throw std::invalid_argument("buffer has " + std::to_string(count) + " elements for " + std::to_string(groups()) + " groups");
    void* out = reinterpret_cast<void*>(ptr);
    if (groups() > kReleaseGilAbove) {
      py::gil_scoped_release release;
      run(out, dtype, read_prev);
    } else {
      run(out, dtype, read_prev);
    }
  }

  void advance(std::uintptr_t ptr, int32_t dtype, int64_t count, bool read_prev) {
    step_ += 1;
    try {
      write(ptr, dtype, count, read_prev);
    } catch (...) {
      step_ -= 1;  // a failed call leaves the engine where it was
      throw;
    }
  }

  // The Python-float path: stores each group's LR into groups[g][key], reading the previous value from
  // the same place when read_prev is set (so a hand-edited LR is respected, as torch does).
  void write_dicts(py::list groups_list, py::str key, bool read_prev) {
    if (static_cast<int64_t>(py::len(groups_list)) != groups())
      throw std::invalid_argument("got " + std::to_string(py::len(groups_list)) + " param groups for an engine of " +
                                  std::to_string(groups()));
    PyObject* k = key.ptr();
    const double t = static_cast<double>(step_);
    for (int64_t g = 0; g < groups(); ++g) {
      PyObject* group = PyList_GET_ITEM(groups_list.ptr(), g);
      if (!PyDict_Check(group)) throw py::type_error("param group " + std::to_string(g) + " is not a dict");
      double prev = mirror_[static_cast<size_t>(g)];
      if (read_prev) {
        PyObject* v = PyDict_GetItemWithError(group, k);
        if (v == nullptr) {
          if (PyErr_Occurred()) throw py::error_already_set();
          throw py::key_error("param group " + std::to_string(g) + " has no '" + std::string(key) + "'");
        }
        if (PyFloat_CheckExact(v)) prev = PyFloat_AS_DOUBLE(v);
        else {
          prev = PyFloat_AsDouble(v);  // ints, numpy scalars, 0-d CPU tensors
          if (prev == -1.0 && PyErr_Occurred()) throw py::error_already_set();
        }
      }
      double lr = scale_[static_cast<size_t>(g)] *
                  evaluate(program_.ops(), program_.aux(), roots_[static_cast<size_t>(g)], t, Ctx{prev});
      mirror_[static_cast<size_t>(g)] = lr;
      PyObject* f = PyFloat_FromDouble(lr);
      if (f == nullptr || PyDict_SetItem(group, k, f) != 0) {
        Py_XDECREF(f);
        throw py::error_already_set();
      }
      Py_DECREF(f);
    }
  }

  void advance_dicts(py::list groups_list, py::str key, bool read_prev) {
    step_ += 1;
    try {
      write_dicts(groups_list, key, read_prev);
    } catch (...) {
      step_ -= 1;
      throw;
    }
  }

  py::list lrs() const {
    py::list out(mirror_.size());
    for (size_t g = 0; g < mirror_.size(); ++g) out[g] = py::float_(mirror_[g]);
    return out;
  }

  py::array_t<double> mirror() const { return py::array_t<double>(mirror_.size(), mirror_.data()); }
  void set_mirror(DoubleArray values) {
    if (values.size() != groups()) throw std::invalid_argument("mirror needs one value per group");
    mirror_.assign(values.data(), values.data() + values.size());
  }

  py::array_t<double> scale() const { return py::array_t<double>(scale_.size(), scale_.data()); }
  void set_scale(int64_t g, double value) {
    if (g < 0 || g >= groups()) throw std::invalid_argument("group " + std::to_string(g) + " out of range");
    if (!std::isfinite(value)) throw std::invalid_argument("scale of group " + std::to_string(g) + " is not finite");
    scale_[static_cast<size_t>(g)] = value;
  }

  py::array_t<int32_t> roots() const { return py::array_t<int32_t>(roots_.size(), roots_.data()); }
  const Program& program() const { return program_; }

 private:
  void run(void* out, int32_t dtype, bool read_prev) {
    write_groups_cpu(program_.ops(), program_.aux(), roots_.data(), scale_.data(), groups(), step_, mirror_.data(),
                     out, dtype, read_prev);
  }

  Program program_;
  std::vector<int32_t> roots_;
  std::vector<double> scale_;
  std::vector<double> mirror_;
  int64_t step_ = 0;
};

#ifdef TORCHSCHED_WITH_CUDA
constexpr bool kBuiltWithCuda = true;
#else
constexpr bool kBuiltWithCuda = false;
#endif

bool core_cuda_available() {
#ifdef TORCHSCHED_WITH_CUDA
  return cuda_available();
#else
  return false;
#endif
}

void advance_cuda(std::uintptr_t ops, std::uintptr_t aux, std::uintptr_t roots, std::uintptr_t scale, int64_t groups,
                  std::uintptr_t step, std::uintptr_t blocks_done, std::uintptr_t mirror, std::uintptr_t out,
                  int32_t dtype, bool read_prev, std::uintptr_t found_inf, bool advance, std::uintptr_t stream) {
#ifdef TORCHSCHED_WITH_CUDA
  check_dtype(dtype);
  if (!ops || !aux || !roots || !scale || !step || !blocks_done || !mirror || !out)
    throw std::invalid_argument("advance_cuda: a required device pointer is null");
  advance_groups_cuda(reinterpret_cast<const Op*>(ops), reinterpret_cast<const double*>(aux),
                      reinterpret_cast<const int32_t*>(roots), reinterpret_cast<const double*>(scale), groups,
                      reinterpret_cast<int64_t*>(step), reinterpret_cast<unsigned int*>(blocks_done),
                      reinterpret_cast<double*>(mirror), reinterpret_cast<void*>(out), dtype, read_prev,
                      reinterpret_cast<const float*>(found_inf), advance, stream);
#else
  (void)ops; (void)aux; (void)roots; (void)scale; (void)groups; (void)step; (void)blocks_done; (void)mirror;
  (void)out; (void)dtype; (void)read_prev; (void)found_inf; (void)advance; (void)stream;
  throw std::runtime_error(
      "torchsched was built without CUDA; reinstall with nvcc on PATH and TORCHSCHED_CUDA=ON "
      "(pip install --force-reinstall --no-binary torchsched torchsched, or `make build` from a checkout)");
#endif
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "torchsched compiled core: schedule programs evaluated on the CPU and, when built, on CUDA.";
  m.attr("OP_RECORD_BYTES") = static_cast<int>(sizeof(Op));
  m.attr("NUM_PARAMS") = kNumParams;
  m.attr("MAX_DEPTH") = kMaxDepth;
  m.def("built_with_cuda", [] { return kBuiltWithCuda; }, "True when the CUDA engine was compiled in.");
  m.def("cuda_available", &core_cuda_available, "True when built with CUDA and a CUDA device is visible.");

  py::class_<Program>(m, "Program")
      .def(py::init<py::buffer, DoubleArray>(), py::arg("ops"), py::arg("aux"))
      .def_property_readonly("size", &Program::size)
      .def("value", &Program::value, py::arg("root"), py::arg("step"), py::arg("prev") = 0.0)
      .def("values", &Program::values, py::arg("root"), py::arg("steps"), py::arg("prev") = 0.0)
      .def("op_bytes", &Program::op_bytes)
      .def("aux_array", &Program::aux_array);

  py::class_<Engine>(m, "Engine")
      .def(py::init<const Program&, Int32Array, DoubleArray, int64_t>(), py::arg("program"), py::arg("roots"),
           py::arg("scale"), py::arg("step") = 0)
      .def_property_readonly("groups", &Engine::groups)
      .def_property("step", &Engine::step, &Engine::set_step)
      .def("write", &Engine::write, py::arg("ptr"), py::arg("dtype"), py::arg("count"), py::arg("read_prev") = false)
      .def("advance", &Engine::advance, py::arg("ptr"), py::arg("dtype"), py::arg("count"), py::arg("read_prev") = false)
      .def("write_dicts", &Engine::write_dicts, py::arg("groups"), py::arg("key"), py::arg("read_prev") = false)
      .def("advance_dicts", &Engine::advance_dicts, py::arg("groups"), py::arg("key"), py::arg("read_prev") = false)
      .def("lrs", &Engine::lrs)
      .def("mirror", &Engine::mirror)
      .def("set_mirror", &Engine::set_mirror, py::arg("values"))
      .def("scale", &Engine::scale)
      .def("set_scale", &Engine::set_scale, py::arg("group"), py::arg("value"))
      .def("roots", &Engine::roots)
      .def_property_readonly("program", &Engine::program, py::return_value_policy::reference_internal);

  m.def("advance_cuda", &advance_cuda, py::arg("ops"), py::arg("aux"), py::arg("roots"), py::arg("scale"),
        py::arg("groups"), py::arg("step"), py::arg("blocks_done"), py::arg("mirror"), py::arg("out"), py::arg("dtype"),
        py::arg("read_prev"), py::arg("found_inf"), py::arg("advance"), py::arg("stream"),
        "One CUDA launch: advance the device step counter (unless *found_inf) and write every group's LR.");
}
