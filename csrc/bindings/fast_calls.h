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

extern PyTypeObject* g_type;
extern const pybind11::detail::type_info* g_tinfo;

inline bool is_tensor(PyObject* o) { return Py_TYPE(o) == g_type || PyType_IsSubtype(Py_TYPE(o), g_type); }

inline const dagrad::Tensor& unwrap(PyObject* o) {
  auto* inst = reinterpret_cast<pybind11::detail::instance*>(o);
  auto vh = inst->get_value_and_holder(g_tinfo, false);
  if (!vh || !vh.holder_constructed() || !vh.value_ptr())
    throw pybind11::type_error("dagrad.Tensor object is not initialised");
  return *vh.value_ptr<dagrad::Tensor>();
}

inline PyObject* wrap(dagrad::Tensor&& t) {
  return pybind11::detail::type_caster_base<dagrad::Tensor>::cast(std::move(t), pybind11::return_value_policy::move,
                                                                  pybind11::handle())
      .ptr();
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
