// ReduceLROnPlateau's float path: one step on the scheduler's own __dict__ (so state_dict() stays torch's),
// as plateau_step (called from Python) and as the C-level step method the class installs.
#include <cmath>
#include <string>
#include <vector>

#include "bind_common.hpp"
#include "group_store.hpp"
#include "register.hpp"

namespace torchsched::bindings {
namespace {

// The __dict__ keys this file reads, interned once.
struct Keys {
  PyObject *factor, *threshold, *eps, *patience, *cooldown, *mode, *threshold_mode, *best, *num_bad_epochs,
      *cooldown_counter, *min_lrs, *default_min_lr, *last_lr, *device_state, *python_step, *clone;
};

const Keys& keys() {
  static const Keys k{
      PyUnicode_InternFromString("factor"),         PyUnicode_InternFromString("threshold"),
      PyUnicode_InternFromString("eps"),            PyUnicode_InternFromString("patience"),
      PyUnicode_InternFromString("cooldown"),       PyUnicode_InternFromString("mode"),
      PyUnicode_InternFromString("threshold_mode"), PyUnicode_InternFromString("best"),
      PyUnicode_InternFromString("num_bad_epochs"), PyUnicode_InternFromString("cooldown_counter"),
      PyUnicode_InternFromString("min_lrs"),        PyUnicode_InternFromString("default_min_lr"),
      PyUnicode_InternFromString("_last_lr"),       PyUnicode_InternFromString("_plateau_device"),
      PyUnicode_InternFromString("_plateau_python_step"), PyUnicode_InternFromString("clone")};
  return k;
}

PyObject* tensor_type = nullptr;  // torch.Tensor, set by plateau_step_method
PyObject* signals_module = nullptr;  // torchsched._signals: its CPU_FAST_PATH switch
bool fill_tensors = true;  // the installed torch fills a reduced tensor LR in place (else: assigns a float)
bool clone_last = true;    // its _last_lr holds clones of tensor LRs (else: the groups' tensors themselves)

// A metric the C step converts itself: a Python float or int, or (while the CPU fast path is on) a CPU
// tensor, whose float() is a read of host memory, torch's own conversion. 1 yes, 0 no, -1 error.
int c_metric(PyObject* metrics, double* out) {
  static PyObject* s_is_cpu = PyUnicode_InternFromString("is_cpu");
  static PyObject* s_switch = PyUnicode_InternFromString("CPU_FAST_PATH");
  if (PyFloat_CheckExact(metrics) || PyLong_CheckExact(metrics)) {
    *out = PyFloat_AsDouble(metrics);
    return (*out == -1.0 && PyErr_Occurred()) ? -1 : 1;
  }
  if (tensor_type == nullptr || signals_module == nullptr || PyObject_IsInstance(metrics, tensor_type) != 1) return 0;
  PyObject* on = PyObject_GetAttr(signals_module, s_switch);
  if (on == nullptr) return -1;
  const int fast = PyObject_IsTrue(on);
  Py_DECREF(on);
  if (fast != 1) return fast;
  PyObject* cpu = PyObject_GetAttr(metrics, s_is_cpu);
  if (cpu == nullptr) return -1;
  const int is_cpu = PyObject_IsTrue(cpu);
  Py_DECREF(cpu);
  if (is_cpu != 1) return is_cpu;
  PyObject* f = PyNumber_Float(metrics);
  if (f == nullptr) return -1;
  *out = PyFloat_AS_DOUBLE(f);
  Py_DECREF(f);
  return 1;
}

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

PyObject* item(PyObject* d, PyObject* key) {
  PyObject* v = PyDict_GetItemWithError(d, key);
  if (v == nullptr) {
    if (PyErr_Occurred()) throw py::error_already_set();
    throw py::key_error(py::str(key));
  }
  return v;
}

bool str_is(PyObject* o, const char* s) { return PyUnicode_Check(o) && PyUnicode_CompareWithASCIIString(o, s) == 0; }

void set(PyObject* d, PyObject* key, PyObject* value) {  // steals value
  if (value == nullptr) throw py::error_already_set();
  const int rc = PyDict_SetItem(d, key, value);
  Py_DECREF(value);
  if (rc != 0) throw py::error_already_set();
}

// One ReduceLROnPlateau step for a metric already converted to float: plateau_update, then (when due) every
// group's reduction and plateau_after_reduce, in torch's order; stores _last_lr (floats as stored; clones of
// tensor LRs).
void run_plateau(PyObject* d, PyObject* groups, double metric, bool fills, bool clones) {
  const Keys& k = keys();
  if (!PyList_Check(groups)) throw py::type_error("param_groups must be a list");
  PlateauParams q{};
  q.factor = as_double(item(d, k.factor));
  q.threshold = as_double(item(d, k.threshold));
  q.eps = as_double(item(d, k.eps));
  q.patience = as_count(item(d, k.patience), false);  // bad > patience for a count: floor(patience)
  q.cooldown = as_count(item(d, k.cooldown), true);   // ceil(cooldown) steps of cooldown
  q.mode_max = str_is(item(d, k.mode), "min") ? 0 : 1;
  q.threshold_rel = str_is(item(d, k.threshold_mode), "rel") ? 1 : 0;
  PlateauState s{};
  s.best = as_double(item(d, k.best));
  s.num_bad_epochs = as_count(item(d, k.num_bad_epochs), false);
  s.cooldown_counter = as_count(item(d, k.cooldown_counter), true);

  auto write_back = [&]() {
    set(d, k.best, PyFloat_FromDouble(s.best));
    set(d, k.num_bad_epochs, PyLong_FromLongLong(s.num_bad_epochs));
    set(d, k.cooldown_counter, PyLong_FromLongLong(s.cooldown_counter));
  };
  const Py_ssize_t G = PyList_GET_SIZE(groups);
  if (plateau_update(q, s, metric)) {
    py::object min_lrs = py::reinterpret_borrow<py::object>(item(d, k.min_lrs));
    if (static_cast<Py_ssize_t>(py::len(min_lrs)) != G) {
      py::object dflt = py::reinterpret_borrow<py::object>(item(d, k.default_min_lr));
      if (dflt.is_none()) {
        write_back();
        throw std::runtime_error(
            "The number of param groups in the `optimizer` (" + std::to_string(G) +
            ") differs from when `ReduceLROnPlateau` was initialized (" + std::to_string(py::len(min_lrs)) +
            "), usually due to a new param group being added to the optimizer. Please modify the `min_lrs` field "
            "to match the length of the `optimizer` param groups.");
      }
      py::list fresh(G);
      for (Py_ssize_t g = 0; g < G; ++g) fresh[g] = dflt;
      PyDict_SetItem(d, k.min_lrs, fresh.ptr());
      min_lrs = fresh;
    }
    // torch reads each group's LR just before it reduces it, so a tensor shared by several groups is
    // reduced once per group
    for (Py_ssize_t g = 0; g < G; ++g) {
      PyObject* group = PyList_GET_ITEM(groups, g);
      if (!PyDict_Check(group)) throw py::type_error("param group " + std::to_string(g) + " is not a dict");
      py::object held = py::reinterpret_borrow<py::object>(item(group, s_lr));  // conversions may run Python
      const double old_lr = as_double(held.ptr());
      const double min_lr = as_double(py::object(min_lrs[py::int_(g)]).ptr());
      double new_lr = old_lr;
      if (!plateau_reduced(q, old_lr, min_lr, &new_lr)) continue;
      // torch before 2.13 puts the new LR into the group as a float, tensor or not
      const bool tensor = fills && PyObject_IsInstance(held.ptr(), tensor_type) == 1;
      const LrDest dest{tensor ? LrHome::kTensor : LrHome::kDictFloat, s_lr, nullptr};
      PyObject* entry = tensor ? held.ptr() : nullptr;  // a float entry is looked up again by the store
      if (!store_group_lr(dest, group, g, entry, new_lr)) throw py::error_already_set();
    }
    plateau_after_reduce(q, s);
  }
  write_back();
  PyObject* last = PyList_New(G);
  if (last == nullptr) throw py::error_already_set();
  py::object owner = py::reinterpret_steal<py::object>(last);
  for (Py_ssize_t g = 0; g < G; ++g) {
    PyObject* v = item(PyList_GET_ITEM(groups, g), s_lr);
    PyObject* entry = nullptr;
    if (!clones || PyFloat_CheckExact(v) || PyObject_IsInstance(v, tensor_type) != 1) {
      Py_INCREF(v);
      entry = v;
    } else {
      entry = PyObject_CallMethodNoArgs(v, k.clone);
      if (entry == nullptr) throw py::error_already_set();
    }
    PyList_SET_ITEM(last, g, entry);
  }
  Py_INCREF(last);
  set(d, k.last_lr, last);
}

// step(self, metrics, epoch=None): a float or int metric, no epoch, no device state: last_epoch + 1 and
// run_plateau, in C; anything else: self._plateau_python_step(metrics, epoch).
PyObject* plateau_step_c(PyObject* self, PyObject* const* args, Py_ssize_t nargsf, PyObject* kwnames) {
  const Keys& k = keys();
  const Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  PyObject* metrics = nullptr;
  PyObject* epoch = Py_None;
  if (nargs >= 1) metrics = args[0];
  if (nargs >= 2) epoch = args[1];
  if (nargs > 2) {
    PyErr_Format(PyExc_TypeError, "step() takes from 2 to 3 positional arguments but %zd were given", nargs + 1);
    return nullptr;
  }
  for (Py_ssize_t i = 0; i < nkw; ++i) {
    PyObject* name = PyTuple_GET_ITEM(kwnames, i);
    if (PyUnicode_CompareWithASCIIString(name, "metrics") == 0 && metrics == nullptr) {
      metrics = args[nargs + i];
    } else if (PyUnicode_CompareWithASCIIString(name, "epoch") == 0 && nargs < 2) {
      epoch = args[nargs + i];
    } else {
      PyErr_Format(PyExc_TypeError, "step() got an unexpected keyword argument '%U'", name);
      return nullptr;
    }
  }
  if (metrics == nullptr) {
    PyErr_SetString(PyExc_TypeError, "step() missing 1 required positional argument: 'metrics'");
    return nullptr;
  }
  PyObject* d = epoch == Py_None ? PyObject_GenericGetDict(self, nullptr) : nullptr;
  if (d != nullptr) {
    PyObject* le = PyDict_GetItemWithError(d, s_last_epoch);
    PyObject* opt = le ? PyDict_GetItemWithError(d, s_optimizer) : nullptr;
    const bool device = PyDict_Contains(d, k.device_state) != 0;
    if (opt != nullptr && !device && PyLong_CheckExact(le)) {
      int overflow = 0;
      const long long last_epoch = PyLong_AsLongLongAndOverflow(le, &overflow);
      double metric = 0.0;
      const int taken = (!overflow && last_epoch < (1LL << 62)) ? c_metric(metrics, &metric) : 0;
      if (taken < 0) {
        Py_DECREF(d);
        return nullptr;
      }
      if (taken == 1) {
        PyObject* groups = PyObject_GetAttr(opt, s_param_groups);
        PyObject* result = nullptr;
        if (groups != nullptr) {
          try {
            set(d, s_last_epoch, PyLong_FromLongLong(last_epoch + 1));
            run_plateau(d, groups, metric, fill_tensors, clone_last);
            Py_INCREF(Py_None);
            result = Py_None;
          } catch (py::error_already_set& e) {
            e.restore();
          } catch (py::builtin_exception& e) {
            e.set_error();
          } catch (std::exception& e) {
            PyErr_SetString(PyExc_RuntimeError, e.what());
          }
          Py_DECREF(groups);
        }
        Py_DECREF(d);
        return result;
      }
    }
    Py_DECREF(d);
    if (PyErr_Occurred()) return nullptr;
  } else if (PyErr_Occurred()) {
    return nullptr;
  }
  PyObject* call_args[3] = {self, metrics, epoch};
  return PyObject_VectorcallMethod(k.python_step, call_args, 3 | PY_VECTORCALL_ARGUMENTS_OFFSET, nullptr);
}

PyMethodDef plateau_step_def = {
    "step", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(plateau_step_c)),
    METH_FASTCALL | METH_KEYWORDS,
    "step($self, /, metrics, epoch=None)\n--\n\n"
    "Perform a step: the plateau rule on the metric, and every group's reduction when it is due."};

}  // namespace

