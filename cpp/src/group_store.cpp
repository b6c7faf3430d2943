// The interned names of group_store.hpp, made once at import.
#include "group_store.hpp"

namespace torchsched::bindings {

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
}

}  // namespace torchsched::bindings
