// HostEngine and its pybind11 face: G param groups stepped on the host (wrap() and the LR finder use it).
#include <cmath>
#include <string>
#include <vector>

#include "group_store.hpp"
#include "program.hpp"
#include "register.hpp"

namespace torchsched::bindings {
namespace {

// G param groups on the host: step counter, per-group root and scale, and the float64 mirror of the
// last LRs written (what get_last_lr() reports, and `prev` for chainable rules).
class HostEngine {
 public:
  HostEngine(const Program& program, Int32Array roots, DoubleArray scale, int64_t step)
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

  // One step, unless *found_inf (a float32 in host memory, 0 for none) is non-zero or NaN: a GradScaler
  // found infs and the optimizer skipped its update, so the schedule holds. Returns whether it advanced.
  bool advance(std::uintptr_t ptr, int32_t dtype, int64_t count, bool read_prev, std::uintptr_t found_inf) {
    if (skipped(found_inf)) return false;
    step_ += 1;
    try {
      write(ptr, dtype, count, read_prev);
    } catch (...) {
      step_ -= 1;  // a failed call leaves the engine where it was
      throw;
    }
    return true;
  }

  // The factor table SIGNAL leaves read: groups rows of `slots` float64 at `ptr` (host memory the caller
  // keeps alive; 0 detaches it, and every factor reads 1 again).
  void set_signals(std::uintptr_t ptr, int64_t slots) {
    const int64_t need = signal_slots(program_.ops(), program_.size());
    if (ptr != 0 && slots < need)
      throw std::invalid_argument("the signal table has " + std::to_string(slots) + " slots; the program reads " +
                                  std::to_string(need));
    signals_ = reinterpret_cast<const double*>(ptr);
    slots_ = ptr != 0 ? slots : 0;
  }
  int64_t signal_slots_needed() const { return signal_slots(program_.ops(), program_.size()); }

  // The Python-float path: stores each group's LR into groups[g][key], reading the previous value from
  // the same place when read_prev is set (so a hand-edited LR is respected, as torch does).
  void write_dicts(py::list groups_list, py::str key, bool read_prev) {
    if (static_cast<int64_t>(py::len(groups_list)) != groups())
      throw std::invalid_argument("got " + std::to_string(py::len(groups_list)) + " param groups for an engine of " +
                                  std::to_string(groups()));
    const LrDest dest{LrHome::kDictFloat, key.ptr(), nullptr};
    const Time t = time_at(step_);
    // Compute every LR and check them all before the first store: a step that would store a non-finite
    // LR stores none (the same all-or-nothing rule as write_groups_cpu).
    next_.resize(mirror_.size());
    entries_.assign(mirror_.size(), nullptr);
    bool python_ran = false;  // a conversion ran Python code: the entries seen may be stale
    for (int64_t g = 0; g < groups(); ++g) {
      PyObject* group = PyList_GET_ITEM(groups_list.ptr(), g);
      if (!PyDict_Check(group)) throw py::type_error("param group " + std::to_string(g) + " is not a dict");
      double prev = mirror_[static_cast<size_t>(g)];
      if (read_prev) {
        PyObject* v = PyDict_GetItemWithError(group, key.ptr());
        if (v == nullptr) {
          if (PyErr_Occurred()) throw py::error_already_set();
          throw py::key_error("param group " + std::to_string(g) + " has no '" + std::string(key) + "'");
        }
        if (PyFloat_CheckExact(v)) {
          prev = PyFloat_AS_DOUBLE(v);
          entries_[static_cast<size_t>(g)] = v;
        } else {
          prev = as_double(v);  // ints, numpy scalars, 0-d CPU tensors
          python_ran = true;
        }
      }
      const double lr = scale_[static_cast<size_t>(g)] *
                        evaluate(program_.ops(), program_.aux(), roots_[static_cast<size_t>(g)], t,
                                 Ctx{prev, signals_ != nullptr ? signals_ + g * slots_ : nullptr});
      if (!std::isfinite(lr))
        throw std::invalid_argument("the LR of group " + std::to_string(g) + " is not finite at step " +
                                    std::to_string(step_) + " (the schedule overflows there); nothing was stored");
      next_[static_cast<size_t>(g)] = lr;
    }
    if (python_ran) {  // the stores look the entries up again, in a list that must still hold every group
      entries_.assign(mirror_.size(), nullptr);
      if (static_cast<int64_t>(py::len(groups_list)) != groups())
        throw std::invalid_argument("the param groups changed while their LRs were read; nothing was stored");
    }
    for (int64_t g = 0; g < groups(); ++g) {
      PyObject* group = PyList_GET_ITEM(groups_list.ptr(), g);
      const double lr = next_[static_cast<size_t>(g)];
      mirror_[static_cast<size_t>(g)] = lr;
      if (!store_group_lr(dest, group, g, entries_[static_cast<size_t>(g)], lr)) throw py::error_already_set();
    }
  }

