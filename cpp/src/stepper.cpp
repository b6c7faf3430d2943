// The drop-in schedulers' per-step fast path: the Stepper's evaluate-and-store, and the C-level step()
// that runs it without entering Python (scheduler_step).
#include "stepper.hpp"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>

#include "bind_common.hpp"

namespace torchsched::bindings {
namespace {

py::list to_list(const std::vector<double>& v) {
  py::list out(v.size());
  for (size_t g = 0; g < v.size(); ++g) out[g] = py::float_(v[g]);
  return out;
}

}  // namespace

Stepper::Stepper(const Program& program, Int32Array roots, DoubleArray scale, int combine, Int32Array mom_roots,
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

void Stepper::set_callables(py::object fns, py::object mom_fns, double cycle_total) {
  fns_ = callables(fns, "fns");
  mfns_ = callables(mom_fns, "mom_fns");
  cycle_total_ = cycle_total;
  if (!fns_.empty()) uniform_ = false;
  if (!mfns_.empty()) muniform_ = false;
}

void Stepper::bind_floats() {
  storage_ = kFloats;
  float32_ = false;
  views_ = py::tuple();
  ptr_ = 0;
  forget_dicts();
}

void Stepper::bind_buffer(py::tuple views, std::uintptr_t ptr, int32_t dtype) {
  check_dtype(dtype);
  if (static_cast<int64_t>(views.size()) != groups())
    throw std::invalid_argument("got " + std::to_string(views.size()) + " LR views for " + std::to_string(groups()) +
                                " groups");
  if (ptr == 0) throw std::invalid_argument("the LR buffer pointer is null");
  storage_ = kBuffer;
  float32_ = dtype == DT_FLOAT32;
  views_ = std::move(views);
  ptr_ = ptr;
  dtype_ = dtype;
  forget_dicts();
}

void Stepper::unbind() {
  storage_ = kNone;
  views_ = py::tuple();
  ptr_ = 0;
  forget_dicts();
}

void Stepper::watch(py::tuple keys, DoubleArray values) {
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

bool Stepper::watched_same(py::object groups) const {
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

bool Stepper::ready(PyObject* groups, double t) {
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

LrDest Stepper::lr_dest() const {
  if (storage_ == kFloats) return LrDest{LrHome::kDictFloat, s_lr, nullptr};
  return LrDest{dtype_ == DT_FLOAT32 ? LrHome::kBufferF32 : LrHome::kBufferF64, s_lr, reinterpret_cast<void*>(ptr_)};
}

bool Stepper::run(PyObject* groups, double t, PyObject* t_obj, double u) {
  const Py_ssize_t G = static_cast<Py_ssize_t>(roots_.size());
  bool unchanged = false;
  if (!evaluate_lrs(t, t_obj, u, prev_.data(), vals_.data(), &unchanged)) return false;
  if (!mroots_.empty() && !evaluate_momentum(t, t_obj, u, mvals_.data())) return false;
  const bool relookup = !fns_.empty() || !mfns_.empty();  // Python ran since ready()
  if (relookup) {
    forget_dicts();
    std::fill(objs_.begin(), objs_.end(), nullptr);  // the stores look every entry up again
    std::fill(mobjs_.begin(), mobjs_.end(), nullptr);
  }
  if (!unchanged) {
    const LrDest dest = lr_dest();
    for (Py_ssize_t g = 0; g < G; ++g)
      if (!store_group_lr(dest, PyList_GET_ITEM(groups, g), g, objs_[g], vals_[g])) return false;
  }
  if (!mroots_.empty() && !store_momentum(groups)) return false;
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

void Stepper::forget_dicts() { std::fill(seen_dict_.begin(), seen_dict_.end(), nullptr); }

bool Stepper::try_step(py::object groups, py::object t_obj, double u) {
  const double t = as_double(t_obj.ptr());
  if (!ready(groups.ptr(), t)) return false;
  if (!run(groups.ptr(), t, t_obj.ptr(), u)) throw py::error_already_set();
  return true;
}

py::list Stepper::compute(py::object t_obj, py::object prevs, double u) {
  const double t = as_double(t_obj.ptr());
  const size_t G = roots_.size();
  std::vector<double> prev(G, 0.0), out(G, 0.0);
  if (!prevs.is_none()) {
    py::sequence seq = prevs.cast<py::sequence>();
    if (seq.size() != G) throw std::invalid_argument("prevs needs one value per group");
    for (size_t g = 0; g < G; ++g) prev[g] = as_double(seq[g].ptr());
  }
  bool unchanged = false;
  if (!evaluate_lrs(t, t_obj.ptr(), u, prev.data(), out.data(), &unchanged)) throw py::error_already_set();
  return to_list(out);
}

py::list Stepper::compute_momentum(py::object t_obj, double u) {
  if (mroots_.empty()) throw std::invalid_argument("this scheduler has no momentum program");
  const double t = as_double(t_obj.ptr());
  std::vector<double> out(roots_.size(), 0.0);
  if (!evaluate_momentum(t, t_obj.ptr(), u, out.data())) throw py::error_already_set();
  return to_list(out);
}

py::list Stepper::lrs() const { return to_list(mirror_); }

// strict (ready(), where no Python code may run): only exact floats and ints are read; anything else
// (a tensor) is left to Python. A missing key or an error counts as a change.
bool Stepper::watched_match(PyObject* d, Py_ssize_t g, bool strict) const {
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

std::vector<py::object> Stepper::callables(py::object fns, const char* name) {
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

bool Stepper::is_uniform(const std::vector<int32_t>& roots) const {
  const Op* ops = program_.ops();
  const Op& first = ops[roots[0]];
  if (first.size != 1 || !torch_split(first.code)) return false;
  if (first.code == OP_TORCH_CYCLIC && first.p[4] == 3.0) return false;
  for (int32_t r : roots) {
    const Op& op = ops[r];
    if (op.size != 1 || op.code != first.code || op.a != first.a || op.b != first.b) return false;
    for (int k = 0; k < kNumParams; ++k)
      if (!is_per_group_param(op.code, k) && !(op.p[k] == first.p[k])) return false;
  }
  return true;
}

// The callables' values at this step, in group order (torch's order), into ins_.
bool Stepper::call_all(const std::vector<py::object>& fns, double t, PyObject* t_obj) {
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

// The one check of the drop-ins' invariant: a non-finite LR (or one a float32 LR buffer cannot hold) is
// never stored. Every LR a Stepper gives, stored here or by Python, passes through evaluate_lrs.
bool Stepper::refuse_non_finite(const double* out, double t) const {
  const bool narrow = storage_ == kBuffer && dtype_ == DT_FLOAT32;
  for (size_t g = 0; g < roots_.size(); ++g) {
    const double v = out[g];
    if (std::isfinite(v) && !(narrow && !std::isfinite(static_cast<float>(v)))) continue;
    const std::string shown = std::isfinite(v) ? std::to_string(v) + " (beyond float32, the LR tensors' dtype)"
                                               : (std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"));
    char step[32];
    std::snprintf(step, sizeof step, "%.17g", t);
    PyErr_Format(non_finite_lr_error,
                 "%s: the LR of group %zu would be %s at step %s; the step is refused and every LR, last_epoch and "
                 "the step count stay as they were",
                 owner_.c_str(), g, shown.c_str(), step);
    return true;
  }
  return false;
}

bool Stepper::evaluate_lrs(double t, PyObject* t_obj, double u, const double* prev, double* out, bool* unchanged) {
  if (!evaluate_lrs_unchecked(t, t_obj, u, prev, out, unchanged)) return false;
  return !refuse_non_finite(out, t);
}

bool Stepper::evaluate_lrs_unchecked(double t, PyObject* t_obj, double u, const double* prev, double* out,
                                     bool* unchanged) {
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
    for (size_t g = 0; g < G; ++g) out[g] = torch_apply(ops[roots_[g]], k, prev[g], float32_);
    return true;
  }
  if (!fns_.empty() && !call_all(fns_, t, t_obj)) return false;
  const bool has_u = !std::isnan(u);
  for (size_t g = 0; g < G; ++g) {
    double in = prev[g];
    if (!fns_.empty() && !fns_[g].is_none()) in = ins_[g];
    else if (has_u) in = u;
    const double v = evaluate(ops, aux, roots_[g], t, Ctx{in, nullptr, float32_});
    if (float32_ && combine_ != kValue) {  // base_lr (a float32 tensor) or group["lr"] times a Python float
      out[g] = f32((combine_ == kScale ? scale_[g] : prev[g]) * f32(v));
      continue;
    }
    out[g] = (combine_ == kScale) ? scale_[g] * v : (combine_ == kPrev ? prev[g] * v : v);
  }
  return true;
}

bool Stepper::evaluate_momentum(double t, PyObject* t_obj, double u, double* out) {
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

// A null mobjs_[g]: Python code ran since ready() collected the entries (callables), so look it up again.
bool Stepper::store_momentum(PyObject* groups) {
  const Py_ssize_t G = static_cast<Py_ssize_t>(mroots_.size());
  const LrDest momentum{LrHome::kDictFloat, s_momentum, nullptr};
  for (Py_ssize_t g = 0; g < G; ++g) {
    PyObject* d = PyList_GET_ITEM(groups, g);
    if (mom_key_ == kMomentum) {
      if (!store_group_lr(momentum, d, g, mobjs_[g], mvals_[g])) return false;
      continue;
    }
    // betas = (momentum, *betas[1:]): a new tuple, as torch stores
    PyObject* old = mobjs_[g] != nullptr ? mobjs_[g] : PyDict_GetItemWithError(d, s_betas);
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

namespace {

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
            Py_INCREF(sc);  // kept alive past the stores below, to restore them if the step is refused
            Py_INCREF(le);
            PyObject* nsc = PyLong_FromLongLong(scv + 1);
            PyObject* nle = nsc ? PyLong_FromLongLong(lev + 1) : nullptr;
            if (nle == nullptr || PyDict_SetItem(d, s_step_count, nsc) != 0 || PyDict_SetItem(d, s_last_epoch, nle) != 0) {
              Py_XDECREF(nsc);
              Py_XDECREF(nle);
              Py_DECREF(sc);
              Py_DECREF(le);
              goto done;
            }
            const bool ok = st->run(groups, t, nle, NAN);
            Py_DECREF(nsc);
            Py_DECREF(nle);
            if (!ok) {
              if (PyErr_ExceptionMatches(non_finite_lr_error)) {  // a refused step moves no counter; torch's
                PyObject *err_type, *err_value, *err_tb;             // own errors move them, as in torch
                PyErr_Fetch(&err_type, &err_value, &err_tb);
                PyDict_SetItem(d, s_step_count, sc);
                PyDict_SetItem(d, s_last_epoch, le);
                PyErr_Restore(err_type, err_value, err_tb);
              }
              Py_DECREF(sc);
              Py_DECREF(le);
              goto done;
            }
            Py_DECREF(sc);
            Py_DECREF(le);
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

}  // namespace

PyObject* scheduler_step_method(PyObject* cls) {
  return PyDescr_NewMethod(reinterpret_cast<PyTypeObject*>(cls), &scheduler_step_def);
}

}  // namespace torchsched::bindings
