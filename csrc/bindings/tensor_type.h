// @brief dagrad.Tensor as a hand-written CPython type holding its handle inline, the pybind11
// caster that lets every pybind11 binding take and return it, and the builder that defines its
// methods and properties with pybind11's function machinery. See Note [Tensor is a hand-written
// CPython type] in tensor_type.cpp.
#pragma once

#include <pybind11/pybind11.h>

#include <new>
#include <utility>

#include "dagrad/graph.h"

namespace dagrad_py {

/// @brief The Python object of a dagrad.Tensor: the handle (one NodePtr) inline, no C++ value
/// elsewhere and no registry entry.
struct PyTensor {
  PyObject_HEAD dagrad::Tensor value;
  PyObject* weakrefs;
};

namespace tensor_type {

extern PyTypeObject* g_type;

inline bool is_tensor(PyObject* o) { return Py_TYPE(o) == g_type || PyType_IsSubtype(Py_TYPE(o), g_type); }

[[noreturn]] void throw_uninitialised();

/// @brief The handle of a tensor object (check is_tensor first); a TypeError for one made by
/// Tensor.__new__ alone, which holds no node.
inline const dagrad::Tensor& unwrap(PyObject* o) {
  const dagrad::Tensor& t = reinterpret_cast<PyTensor*>(o)->value;
  if (!t.defined()) throw_uninitialised();
  return t;
}

/// @brief A new tensor object owning `t`; nullptr with MemoryError set if none can be allocated.
inline PyObject* wrap(dagrad::Tensor&& t) {
  PyTensor* o = PyObject_New(PyTensor, g_type);  // increfs the (heap) type
  if (!o) return nullptr;
  new (&o->value) dagrad::Tensor(std::move(t));
  o->weakrefs = nullptr;
  return reinterpret_cast<PyObject*>(o);
}

}  // namespace tensor_type

/// @brief Defines Tensor's methods and properties as pybind11 would on a py::class_ (the same
/// function objects, signatures and argument handling), on the hand-written type.
class TensorClass {
 public:
  /// @brief Creates the type and adds it to `m` as `Tensor`.
  explicit TensorClass(pybind11::module_& m);

  pybind11::handle type() const { return type_; }

  template <class F, class... Extra>
  TensorClass& def(const char* name, F&& f, const Extra&... extra) {
    pybind11::cpp_function cf(pybind11::method_adaptor<dagrad::Tensor>(std::forward<F>(f)), pybind11::name(name),
                              pybind11::is_method(type_),
                              pybind11::sibling(pybind11::getattr(type_, name, pybind11::none())), extra...);
    pybind11::detail::add_class_method(type_, name, cf);
    return *this;
  }

  template <class Getter>
  TensorClass& def_property_readonly(const char* name, const Getter& fget) {
    return property(name, getter(fget), pybind11::none());
  }

  template <class Getter, class Setter>
  TensorClass& def_property(const char* name, const Getter& fget, const Setter& fset) {
    pybind11::cpp_function set(pybind11::method_adaptor<dagrad::Tensor>(fset), pybind11::is_method(type_),
                               pybind11::is_setter());
    return property(name, getter(fget), unbound(set));
  }

 private:
  template <class Getter>
  pybind11::object getter(const Getter& fget) {
    return unbound(pybind11::cpp_function(pybind11::method_adaptor<dagrad::Tensor>(fget), pybind11::is_method(type_),
                                          pybind11::return_value_policy::reference_internal));
  }
  // A property's functions are plain builtin functions, as pybind11 makes them (is_method
  // names `self` in their signatures but wraps them in an instancemethod).
  static pybind11::object unbound(const pybind11::cpp_function& f);
  TensorClass& property(const char* name, const pybind11::object& fget, const pybind11::object& fset);

  pybind11::object type_;
};

}  // namespace dagrad_py

// Every pybind11 binding takes (const Tensor&, std::vector<Tensor>, std::optional<Tensor>, ...)
// and returns tensors through this caster. It must be seen before any such binding is
// instantiated: bindings.h, arg_errors.h and op_table.h include this header first.
namespace pybind11::detail {
template <>
struct type_caster<dagrad::Tensor> {
  PYBIND11_TYPE_CASTER(dagrad::Tensor, const_name("dagrad._core.Tensor"));
  bool load(handle src, bool) {
    if (!src || !dagrad_py::tensor_type::is_tensor(src.ptr())) return false;
    value = dagrad_py::tensor_type::unwrap(src.ptr());
    return true;
  }
  static handle cast(dagrad::Tensor&& t, return_value_policy, handle) {
    PyObject* o = dagrad_py::tensor_type::wrap(std::move(t));
    if (!o) throw error_already_set();
    return o;
  }
  static handle cast(const dagrad::Tensor& t, return_value_policy policy, handle parent) {
    return cast(dagrad::Tensor(t), policy, parent);
  }
};
}  // namespace pybind11::detail
