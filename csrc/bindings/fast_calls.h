// @brief Direct CPython entry points for the hottest calls (arithmetic operators, unary ops).
#pragma once

#include <pybind11/pybind11.h>

#include <optional>

#include "dagrad/graph.h"

namespace dagrad_py {

/// @brief A Python number (bool, int, float, or a numpy scalar of those kinds) as an exact
/// dagrad::Scalar; nullopt for anything else. ValueError for an int beyond int64.
std::optional<dagrad::Scalar> as_scalar(const pybind11::handle& h, bool throw_on_overflow = true);

/// @brief A Python operand next to a tensor, as a tensor (module.cpp: PyTorch's weak scalars).
dagrad::Tensor operand(const pybind11::handle& other, const dagrad::Tensor& like);

/// @brief Installs the fast paths on the bound Tensor class and the module (see
/// Note [Fast calls] in fast_calls.cpp). Call after the class and functions are defined.
void install_fast_calls(pybind11::module_& m, pybind11::handle tensor_type);

}  // namespace dagrad_py

// Python numbers convert to dagrad::Scalar exactly wherever a binding takes one.
namespace pybind11::detail {
template <>
struct type_caster<dagrad::Scalar> {
  PYBIND11_TYPE_CASTER(dagrad::Scalar, const_name("number"));
  bool load(handle src, bool) {
    // An int beyond int64 does not fit: the call's argument errors name it (Note [Argument errors]).
    std::optional<dagrad::Scalar> s = dagrad_py::as_scalar(src, /*throw_on_overflow=*/false);
    if (!s) return false;
    value = *s;
    return true;
  }
  static handle cast(const dagrad::Scalar& s, return_value_policy, handle) {
    switch (s.kind()) {
      case dagrad::Scalar::Kind::Bool: return pybind11::bool_(s.as<bool>()).release();
      case dagrad::Scalar::Kind::Int: return pybind11::int_(s.as<int64_t>()).release();
      case dagrad::Scalar::Kind::Float: break;
    }
    return pybind11::float_(s.to_double()).release();
  }
};
}  // namespace pybind11::detail