  bool advance_dicts(py::list groups_list, py::str key, bool read_prev, std::uintptr_t found_inf) {
    if (skipped(found_inf)) return false;
    step_ += 1;
    try {
      write_dicts(groups_list, key, read_prev);
    } catch (...) {
      step_ -= 1;
      throw;
    }
    return true;
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
  static bool skipped(std::uintptr_t found_inf) {
    return found_inf != 0 && !(*reinterpret_cast<const float*>(found_inf) == 0.0f);
  }

  void run(void* out, int32_t dtype, bool read_prev) {
    write_groups_cpu(program_.ops(), program_.aux(), roots_.data(), scale_.data(), groups(), step_, mirror_.data(),
                     out, dtype, read_prev, signals_, slots_);
  }

  Program program_;
  std::vector<int32_t> roots_;
  std::vector<double> scale_;
  std::vector<double> mirror_;
  std::vector<double> next_;         // write_dicts: the LRs computed before any is stored
  std::vector<PyObject*> entries_;   // write_dicts: the float entries read for prev (borrowed)
  int64_t step_ = 0;
  const double* signals_ = nullptr;  // the factor table (set_signals), owned by the caller
  int64_t slots_ = 0;
};

}  // namespace

void register_engine(py::module_& m) {
  py::class_<HostEngine>(m, "HostEngine")
      .def(py::init<const Program&, Int32Array, DoubleArray, int64_t>(), py::arg("program"), py::arg("roots"),
           py::arg("scale"), py::arg("step") = 0)
      .def_property_readonly("groups", &HostEngine::groups)
      .def_property("step", &HostEngine::step, &HostEngine::set_step)
      .def("write", &HostEngine::write, py::arg("ptr"), py::arg("dtype"), py::arg("count"), py::arg("read_prev") = false)
      .def("advance", &HostEngine::advance, py::arg("ptr"), py::arg("dtype"), py::arg("count"), py::arg("read_prev") = false,
           py::arg("found_inf") = 0)
      .def("write_dicts", &HostEngine::write_dicts, py::arg("groups"), py::arg("key"), py::arg("read_prev") = false)
      .def("advance_dicts", &HostEngine::advance_dicts, py::arg("groups"), py::arg("key"), py::arg("read_prev") = false,
           py::arg("found_inf") = 0)
      .def("set_signals", &HostEngine::set_signals, py::arg("ptr"), py::arg("slots"))
      .def_property_readonly("signal_slots", &HostEngine::signal_slots_needed)
      .def("lrs", &HostEngine::lrs)
      .def("mirror", &HostEngine::mirror)
      .def("set_mirror", &HostEngine::set_mirror, py::arg("values"))
      .def("scale", &HostEngine::scale)
      .def("set_scale", &HostEngine::set_scale, py::arg("group"), py::arg("value"))
      .def("roots", &HostEngine::roots)
      .def_property_readonly("program", &HostEngine::program, py::return_value_policy::reference_internal);
}

}  // namespace torchsched::bindings
