// pybind11 face of the core, kept thin: convert, validate, release the GIL for large loops, forward.
// Pointers arrive as integers from the Python layer, which checks device, dtype, size and lifetime.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "torchsched/engine.hpp"
#include "register_families.hpp"

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

  // values() at start, start + stride, ... (count of them, stride >= 1), without a step array.
  py::array_t<double> values_range(int64_t root, int64_t start, int64_t stride, int64_t count, double prev) const {
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

// ---- torchsched.lr_scheduler: a scheduler's whole step in one call ------------------------------
//
// A Stepper is one drop-in scheduler's compiled program (a root per param group, optional momentum
// roots) plus where the LRs live: Python floats in the group dicts, or a float32/float64 buffer whose
// 0-d views the groups hold. One call evaluates every group and stores every LR (and momentum). The
// torch rules compute their per-step terms once (torch_coef) and the per-group rest in the loop.

namespace lrs {

enum Combine : int { kValue = 0, kScale = 1, kPrev = 2 };  // lr = v, scale[g] * v, prev * v
enum Storage : int { kNone = 0, kFloats = 1, kBuffer = 2 };
enum MomKey : int { kNoMomentum = 0, kMomentum = 1, kBetas = 2 };

// Interned names, made once at import.
PyObject* s_lr;
PyObject* s_momentum;
PyObject* s_betas;
PyObject* s_step_count;
PyObject* s_last_epoch;
PyObject* s_optimizer;
PyObject* s_param_groups;
PyObject* s_stepper;
PyObject* s_python_step;
PyObject* s_fill;
PyObject* s_clone;

void intern_names() {
  s_lr = PyUnicode_InternFromString("lr");
  s_momentum = PyUnicode_InternFromString("momentum");
  s_betas = PyUnicode_InternFromString("betas");
  s_step_count = PyUnicode_InternFromString("_step_count");
  s_last_epoch = PyUnicode_InternFromString("last_epoch");
  s_optimizer = PyUnicode_InternFromString("optimizer");
  s_param_groups = PyUnicode_InternFromString("param_groups");
  s_stepper = PyUnicode_InternFromString("_stepper");
  s_python_step = PyUnicode_InternFromString("_python_step");
  s_fill = PyUnicode_InternFromString("fill_");
  s_clone = PyUnicode_InternFromString("clone");
}

// Stores v as d[key] and returns the object d[key] now holds (borrowed; null with a Python error). An
// exact float that only the dict references is invisible to everyone else, so overwriting its value in
// place is indistinguishable from storing a new float, and saves the allocation and the dict store
// (the float path's cost per group). TORCHSCHED_NO_CPYTHON_SHORTCUTS builds the portable path that
// other Pythons take, so it can be tested on this one.
inline PyObject* store_float(PyObject* d, PyObject* key, PyObject* old, double v) {
#if !defined(TORCHSCHED_NO_CPYTHON_SHORTCUTS) && !defined(Py_GIL_DISABLED) && !defined(Py_LIMITED_API) && \
    PY_VERSION_HEX < 0x030E0000
  if (old != nullptr && PyFloat_CheckExact(old) && Py_REFCNT(old) == 1) {
    reinterpret_cast<PyFloatObject*>(old)->ob_fval = v;
    return old;
  }
#endif
  PyObject* f = PyFloat_FromDouble(v);
  if (f == nullptr) return nullptr;
  int rc = PyDict_SetItem(d, key, f);
  Py_DECREF(f);  // the dict holds it now
  return rc == 0 ? f : nullptr;
}

// store_float for d[key] whose entry ready() saw as `seen`; relookup: Python ran since, look it up again.
inline PyObject* store_entry(PyObject* d, PyObject* key, PyObject* seen, bool relookup, double v) {
  if (relookup) {
    seen = PyDict_GetItemWithError(d, key);
    if (seen == nullptr && PyErr_Occurred()) return nullptr;
  }
  return store_float(d, key, seen, v);
}

// Unchanged group dicts: a group dict that nobody modified since our last store still holds the objects
// we saw then, so its entries need no lookup. dict_stamp(d) changes whenever d is modified:
//  * CPython 3.10/3.11: PEP 509's version tag, globally unique per modification.
//  * CPython 3.12+: PEP 509 is deprecated there (its low bits are repurposed); a dict watcher, its
//    replacement, counts every modification (and deallocation) of any watched dict, so a change to one
//    group dict makes every group look its entries up once. Our own stores count too: the step records
//    the stamp after them, and other schedulers on the same dicts see the change.
// Free-threaded and limited-API builds, and TORCHSCHED_NO_CPYTHON_SHORTCUTS (to test that path on any
// Python), look every entry up each step.
#if !defined(TORCHSCHED_NO_CPYTHON_SHORTCUTS) && !defined(Py_LIMITED_API) && !defined(Py_GIL_DISABLED) && \
    PY_VERSION_HEX < 0x030C0000
#define TS_DICT_TRACKING 1
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif
inline uint64_t dict_stamp(PyObject* d) { return reinterpret_cast<PyDictObject*>(d)->ma_version_tag; }
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
inline bool watch_dict(PyObject*) { return true; }
void start_dict_tracking() {}
bool dict_tracking_on() { return true; }
#elif !defined(TORCHSCHED_NO_CPYTHON_SHORTCUTS) && !defined(Py_LIMITED_API) && !defined(Py_GIL_DISABLED) && \
    defined(PY_VERSION_HEX) && PY_VERSION_HEX >= 0x030C0000 && !defined(PYPY_VERSION)
#define TS_DICT_TRACKING 1
uint64_t g_dict_edits = 0;  // modifications of watched dicts, under the GIL
int g_dict_watcher = -1;    // -1: no watcher slot was free; every step looks its entries up
int count_dict_edit(PyDict_WatchEvent, PyObject*, PyObject*, PyObject*) {
  ++g_dict_edits;
  return 0;
}
inline uint64_t dict_stamp(PyObject*) { return g_dict_edits; }
inline bool watch_dict(PyObject* d) {
  if (g_dict_watcher < 0) return false;
  if (PyDict_Watch(g_dict_watcher, d) == 0) return true;
  PyErr_Clear();
  return false;
}
void start_dict_tracking() {
  g_dict_watcher = PyDict_AddWatcher(count_dict_edit);
  if (g_dict_watcher < 0) PyErr_Clear();  // all slots taken: correct, only slower
}
bool dict_tracking_on() { return g_dict_watcher >= 0; }
#else
#define TS_DICT_TRACKING 0
inline uint64_t dict_stamp(PyObject*) { return 0; }
inline bool watch_dict(PyObject*) { return false; }
void start_dict_tracking() {}
bool dict_tracking_on() { return false; }
#endif

// Per-group parameters of the split torch rules: every other parameter must agree across groups for
// their shared terms to be computed once.
bool per_group_param(int32_t code, int k) { return is_per_group_param(code, k); }

class Stepper {
 public:
  Stepper(const Program& program, Int32Array roots, DoubleArray scale, int combine, Int32Array mom_roots,
          int mom_key)
      : program_(program), roots_(roots.data(), roots.data() + roots.size()),
        scale_(scale.data(), scale.data() + scale.size()),
        mroots_(mom_roots.data(), mom_roots.data() + mom_roots.size()), combine_(combine), mom_key_(mom_key) {
    const size_t G = roots_.size();
    if (G == 0) throw std::invalid_argument("a scheduler needs at least one param group");
    if (scale_.empty()) scale_.assign(G, 1.0);
    if (scale_.size() != G)
      throw std::invalid_argument("scale has " + std::to_string(scale_.size()) + " entries for " + std::to_string(G) +
                                  " groups");
    if (combine < kValue || combine > kPrev) throw std::invalid_argument("combine must be 0, 1 or 2");
    if (!mroots_.empty() && mroots_.size() != G) throw std::invalid_argument("momentum roots need one per group");
    if (mom_key < kNoMomentum || mom_key > kBetas) throw std::invalid_argument("mom_key must be 0, 1 or 2");
    if (!mroots_.empty() && mom_key == kNoMomentum) throw std::invalid_argument("momentum roots need a mom_key");
    validate_program(program_.ops(), program_.size(), program_.aux_size(), program_.aux(), roots_.data(),
                     static_cast<int64_t>(G));
    if (!mroots_.empty())
      validate_program(program_.ops(), program_.size(), program_.aux_size(), program_.aux(), mroots_.data(),
                       static_cast<int64_t>(G));
    uniform_ = is_uniform(roots_) && combine_ == kValue;
    muniform_ = !mroots_.empty() && is_uniform(mroots_);
    mirror_.assign(G, 0.0);
    vals_.assign(G, 0.0);
    mvals_.assign(G, 0.0);
    prev_.assign(G, 0.0);
    ins_.assign(G, 0.0);
    objs_.assign(G, nullptr);
    mobjs_.assign(G, nullptr);
    seen_dict_.assign(G, nullptr);
    seen_ver_.assign(G, 0);
  }

  int64_t groups() const { return static_cast<int64_t>(roots_.size()); }

  // Python callables (or None) per group: their value at this step is ctx.prev of that group's root.
  void set_callables(py::object fns, py::object mom_fns, double cycle_total) {
    fns_ = callables(fns, "fns");
    mfns_ = callables(mom_fns, "mom_fns");
    cycle_total_ = cycle_total;
    if (!fns_.empty()) uniform_ = false;
    if (!mfns_.empty()) muniform_ = false;
  }

  void bind_floats() { storage_ = kFloats; views_ = py::tuple(); ptr_ = 0; forget_dicts(); }
  void bind_buffer(py::tuple views, std::uintptr_t ptr, int32_t dtype) {
    check_dtype(dtype);
    if (static_cast<int64_t>(views.size()) != groups())
      throw std::invalid_argument("got " + std::to_string(views.size()) + " LR views for " + std::to_string(groups()) +
                                  " groups");
    if (ptr == 0) throw std::invalid_argument("the LR buffer pointer is null");
    storage_ = kBuffer; views_ = std::move(views); ptr_ = ptr; dtype_ = dtype;
    forget_dicts();
  }
  void unbind() { storage_ = kNone; views_ = py::tuple(); ptr_ = 0; forget_dicts(); }
  int storage() const { return storage_; }

  // Group keys the program was compiled from (OneCycleLR's max_lr, SWALR's swa_lr, ...) and their values,
  // group by group: torch reads them every step, so a step is not ready once one of them changes.
  void watch(py::tuple keys, DoubleArray values) {
    const size_t K = keys.size();
    if (static_cast<size_t>(values.size()) != K * roots_.size())
      throw std::invalid_argument("watch needs one value per group and key");
    std::vector<py::object> names;
    for (size_t k = 0; k < K; ++k) {
      PyObject* name = keys[k].ptr();
      if (!PyUnicode_CheckExact(name)) throw py::type_error("watched keys must be str");
      Py_INCREF(name);
      PyUnicode_InternInPlace(&name);
      names.push_back(py::reinterpret_steal<py::object>(name));
    }
    wkeys_ = std::move(names);
    wvals_.assign(values.data(), values.data() + values.size());
    forget_dicts();
  }

  // Whether every watched key still holds its compiled value, read as Python would (a tensor's value too).
  bool watched_same(py::object groups) const {
    PyObject* list = groups.ptr();
    if (wkeys_.empty()) return true;
    if (!PyList_Check(list) || static_cast<size_t>(PyList_GET_SIZE(list)) != roots_.size()) return false;
    for (Py_ssize_t g = 0; g < static_cast<Py_ssize_t>(roots_.size()); ++g) {
      if (g >= PyList_GET_SIZE(list)) return false;  // a __float__ below may edit the list
      py::object d = py::reinterpret_borrow<py::object>(PyList_GET_ITEM(list, g));
      if (!watched_match(d.ptr(), g, false)) return false;
    }
    return true;
  }

  // Phase 1, no Python code runs: can this step be stored in place? Collects the previous LRs.
  bool ready(PyObject* groups, double t) {
    const Py_ssize_t G = static_cast<Py_ssize_t>(roots_.size());
    if (storage_ == kNone || !PyList_CheckExact(groups) || PyList_GET_SIZE(groups) != G) return false;
    if (!(t <= max_step_)) return false;
    for (Py_ssize_t g = 0; g < G; ++g) {
      PyObject* d = PyList_GET_ITEM(groups, g);
      if (!PyDict_CheckExact(d)) return false;
      if (TS_DICT_TRACKING && d == seen_dict_[g] && dict_stamp(d) == seen_ver_[g]) {
        // unchanged since our last store: objs_[g] / mobjs_[g] are still its entries, checked then
        if (storage_ == kFloats) {
          PyObject* v = objs_[g];
          prev_[g] = PyFloat_Check(v) ? PyFloat_AS_DOUBLE(v) : PyLong_AsDouble(v);
        }
        continue;
      }
      seen_dict_[g] = nullptr;
      if (!wkeys_.empty() && !watched_match(d, g, true)) return false;
      PyObject* v = PyDict_GetItemWithError(d, s_lr);
      if (v == nullptr) { PyErr_Clear(); return false; }
      if (storage_ == kFloats) {
        if (PyFloat_Check(v)) prev_[g] = PyFloat_AS_DOUBLE(v);
        else if (PyLong_CheckExact(v)) {
          prev_[g] = PyLong_AsDouble(v);
          if (prev_[g] == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return false; }
        } else return false;
        objs_[g] = v;
      } else if (v != PyTuple_GET_ITEM(views_.ptr(), g)) {
        return false;
      }
      // the momentum entry too, in the same pass over the dict (it is in cache now)
      if (mom_key_ == kBetas) {
        PyObject* b = PyDict_GetItemWithError(d, s_betas);
        if (b == nullptr) { PyErr_Clear(); return false; }
        if (!PyTuple_Check(b) || PyTuple_GET_SIZE(b) < 1) return false;
        mobjs_[g] = b;
      } else if (mom_key_ == kMomentum) {
        mobjs_[g] = PyDict_GetItemWithError(d, s_momentum);
        if (mobjs_[g] == nullptr && PyErr_Occurred()) { PyErr_Clear(); return false; }
      }
    }
    if (storage_ == kBuffer) {
      if (dtype_ == DT_FLOAT32) {
        const float* buf = reinterpret_cast<const float*>(ptr_);
        for (Py_ssize_t g = 0; g < G; ++g) prev_[g] = static_cast<double>(buf[g]);
      } else {
        const double* buf = reinterpret_cast<const double*>(ptr_);
        for (Py_ssize_t g = 0; g < G; ++g) prev_[g] = buf[g];
      }
    }
    return true;
  }

  // Phase 2 after ready(): evaluate (Python callables may run) and store. False with a Python error set.
  bool run(PyObject* groups, double t, PyObject* t_obj, double u) {
    const Py_ssize_t G = static_cast<Py_ssize_t>(roots_.size());
    bool unchanged = false;
    if (!evaluate_lrs(t, t_obj, u, prev_.data(), vals_.data(), &unchanged)) return false;
    if (!mroots_.empty() && !evaluate_momentum(t, t_obj, u, mvals_.data())) return false;
    const bool relookup = !fns_.empty() || !mfns_.empty();  // Python ran since ready()
    if (relookup) forget_dicts();
    if (!unchanged) {
      if (storage_ == kFloats) {
        for (Py_ssize_t g = 0; g < G; ++g) {
          objs_[g] = store_entry(PyList_GET_ITEM(groups, g), s_lr, objs_[g], relookup, vals_[g]);
          if (objs_[g] == nullptr) return false;
        }
      } else if (dtype_ == DT_FLOAT32) {
        float* buf = reinterpret_cast<float*>(ptr_);
        for (Py_ssize_t g = 0; g < G; ++g) buf[g] = static_cast<float>(vals_[g]);
      } else {
        double* buf = reinterpret_cast<double*>(ptr_);
        for (Py_ssize_t g = 0; g < G; ++g) buf[g] = vals_[g];
      }
    }
    if (!mroots_.empty() && !store_momentum(groups, relookup)) return false;
    std::memcpy(mirror_.data(), vals_.data(), sizeof(double) * static_cast<size_t>(G));
    if (TS_DICT_TRACKING && !relookup) {
      // every group's entries are what objs_ / mobjs_ hold now: remember each dict's stamp
      for (Py_ssize_t g = 0; g < G; ++g) {
        PyObject* d = PyList_GET_ITEM(groups, g);
        seen_dict_[g] = (d == seen_dict_[g] || watch_dict(d)) ? d : nullptr;
        seen_ver_[g] = dict_stamp(d);
      }
    }
    fresh_ = true;
    return true;
  }

  void forget_dicts() { std::fill(seen_dict_.begin(), seen_dict_.end(), nullptr); }

  bool try_step(py::object groups, py::object t_obj, double u) {
    const double t = number(t_obj.ptr(), "t");
    if (!ready(groups.ptr(), t)) return false;
    if (!run(groups.ptr(), t, t_obj.ptr(), u)) throw py::error_already_set();
    return true;
  }

  // The LRs this step would give for the previous LRs `prevs` (None: zeros), without storing anything.
  py::list compute(py::object t_obj, py::object prevs, double u) {
    const double t = number(t_obj.ptr(), "t");
    const size_t G = roots_.size();
    std::vector<double> prev(G, 0.0), out(G, 0.0);
    if (!prevs.is_none()) {
      py::sequence seq = prevs.cast<py::sequence>();
      if (seq.size() != G) throw std::invalid_argument("prevs needs one value per group");
      for (size_t g = 0; g < G; ++g) prev[g] = number(seq[g].ptr(), "prevs");
    }
    bool unchanged = false;
    if (!evaluate_lrs(t, t_obj.ptr(), u, prev.data(), out.data(), &unchanged)) throw py::error_already_set();
    return to_list(out);
  }

  py::list compute_momentum(py::object t_obj, double u) {
    if (mroots_.empty()) throw std::invalid_argument("this scheduler has no momentum program");
    const double t = number(t_obj.ptr(), "t");
    std::vector<double> out(roots_.size(), 0.0);
    if (!evaluate_momentum(t, t_obj.ptr(), u, out.data())) throw py::error_already_set();
    return to_list(out);
  }

  py::list lrs() const { return to_list(mirror_); }

  bool fast_ok_ = false;  // the C-level step() may run this scheduler
  bool fresh_ = false;    // the mirror holds the LRs of the latest step (the lazy _last_lr reads it)
  int clock_ = 0;         // 0: t = last_epoch; 1: t = _step_count - 1 (SWALR)
  double max_step_ = INFINITY;
  bool uniform_ = false, muniform_ = false;

 private:
  static double number(PyObject* o, const char* what) {
    double v = PyFloat_AsDouble(o);
    if (v == -1.0 && PyErr_Occurred()) throw py::error_already_set();
    (void)what;
    return v;
  }

  // strict (ready(), where no Python code may run): only exact floats and ints are read; anything else
  // (a tensor) is left to Python. A missing key or an error counts as a change.
  bool watched_match(PyObject* d, Py_ssize_t g, bool strict) const {
    if (!PyDict_Check(d)) return false;
    const size_t K = wkeys_.size();
    for (size_t k = 0; k < K; ++k) {
      PyObject* v = PyDict_GetItemWithError(d, wkeys_[k].ptr());
      if (v == nullptr) { PyErr_Clear(); return false; }
      double x;
      if (PyFloat_CheckExact(v)) {
        x = PyFloat_AS_DOUBLE(v);
      } else if (PyLong_CheckExact(v)) {
        x = PyLong_AsDouble(v);
      } else if (strict) {
        return false;
      } else {
        py::object held = py::reinterpret_borrow<py::object>(v);  // its __float__ may edit the dict
        x = PyFloat_AsDouble(held.ptr());
      }
      if (x == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return false; }
      if (!(x == wvals_[static_cast<size_t>(g) * K + k])) return false;
    }
    return true;
  }

  static py::list to_list(const std::vector<double>& v) {
    py::list out(v.size());
    for (size_t g = 0; g < v.size(); ++g) out[g] = py::float_(v[g]);
    return out;
  }

  std::vector<py::object> callables(py::object fns, const char* name) {
    std::vector<py::object> out;
    if (fns.is_none()) return out;
    py::sequence seq = fns.cast<py::sequence>();
    if (seq.size() != roots_.size())
      throw std::invalid_argument(std::string(name) + " needs one entry per group");
    for (size_t g = 0; g < roots_.size(); ++g) {
      py::object f = seq[g];
      if (!f.is_none() && !PyCallable_Check(f.ptr()))
        throw py::type_error(std::string(name) + "[" + std::to_string(g) + "] is not callable");
      out.push_back(f);
    }
    return out;
  }

  bool is_uniform(const std::vector<int32_t>& roots) const {
    const Op* ops = program_.ops();
    const Op& first = ops[roots[0]];
    if (first.size != 1 || !torch_split(first.code)) return false;
    if (first.code == OP_TORCH_CYCLIC && first.p[4] == 3.0) return false;
    for (int32_t r : roots) {
      const Op& op = ops[r];
      if (op.size != 1 || op.code != first.code || op.a != first.a || op.b != first.b) return false;
      for (int k = 0; k < kNumParams; ++k)
        if (!per_group_param(op.code, k) && !(op.p[k] == first.p[k])) return false;
    }
    return true;
  }

  // The callables' values at this step, in group order (torch's order), into ins_.
  bool call_all(const std::vector<py::object>& fns, double t, PyObject* t_obj) {
    PyObject* arg = t_obj;
    PyObject* owned = nullptr;
    if (cycle_total_ > 0.0) {  // CyclicLR in 'cycle' mode calls scale_fn(cycle), cycle an int
      owned = PyLong_FromDouble(floor(1.0 + t / cycle_total_));
      if (owned == nullptr) return false;
      arg = owned;
    }
    bool ok = true;
    for (size_t g = 0; g < fns.size() && ok; ++g) {
      if (fns[g].is_none()) continue;
      PyObject* r = PyObject_CallOneArg(fns[g].ptr(), arg);
      if (r == nullptr) { ok = false; break; }
      ins_[g] = PyFloat_AsDouble(r);
      Py_DECREF(r);
      if (ins_[g] == -1.0 && PyErr_Occurred()) ok = false;
    }
    Py_XDECREF(owned);
    return ok;
  }

  bool evaluate_lrs(double t, PyObject* t_obj, double u, const double* prev, double* out, bool* unchanged) {
    const Op* ops = program_.ops();
    const double* aux = program_.aux();
    const size_t G = roots_.size();
    if (uniform_) {
      TorchCoef k;
      torch_coef(ops[roots_[0]], aux, t, 0.0, k);
      if (k.kind == 0) {
        std::memcpy(out, prev, sizeof(double) * G);
        *unchanged = true;
        return true;
      }
      for (size_t g = 0; g < G; ++g) out[g] = torch_apply(ops[roots_[g]], k, prev[g]);
      return true;
    }
    if (!fns_.empty() && !call_all(fns_, t, t_obj)) return false;
    const bool has_u = !std::isnan(u);
    for (size_t g = 0; g < G; ++g) {
      double in = prev[g];
      if (!fns_.empty() && !fns_[g].is_none()) in = ins_[g];
      else if (has_u) in = u;
      const double v = evaluate(ops, aux, roots_[g], t, Ctx{in});
      out[g] = (combine_ == kScale) ? scale_[g] * v : (combine_ == kPrev ? prev[g] * v : v);
    }
    return true;
  }

  bool evaluate_momentum(double t, PyObject* t_obj, double u, double* out) {
    const Op* ops = program_.ops();
    const double* aux = program_.aux();
    const size_t G = mroots_.size();
    if (muniform_) {
      TorchCoef k;
      torch_coef(ops[mroots_[0]], aux, t, 0.0, k);
      for (size_t g = 0; g < G; ++g) out[g] = torch_apply(ops[mroots_[g]], k, 0.0);
      return true;
    }
    if (!mfns_.empty() && !call_all(mfns_, t, t_obj)) return false;
    const bool has_u = !std::isnan(u);
    for (size_t g = 0; g < G; ++g) {
      double in = has_u ? u : 0.0;
      if (!mfns_.empty() && !mfns_[g].is_none()) in = ins_[g];
      out[g] = evaluate(ops, aux, mroots_[g], t, Ctx{in});
    }
    return true;
  }

  // relookup: Python code ran since ready() collected the entries (callables), so look them up again.
  bool store_momentum(PyObject* groups, bool relookup) {
    const Py_ssize_t G = static_cast<Py_ssize_t>(mroots_.size());
    for (Py_ssize_t g = 0; g < G; ++g) {
      PyObject* d = PyList_GET_ITEM(groups, g);
      if (mom_key_ == kMomentum) {
        mobjs_[g] = store_entry(d, s_momentum, mobjs_[g], relookup, mvals_[g]);
        if (mobjs_[g] == nullptr) return false;
        continue;
      }
      // betas = (momentum, *betas[1:]): a new tuple, as torch stores
      PyObject* old = relookup ? PyDict_GetItemWithError(d, s_betas) : mobjs_[g];
      if (old == nullptr) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_KeyError, "betas");
        return false;
      }
      PyObject* seq = PySequence_Tuple(old);
      if (seq == nullptr) return false;
      const Py_ssize_t n = PyTuple_GET_SIZE(seq);
      PyObject* fresh = PyTuple_New(n > 0 ? n : 1);
      PyObject* m = PyFloat_FromDouble(mvals_[g]);
      if (fresh == nullptr || m == nullptr) { Py_XDECREF(fresh); Py_XDECREF(m); Py_DECREF(seq); return false; }
      PyTuple_SET_ITEM(fresh, 0, m);
      for (Py_ssize_t i = 1; i < n; ++i) {
        PyObject* item = PyTuple_GET_ITEM(seq, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(fresh, i, item);
      }
      Py_DECREF(seq);
      int rc = PyDict_SetItem(d, s_betas, fresh);
      Py_DECREF(fresh);  // the dict holds it now
      if (rc != 0) return false;
      mobjs_[g] = fresh;
    }
    return true;
  }

  Program program_;
  std::vector<int32_t> roots_;
  std::vector<double> scale_;
  std::vector<int32_t> mroots_;
  int combine_;
  int mom_key_;
  std::vector<py::object> fns_, mfns_;
  double cycle_total_ = 0.0;
  int storage_ = kNone;
  py::tuple views_;
  std::uintptr_t ptr_ = 0;
  int32_t dtype_ = DT_FLOAT64;
  std::vector<double> mirror_, vals_, mvals_, prev_, ins_;
  // Borrowed entries of each group dict: lr (floats) and momentum / betas. Valid from ready() to the
  // store when no Python code ran in between, and across steps while the dict's stamp is seen_ver_.
  std::vector<PyObject*> objs_, mobjs_;
  std::vector<PyObject*> seen_dict_;  // compared, never dereferenced unless equal to the live dict
  std::vector<uint64_t> seen_ver_;
  std::vector<py::object> wkeys_;  // watched group keys (interned) and their values, G x K
  std::vector<double> wvals_;
};

Stepper* stepper_of(PyObject* obj) {
  if (obj == Py_None) return nullptr;
  try {
    return py::handle(obj).cast<Stepper*>();
  } catch (const py::cast_error&) {
    return nullptr;
  }
}

// scheduler.step(epoch=None) for the drop-in classes. The common case (no epoch, a bound Stepper, the
// first step done) runs here: torch's counters in the instance dict, then one Stepper call. Everything
// else (the call-order warnings of the first step, step(epoch), a changed optimizer) goes to the
// Python slow path, self._python_step(epoch).
// As a method descriptor (METH_FASTCALL | METH_KEYWORDS): `self` is the scheduler, args the rest.
// Being a method descriptor, `scheduler.step()` allocates no bound-method object.
PyObject* scheduler_step(PyObject* self, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  PyObject* epoch = Py_None;
  if (nargs + nkw > 1) {
    PyErr_Format(PyExc_TypeError, "step() takes from 1 to 2 positional arguments but %zd were given", nargs + nkw + 1);
    return nullptr;
  }
  if (nargs == 1) epoch = args[0];
  if (nkw == 1) {
    if (PyUnicode_CompareWithASCIIString(PyTuple_GET_ITEM(kwnames, 0), "epoch") != 0) {
      PyErr_Format(PyExc_TypeError, "step() got an unexpected keyword argument '%U'", PyTuple_GET_ITEM(kwnames, 0));
      return nullptr;
    }
    epoch = args[nargs];
  }
  if (epoch != Py_None) return PyObject_CallMethodOneArg(self, s_python_step, epoch);

  PyObject* st_obj = PyObject_GetAttr(self, s_stepper);
  if (st_obj == nullptr) return nullptr;
  Stepper* st = stepper_of(st_obj);
  PyObject* result = nullptr;
  PyObject* d = nullptr;
  PyObject* groups = nullptr;
  bool slow = true;
  if (st != nullptr && st->fast_ok_) {
    d = PyObject_GenericGetDict(self, nullptr);
    if (d == nullptr) goto done;
    {
      PyObject* sc = PyDict_GetItemWithError(d, s_step_count);
      PyObject* le = sc ? PyDict_GetItemWithError(d, s_last_epoch) : nullptr;
      PyObject* opt = le ? PyDict_GetItemWithError(d, s_optimizer) : nullptr;
      if (opt == nullptr) {
        if (PyErr_Occurred()) goto done;
      } else if (PyLong_CheckExact(sc) && PyLong_CheckExact(le)) {
        int of1 = 0, of2 = 0;
        const long long scv = PyLong_AsLongLongAndOverflow(sc, &of1);
        const long long lev = PyLong_AsLongLongAndOverflow(le, &of2);
        if (!of1 && !of2 && scv >= 2 && scv < (1LL << 52) && lev > -(1LL << 52) && lev < (1LL << 52)) {
          groups = PyObject_GetAttr(opt, s_param_groups);
          if (groups == nullptr) goto done;
          const double t = (st->clock_ == 1) ? static_cast<double>(scv) : static_cast<double>(lev + 1);
          if (st->ready(groups, t)) {
            slow = false;
            PyObject* nsc = PyLong_FromLongLong(scv + 1);
            PyObject* nle = nsc ? PyLong_FromLongLong(lev + 1) : nullptr;
            if (nle == nullptr || PyDict_SetItem(d, s_step_count, nsc) != 0 || PyDict_SetItem(d, s_last_epoch, nle) != 0) {
              Py_XDECREF(nsc);
              Py_XDECREF(nle);
              goto done;
            }
            const bool ok = st->run(groups, t, nle, NAN);
            Py_DECREF(nsc);
            Py_DECREF(nle);
            if (!ok) goto done;
            Py_INCREF(Py_None);
            result = Py_None;
          }
        }
      }
    }
  }
  if (slow) result = PyObject_CallMethodOneArg(self, s_python_step, Py_None);
done:
  Py_XDECREF(groups);
  Py_XDECREF(d);
  Py_DECREF(st_obj);
  return result;
}

PyMethodDef scheduler_step_def = {
    "step", reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)(void)>(scheduler_step)),
    METH_FASTCALL | METH_KEYWORDS,
    "step($self, /, epoch=None)\n--\n\n"
    "Step the scheduler: advance last_epoch and store every group's LR (and momentum) in one core call.\n\n"
    "Call it after optimizer.step(). ``epoch`` is deprecated, as in torch: when given, last_epoch is set to it\n"
    "and the closed form is used where the class has one, with torch's deprecation warning."};

