// Stepper: one drop-in scheduler's compiled program and where its LRs live, and the C-level step()
// (scheduler_step) that runs it. Definitions in stepper.cpp, pybind11 face in register_stepper.cpp.
//
// A Stepper is a root per param group (optional momentum roots) plus the LRs' home: Python floats in the
// group dicts, or a float32/float64 buffer whose 0-d views the groups hold. One call evaluates every
// group and stores every LR (and momentum). The torch rules compute their per-step terms once
// (torch_coef) and the per-group rest in the loop.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "group_store.hpp"
#include "program.hpp"

namespace torchsched::bindings {

enum Combine : int { kValue = 0, kScale = 1, kPrev = 2 };  // lr = v, scale[g] * v, prev * v
enum Storage : int { kNone = 0, kFloats = 1, kBuffer = 2 };
enum MomKey : int { kNoMomentum = 0, kMomentum = 1, kBetas = 2 };

class Stepper {
 public:
  Stepper(const Program& program, Int32Array roots, DoubleArray scale, int combine, Int32Array mom_roots,
          int mom_key);

  int64_t groups() const { return static_cast<int64_t>(roots_.size()); }

  // Python callables (or None) per group: their value at this step is ctx.prev of that group's root.
  void set_callables(py::object fns, py::object mom_fns, double cycle_total);

  void bind_floats();
  void bind_buffer(py::tuple views, std::uintptr_t ptr, int32_t dtype);
  void unbind();
  int storage() const { return storage_; }

  // Group keys the program was compiled from (OneCycleLR's max_lr, SWALR's swa_lr, ...) and their values,
  // group by group: torch reads them every step, so a step is not ready once one of them changes.
  void watch(py::tuple keys, DoubleArray values);
  // Whether every watched key still holds its compiled value, read as Python would (a tensor's value too).
  bool watched_same(py::object groups) const;

  // Phase 1, no Python code runs: can this step be stored in place? Collects the previous LRs.
  bool ready(PyObject* groups, double t);
  // Phase 2 after ready(): evaluate (Python callables may run) and store. False with a Python error set.
  bool run(PyObject* groups, double t, PyObject* t_obj, double u);

  bool try_step(py::object groups, py::object t_obj, double u);
  // The LRs this step would give for the previous LRs `prevs` (None: zeros), without storing anything.
  py::list compute(py::object t_obj, py::object prevs, double u);
  py::list compute_momentum(py::object t_obj, double u);
  py::list lrs() const;

  bool fast_ok_ = false;  // the C-level step() may run this scheduler
  bool fresh_ = false;    // the mirror holds the LRs of the latest step (the lazy _last_lr reads it)
  int clock_ = 0;         // 0: t = last_epoch; 1: t = _step_count - 1 (SWALR)
  double max_step_ = INFINITY;
  std::string owner_ = "scheduler";  // the class name its errors start with
  // torch's float32 tensor arithmetic (float32 LR tensors: set by bind_buffer, or by the owner for a
  // closed-form stepper whose values go into float32 tensors)
  bool float32_ = false;
  bool uniform_ = false, muniform_ = false;

 private:
  void forget_dicts();
  LrDest lr_dest() const;
  bool watched_match(PyObject* d, Py_ssize_t g, bool strict) const;
  std::vector<py::object> callables(py::object fns, const char* name);
  bool is_uniform(const std::vector<int32_t>& roots) const;
  bool call_all(const std::vector<py::object>& fns, double t, PyObject* t_obj);
  bool evaluate_lrs(double t, PyObject* t_obj, double u, const double* prev, double* out, bool* unchanged);
  bool evaluate_lrs_unchecked(double t, PyObject* t_obj, double u, const double* prev, double* out, bool* unchanged);
  bool refuse_non_finite(const double* out, double t) const;
  bool evaluate_momentum(double t, PyObject* t_obj, double u, double* out);
  bool store_momentum(PyObject* groups);

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
  // store when no Python code ran in between (null: look it up), and across steps while the dict's
  // stamp is seen_ver_.
  std::vector<PyObject*> objs_, mobjs_;
  std::vector<PyObject*> seen_dict_;  // compared, never dereferenced unless equal to the live dict
  std::vector<uint64_t> seen_ver_;
  std::vector<py::object> wkeys_;  // watched group keys (interned) and their values, G x K
  std::vector<double> wvals_;
};

// torchsched._core.NonFiniteLRError (a ValueError), created when the module registers the Stepper.
extern PyObject* non_finite_lr_error;

// scheduler.step(epoch=None) as a method descriptor of `cls` (set it as the class's `step`).
PyObject* scheduler_step_method(PyObject* cls);

}  // namespace torchsched::bindings
