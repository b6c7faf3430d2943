// The module's parts: each register_* function adds one part of torchsched._core (module.cpp calls them).
#pragma once

#include <pybind11/pybind11.h>

namespace torchsched::bindings {

void register_program(pybind11::module_& m);  // Program: a validated op table and its values
void register_engine(pybind11::module_& m);   // HostEngine: G param groups stepped on the host
void register_stepper(pybind11::module_& m);  // Stepper and the drop-in schedulers' C-level step()
void register_plateau(pybind11::module_& m);  // plateau_step: one ReduceLROnPlateau step
void register_cuda(pybind11::module_& m);     // cuda_available, advance_cuda
void register_families(pybind11::module_& m); // FAMILIES: the rows of families.def
void register_signals(pybind11::module_& m);  // average_gradient_observe: the CPU fast path of a signal rule

}  // namespace torchsched::bindings
