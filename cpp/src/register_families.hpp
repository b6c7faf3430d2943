// The binding of the families table (register_families.cpp).
#pragma once

#include <pybind11/pybind11.h>

// Adds FAMILIES and FAMILY_FIELDS, the rows of families.def, to the module.
void register_families(pybind11::module_& m);
