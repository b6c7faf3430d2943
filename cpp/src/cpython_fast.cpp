// The dict watcher behind dict tracking on CPython 3.12+ (see cpython_fast.hpp for all the shortcuts).
#include "cpython_fast.hpp"

namespace torchsched::bindings {

#if TS_DICT_TRACKING && PY_VERSION_HEX >= 0x030C0000
uint64_t g_dict_edits = 0;
int g_dict_watcher = -1;

namespace {
int count_dict_edit(PyDict_WatchEvent, PyObject*, PyObject*, PyObject*) {
  ++g_dict_edits;
  return 0;
}
}  // namespace

void start_dict_tracking() {
  g_dict_watcher = PyDict_AddWatcher(count_dict_edit);
  if (g_dict_watcher < 0) PyErr_Clear();  // all slots taken: correct, only slower
}
bool dict_tracking_on() { return g_dict_watcher >= 0; }
#else
void start_dict_tracking() {}
bool dict_tracking_on() { return TS_DICT_TRACKING != 0; }
#endif

}  // namespace torchsched::bindings
