// The one LR store into param groups (store_group_lr), and the interned names the C-level step reads.
#pragma once

#include <Python.h>

#include "cpython_fast.hpp"

namespace torchsched::bindings {

// Interned once at import (intern_names()): group keys, and the scheduler attributes the C step reads.
extern PyObject* s_lr;
extern PyObject* s_momentum;
extern PyObject* s_betas;
extern PyObject* s_step_count;
extern PyObject* s_last_epoch;
extern PyObject* s_optimizer;
extern PyObject* s_param_groups;
extern PyObject* s_stepper;
extern PyObject* s_python_step;
extern PyObject* s_fill;
void intern_names();

// Where a param group keeps its LR (or momentum).
enum class LrHome : int {
  kDictFloat,  // a Python float in the group dict, under `key`
  kBufferF32,  // element g of a float32 buffer whose 0-d views the groups hold
  kBufferF64,  // element g of a float64 buffer, likewise
  kTensor,     // a tensor in the group dict that gets fill_(v)
};

struct LrDest {
  LrHome home;
  PyObject* key;  // the group dict's key (kDictFloat): lr or momentum
  void* buffer;   // kBufferF32 / kBufferF64
};

// Stores v as param group g's value; false with a Python error set. `entry` is group[key] as last seen
// (the float for kDictFloat, the tensor for kTensor): for kDictFloat, null means "look it up" (Python
// code may have run since it was read), and on return it is the float the dict holds now.
inline bool store_group_lr(const LrDest& dest, PyObject* group, Py_ssize_t g, PyObject*& entry, double v) {
  switch (dest.home) {
    case LrHome::kBufferF32:
      static_cast<float*>(dest.buffer)[g] = static_cast<float>(v);
      return true;
    case LrHome::kBufferF64:
      static_cast<double*>(dest.buffer)[g] = v;
      return true;
    case LrHome::kTensor: {
      PyObject* f = PyFloat_FromDouble(v);
      if (f == nullptr) return false;
      PyObject* r = PyObject_CallMethodOneArg(entry, s_fill, f);
      Py_DECREF(f);
      Py_XDECREF(r);
      return r != nullptr;
    }
    case LrHome::kDictFloat:
      break;
  }
  if (entry == nullptr) {
    entry = PyDict_GetItemWithError(group, dest.key);
    if (entry == nullptr && PyErr_Occurred()) return false;
  }
  entry = store_float(group, dest.key, entry, v);
  return entry != nullptr;
}

}  // namespace torchsched::bindings
