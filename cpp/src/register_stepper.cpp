// The pybind11 face of the drop-in schedulers' fast path: Stepper and scheduler_step_method.
#include "register.hpp"
#include "stepper.hpp"

namespace torchsched::bindings {

PyObject* non_finite_lr_error = nullptr;

void register_stepper(py::module_& m) {
  // A ValueError: the step was refused because an LR would not be finite, and nothing moved.
  non_finite_lr_error = PyErr_NewExceptionWithDoc(
      "torchsched._core.NonFiniteLRError",
      "A scheduler step refused: an LR it computed is not finite (or overflows the LR tensors' float32), so "
      "no LR, last_epoch or step count moved.",
      PyExc_ValueError, nullptr);
  if (non_finite_lr_error == nullptr) throw py::error_already_set();
  m.attr("NonFiniteLRError") = py::reinterpret_borrow<py::object>(non_finite_lr_error);
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
      .def_readwrite("owner", &Stepper::owner_)
      .def_readwrite("float32", &Stepper::float32_)
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
        PyObject* descr = scheduler_step_method(cls.ptr());
        if (descr == nullptr) throw py::error_already_set();
        return py::reinterpret_steal<py::object>(descr);
      },
      py::arg("cls"),
      "The C-level step(self, epoch=None) as a method of `cls` (set it as the class's `step`).");
}

}  // namespace torchsched::bindings
