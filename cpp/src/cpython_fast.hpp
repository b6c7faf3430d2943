// The CPython-specific shortcuts of the scheduler step, all of them and nothing else.
//
// 1. In-place float store (store_float). An exact float that only the group dict references is invisible
//    to everyone else, so overwriting its value in place cannot be told apart from storing a new float,
//    and it saves the allocation and the dict store. Under the GIL nobody can take a new reference
//    between the reference-count check and the write.
// 2. Dict tracking (dict_stamp, watch_dict). A group dict whose stamp did not change since our last store
//    still holds the entries we saw then, so the step skips their lookups. Safe because the stamp changes
//    on every modification: CPython 3.10/3.11 use PEP 509's version tag (unique across all dicts, so a new
//    dict at a freed dict's address never matches); 3.12+ use a dict watcher, PEP 509's replacement, that
//    counts every modification and deallocation of any watched dict.
//
// Where they switch off, leaving the portable path (a new float per store, every entry looked up):
//  * the build switch TORCHSCHED_NO_CPYTHON_SHORTCUTS (CMake option TORCHSCHED_CPYTHON_SHORTCUTS=OFF), to
//    test the portable path on any Python;
//  * free-threaded builds (Py_GIL_DISABLED): no GIL orders the check and the write, or the stamp and a
//    concurrent edit;
//  * the limited API (Py_LIMITED_API): the float and dict internals are not part of it;
//  * the in-place store on CPython 3.14+, whose interpreter may hold borrowed references the count does
//    not show; dict tracking on PyPy, and at run time when no dict watcher slot is free.
#pragma once

#include <Python.h>

#include <cstdint>

namespace torchsched::bindings {

#if !defined(TORCHSCHED_NO_CPYTHON_SHORTCUTS) && !defined(Py_GIL_DISABLED) && !defined(Py_LIMITED_API) && \
    PY_VERSION_HEX < 0x030E0000
#define TS_INPLACE_FLOATS 1
#else
#define TS_INPLACE_FLOATS 0
#endif

// Stores v as d[key] and returns the object d[key] now holds (borrowed; null with a Python error).
// `old` is d[key] as last seen, or null.
inline PyObject* store_float(PyObject* d, PyObject* key, PyObject* old, double v) {
#if TS_INPLACE_FLOATS
  if (old != nullptr && PyFloat_CheckExact(old) && Py_REFCNT(old) == 1) {
    reinterpret_cast<PyFloatObject*>(old)->ob_fval = v;
    return old;
  }
#else
  (void)old;
#endif
  PyObject* f = PyFloat_FromDouble(v);
  if (f == nullptr) return nullptr;
  int rc = PyDict_SetItem(d, key, f);
  Py_DECREF(f);  // the dict holds it now
  return rc == 0 ? f : nullptr;
}

// dict_stamp(d) changes whenever d is modified; watch_dict(d) asks for that (false: d is not tracked).
// Our own stores count too: the step records the stamp after them, and other schedulers on the same
// dicts see the change.
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
#elif !defined(TORCHSCHED_NO_CPYTHON_SHORTCUTS) && !defined(Py_LIMITED_API) && !defined(Py_GIL_DISABLED) && \
    defined(PY_VERSION_HEX) && PY_VERSION_HEX >= 0x030C0000 && !defined(PYPY_VERSION)
#define TS_DICT_TRACKING 1
extern uint64_t g_dict_edits;  // modifications of watched dicts, under the GIL
extern int g_dict_watcher;     // -1: no watcher slot was free; every step looks its entries up
inline uint64_t dict_stamp(PyObject*) { return g_dict_edits; }
inline bool watch_dict(PyObject* d) {
  if (g_dict_watcher < 0) return false;
  if (PyDict_Watch(g_dict_watcher, d) == 0) return true;
  PyErr_Clear();
  return false;
}
#else
#define TS_DICT_TRACKING 0
inline uint64_t dict_stamp(PyObject*) { return 0; }
inline bool watch_dict(PyObject*) { return false; }
#endif

// Called once at import: takes a dict watcher slot where one is used.
void start_dict_tracking();
// Whether the step skips lookups in unchanged group dicts (torchsched._core.cpython_shortcuts()).
bool dict_tracking_on();

}  // namespace torchsched::bindings
