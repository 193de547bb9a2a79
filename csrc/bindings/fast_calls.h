// @brief Direct CPython entry points for the hottest calls (arithmetic operators, unary ops).
#pragma once

#include <pybind11/pybind11.h>

#include "dagrad/graph.h"

namespace dagrad_py {

/// @brief A Python operand next to a tensor, as a tensor (module.cpp: PyTorch's weak scalars).
dagrad::Tensor operand(const pybind11::handle& other, const dagrad::Tensor& like);

/// @brief Installs the fast paths on the bound Tensor class and the module (see
/// Note [Fast calls] in fast_calls.cpp). Call after the class and functions are defined.
void install_fast_calls(pybind11::module_& m, pybind11::handle tensor_type);

}  // namespace dagrad_py
