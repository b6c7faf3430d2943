// plateau_step and its pybind11 face: one ReduceLROnPlateau step on the scheduler's own __dict__.
#include <cmath>
#include <string>
#include <vector>

#include "bind_common.hpp"
#include "group_store.hpp"
#include "register.hpp"

namespace torchsched::bindings {
namespace {

int64_t as_count(PyObject* o, bool round_up) {
  if (PyLong_Check(o)) {
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow) return overflow > 0 ? INT64_MAX : INT64_MIN;
    if (v == -1 && PyErr_Occurred()) throw py::error_already_set();
    return v;
  }
  double v = as_double(o);
  if (std::isnan(v)) throw std::invalid_argument("a ReduceLROnPlateau counter is NaN");
  v = round_up ? ceil(v) : floor(v);
  if (v >= 9.2e18) return INT64_MAX;
  if (v <= -9.2e18) return INT64_MIN;
  return static_cast<int64_t>(v);
}

PyObject* item(const py::dict& d, const char* key) {
  PyObject* v = PyDict_GetItemString(d.ptr(), key);
  if (v == nullptr) throw py::key_error(key);
  return v;
}

bool str_is(PyObject* o, const char* s) { return PyUnicode_Check(o) && PyUnicode_CompareWithASCIIString(o, s) == 0; }

// One ReduceLROnPlateau step on the scheduler's own __dict__ (so state_dict() stays torch's), for the
// metric already converted to float: plateau_update, then (when due) every group's reduction and
// plateau_after_reduce. Returns the new _last_lr (floats as stored; clones of tensor LRs).
py::list plateau_step(py::dict d, py::list groups, double metric, py::handle tensor_type) {
  PlateauParams q{};
  q.factor = as_double(item(d, "factor"));
  q.threshold = as_double(item(d, "threshold"));
  q.eps = as_double(item(d, "eps"));
  q.patience = as_count(item(d, "patience"), false);   // bad > patience for a count: floor(patience)
  q.cooldown = as_count(item(d, "cooldown"), true);    // ceil(cooldown) steps of cooldown
  q.mode_max = str_is(item(d, "mode"), "min") ? 0 : 1;
  q.threshold_rel = str_is(item(d, "threshold_mode"), "rel") ? 1 : 0;
  PlateauState s{};
  s.best = as_double(item(d, "best"));
  s.num_bad_epochs = as_count(item(d, "num_bad_epochs"), false);
  s.cooldown_counter = as_count(item(d, "cooldown_counter"), true);
  s.last_epoch = 0;

  auto write_back = [&]() {
    d["best"] = py::float_(s.best);
    d["num_bad_epochs"] = py::int_(s.num_bad_epochs);
    d["cooldown_counter"] = py::int_(s.cooldown_counter);
  };
  const size_t G = groups.size();
  if (plateau_update(q, s, metric)) {
    py::object min_lrs = py::reinterpret_borrow<py::object>(item(d, "min_lrs"));
    if (py::len(min_lrs) != G) {
      py::object dflt = py::reinterpret_borrow<py::object>(item(d, "default_min_lr"));
      if (dflt.is_none()) {
        write_back();
        throw std::runtime_error(
            "The number of param groups in the `optimizer` (" + std::to_string(G) +
            ") differs from when `ReduceLROnPlateau` was initialized (" + std::to_string(py::len(min_lrs)) +
            "), usually due to a new param group being added to the optimizer. Please modify the `min_lrs` field "
            "to match the length of the `optimizer` param groups.");
      }
      py::list fresh(G);
      for (size_t g = 0; g < G; ++g) fresh[g] = dflt;
      d["min_lrs"] = fresh;
      min_lrs = fresh;
    }
    std::vector<double> olds(G), mins(G);
    for (size_t g = 0; g < G; ++g) {
      py::dict group = groups[g].cast<py::dict>();
      olds[g] = as_double(item(group, "lr"));
      mins[g] = as_double(py::object(min_lrs[py::int_(g)]).ptr());
    }
    for (size_t g = 0; g < G; ++g) {
      double new_lr = olds[g];
      if (!plateau_reduced(q, olds[g], mins[g], &new_lr)) continue;
      py::dict group = groups[g].cast<py::dict>();
      py::object held = py::reinterpret_borrow<py::object>(item(group, "lr"));  // isinstance may run Python
      const bool tensor = PyObject_IsInstance(held.ptr(), tensor_type.ptr()) == 1;
      const LrDest dest{tensor ? LrHome::kTensor : LrHome::kDictFloat, s_lr, nullptr};
      PyObject* entry = tensor ? held.ptr() : nullptr;  // a float entry is looked up again by the store
      if (!store_group_lr(dest, group.ptr(), static_cast<Py_ssize_t>(g), entry, new_lr)) throw py::error_already_set();
    }
    plateau_after_reduce(q, s);
  }
  write_back();
  py::list last(G);
  for (size_t g = 0; g < G; ++g) {
    py::dict group = groups[g].cast<py::dict>();
    py::object v = py::reinterpret_borrow<py::object>(item(group, "lr"));
    last[g] = (PyObject_IsInstance(v.ptr(), tensor_type.ptr()) == 1) ? v.attr("clone")() : v;
  }
  return last;
}

}  // namespace

void register_plateau(py::module_& m) {
  m.def("plateau_step", &plateau_step, py::arg("state"), py::arg("groups"), py::arg("metric"), py::arg("tensor_type"),
        "One ReduceLROnPlateau step on the scheduler's __dict__: update, reduce every group when due; returns _last_lr.");
}

}  // namespace torchsched::bindings