// ---- ReduceLROnPlateau -------------------------------------------------------------------------

double as_double(PyObject* o) {
  double v = PyFloat_AsDouble(o);
  if (v == -1.0 && PyErr_Occurred()) throw py::error_already_set();
  return v;
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
      PyObject* cur = item(group, "lr");
      if (PyObject_IsInstance(cur, tensor_type.ptr()) == 1) {
        py::reinterpret_borrow<py::object>(cur).attr("fill_")(new_lr);
      } else {
        group["lr"] = py::float_(new_lr);
      }
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

void register_bindings(py::module_& m) {
  intern_names();
  start_dict_tracking();
  py::class_<Stepper>(m, "Stepper", "One drop-in scheduler's compiled program and LR storage (torchsched.lr_scheduler).")
      .def(py::init<const Program&, Int32Array, DoubleArray, int, Int32Array, int>(), py::arg("program"),
           py::arg("roots"), py::arg("scale"), py::arg("combine") = 0,
           py::arg("mom_roots") = Int32Array(0), py::arg("mom_key") = 0)
      .def_property_readonly("groups", &Stepper::groups)
      .def_property_readonly("storage", &Stepper::storage)
      .def_readwrite("fast_ok", &Stepper::fast_ok_)
      .def_readwrite("fresh", &Stepper::fresh_)
      .def_readwrite("clock", &Stepper::clock_)
      .def_readwrite("max_step", &Stepper::max_step_)
      .def_readonly("uniform", &Stepper::uniform_)
      .def("set_callables", &Stepper::set_callables, py::arg("fns"), py::arg("mom_fns") = py::none(),
           py::arg("cycle_total") = 0.0)
      .def("bind_floats", &Stepper::bind_floats)
      .def("bind_buffer", &Stepper::bind_buffer, py::arg("views"), py::arg("ptr"), py::arg("dtype"))
      .def("unbind", &Stepper::unbind)
      .def("watch", &Stepper::watch, py::arg("keys"), py::arg("values"))
      .def("watched_same", &Stepper::watched_same, py::arg("groups"))
      .def("try_step", &Stepper::try_step, py::arg("groups"), py::arg("t"), py::arg("u") = NAN)
      .def("compute", &Stepper::compute, py::arg("t"), py::arg("prevs") = py::none(), py::arg("u") = NAN)
      .def("compute_momentum", &Stepper::compute_momentum, py::arg("t"), py::arg("u") = NAN)
      .def("lrs", &Stepper::lrs);
  m.def(
      "scheduler_step_method",
      [](py::handle cls) {
        if (!PyType_Check(cls.ptr())) throw py::type_error("scheduler_step_method needs a class");
        PyObject* descr = PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls.ptr()), &scheduler_step_def);
        if (descr == nullptr) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(descr);
      },
      py::arg("cls"),
      "The C-level step(self, epoch=None) as a method of `cls` (set it as the class's `step`).");
  m.def("plateau_step", &plateau_step, py::arg("state"), py::arg("groups"), py::arg("metric"), py::arg("tensor_type"),
        "One ReduceLROnPlateau step on the scheduler's __dict__: update, reduce every group when due; returns _last_lr.");
}

}  // namespace lrs

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
  m.def("cpython_shortcuts", [] { return lrs::dict_tracking_on(); },
        "True when the scheduler step skips lookups in unchanged group dicts (dict versions or a watcher).");
  m.def("cuda_available", &core_cuda_available, "True when built with CUDA and a CUDA device is visible.");

  py::class_<Program>(m, "Program")
      .def(py::init<py::buffer, DoubleArray>(), py::arg("ops"), py::arg("aux"))
      .def_property_readonly("size", &Program::size)
      .def("value", &Program::value, py::arg("root"), py::arg("step"), py::arg("prev") = 0.0)
      .def("values", &Program::values, py::arg("root"), py::arg("steps"), py::arg("prev") = 0.0)
      .def("values_range", &Program::values_range, py::arg("root"), py::arg("start"), py::arg("stride"),
           py::arg("count"), py::arg("prev") = 0.0)
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

  lrs::register_bindings(m);  // torchsched.lr_scheduler: Stepper, scheduler_step, plateau_step
  register_families(m);  // FAMILIES: the op-code table (families.def)

  m.def("advance_cuda", &advance_cuda, py::arg("ops"), py::arg("aux"), py::arg("roots"), py::arg("scale"),
        py::arg("groups"), py::arg("step"), py::arg("blocks_done"), py::arg("mirror"), py::arg("out"), py::arg("dtype"),
        py::arg("read_prev"), py::arg("found_inf"), py::arg("advance"), py::arg("stream"),
        "One CUDA launch: advance the device step counter (unless *found_inf) and write every group's LR.");
}
