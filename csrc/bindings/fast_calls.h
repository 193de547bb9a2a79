// @brief Direct CPython entry points for the hottest calls (arithmetic operators, unary ops).
// See Note [Fast calls] in fast_calls.cpp.
#pragma once

#include <pybind11/pybind11.h>

#include <string>
#include <vector>

#include "arg_errors.h"
#include "bindings.h"
#include "op_table.h"

namespace dagrad_py {

/// @brief Installs the fast paths on the bound Tensor class and the module: the arithmetic
/// number slots, and the functions and methods of the binding table's fast rows. Call after
/// the class and functions are defined.
void install_fast_calls(pybind11::module_& m, pybind11::handle tensor_type, const std::vector<FastRow>& rows);

namespace fast {

using tensor_type::is_tensor;
using tensor_type::unwrap;

/// A new tensor object for a C++ result (Note [Tensor is a hand-written CPython type]).
inline PyObject* wrap(dagrad::Tensor&& t) {
  PyObject* o = tensor_type::wrap(std::move(t));
  if (!o) throw pybind11::error_already_set();
  return o;
}

/// Any C++ or pybind11 exception becomes the Python exception the bindings would raise.
PyObject* fail();

/// The public name of a fast function, for its TypeError (from the installed rows).
const char* name_of(PyCFunction f);

template <dagrad::Tensor (*F)(const dagrad::Tensor&)>
PyObject* unary_fn(PyObject*, PyObject* x) {
  try {
    if (!is_tensor(x)) {
      const char* name = name_of(reinterpret_cast<PyCFunction>(&unary_fn<F>));
      throw pybind11::type_error(std::string(name) + "(): argument 'input' (position 1) must be Tensor, not " +
                                 type_name(x));
    }
    return wrap(F(unwrap(x)));
  } catch (...) {
    return fail();
  }
}

template <dagrad::Tensor (*F)(const dagrad::Tensor&)>
PyObject* unary_slot(PyObject* x) {
  try {
    return wrap(F(unwrap(x)));
  } catch (...) {
    return fail();
  }
}

template <dagrad::Tensor (*F)(const dagrad::Tensor&)>
PyObject* unary_method(PyObject* self, PyObject*) {
  return unary_slot<F>(self);
}

}  // namespace fast

template <dagrad::Tensor (*F)(const dagrad::Tensor&)>
FastRow fast_row(const char* name, unsigned variants) {
  return FastRow{name, variants, reinterpret_cast<PyCFunction>(&fast::unary_fn<F>),
                 reinterpret_cast<PyCFunction>(&fast::unary_method<F>)};
}

}  // namespace dagrad_py