void register_plateau(py::module_& m) {
  m.def(
      "plateau_step",
      [](py::dict d, py::list groups, double metric, py::handle tensor, bool fills, bool clones) {
        tensor_type = tensor.ptr();
        run_plateau(d.ptr(), groups.ptr(), metric, fills, clones);
      },
      py::arg("state"), py::arg("groups"), py::arg("metric"), py::arg("tensor_type"), py::arg("fill_tensors") = true,
      py::arg("clone_last") = true,
      "One ReduceLROnPlateau step on the scheduler's __dict__: update, reduce every group when due, set _last_lr.");
  m.def(
      "plateau_step_method",
      [](py::handle cls, py::handle tensor, py::handle signals, bool fills, bool clones) {
        if (!PyType_Check(cls.ptr())) throw py::type_error("plateau_step_method needs a class");
        Py_INCREF(tensor.ptr());  // both kept for the life of the module
        Py_INCREF(signals.ptr());
        tensor_type = tensor.ptr();
        signals_module = signals.ptr();
        fill_tensors = fills;
        clone_last = clones;
        PyObject* descr = PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls.ptr()), &plateau_step_def);
        if (descr == nullptr) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(descr);
      },
      py::arg("cls"), py::arg("tensor_type"), py::arg("signals"), py::arg("fill_tensors") = true,
      py::arg("clone_last") = true,
      "The C-level step(self, metrics, epoch=None) of ReduceLROnPlateau (set it as the class's `step`).");
}

}  // namespace torchsched::bindings
