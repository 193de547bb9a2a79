// Direct CPython entry points for the calls a scalar graph makes millions of times.
#include "fast_calls.h"

#include "arg_errors.h"
#include "dagrad/ops.h"

namespace py = pybind11;
using dagrad::Tensor;

namespace dagrad_py {

// Note [Fast calls]
// ~~~~~~~~~~~~~~~~~
// Recording `x * w` costs about 100 ns of C++, but through pybind11's generic machinery it cost
// about 1 us: CPython's generic slot looks `__mul__` up in the type's dict, makes a bound method,
// and pybind11's dispatcher walks its overload records and argument loaders. For the arithmetic
// operators the Tensor type's number slots (nb_add, nb_multiply, ...) are therefore set to the C
// functions below, which CPython calls directly for `a op b` in both orders; the module's
// unary ops (relu, tanh, ...) are METH_O functions and the same Tensor methods METH_NOARGS
// descriptors. All convert with pybind11's own casters, so the objects, the dtype rules
// (operand()) and the errors are the same as those of the pybind11 definitions they shadow
// (Tensor.__mul__ and so on stay reachable). A Python subclass of Tensor gets CPython's
// generic slots, hence pybind11's path. They hold the GIL, as recording a node always does
// (Note [GIL policy]).

namespace {

PyTypeObject* g_type = nullptr;
const py::detail::type_info* g_tinfo = nullptr;

inline bool is_tensor(PyObject* o) {
  return Py_TYPE(o) == g_type || PyType_IsSubtype(Py_TYPE(o), g_type);
}

inline const Tensor& unwrap(PyObject* o) {
  auto* inst = reinterpret_cast<py::detail::instance*>(o);
  auto vh = inst->get_value_and_holder(g_tinfo, false);
  if (!vh || !vh.holder_constructed() || !vh.value_ptr())
    throw py::type_error("dagrad.Tensor object is not initialised");
  return *vh.value_ptr<Tensor>();
}

inline PyObject* wrap(Tensor&& t) {
  return py::detail::type_caster_base<Tensor>::cast(std::move(t), py::return_value_policy::move, py::handle())
      .ptr();
}

// Any C++ or pybind11 exception becomes the Python exception the bindings would raise.
inline PyObject* fail() {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (...) {
    py::detail::try_translate_exceptions();
  }
  return nullptr;
}

// The operator's symbol, for the TypeError of `x + "a"`.
template <Tensor (*F)(const Tensor&, const Tensor&)>
const char* symbol() {
  if (F == &dagrad::add) return "+";
  if (F == &dagrad::sub) return "-";
  if (F == &dagrad::mul) return "*";
  if (F == &dagrad::div) return "/";
  return "an operator";
}

// A str, bytes or None beside a tensor: PyTorch's TypeError at once. Returning NotImplemented
// would let Python try str * Tensor as sequence repetition ("can't multiply sequence ...").
// Other objects get NotImplemented, so their reflected methods (__radd__, ...) still run.
template <Tensor (*F)(const Tensor&, const Tensor&)>
PyObject* unsupported(PyObject* a, PyObject* b) {
  PyObject* other = is_tensor(a) ? b : a;
  if (!(PyUnicode_Check(other) || PyBytes_Check(other) || other == Py_None)) Py_RETURN_NOTIMPLEMENTED;
  PyErr_Format(PyExc_TypeError, "unsupported operand type(s) for %s: '%s' and '%s'", symbol<F>(),
               is_tensor(a) ? "Tensor" : type_name(a).c_str(), is_tensor(b) ? "Tensor" : type_name(b).c_str());
  return nullptr;
}

template <Tensor (*F)(const Tensor&, const Tensor&)>
PyObject* binary_slot(PyObject* a, PyObject* b) {
  try {
    if (is_tensor(a)) {
      const Tensor& x = unwrap(a);
      if (is_tensor(b)) return wrap(F(x, unwrap(b)));
      if (!is_operand(b)) return unsupported<F>(a, b);
      return wrap(F(x, operand(py::handle(b), x)));
    }
    if (is_tensor(b)) {
      const Tensor& y = unwrap(b);
      if (!is_operand(a)) return unsupported<F>(a, b);
      return wrap(F(operand(py::handle(a), y), y));
    }
    Py_RETURN_NOTIMPLEMENTED;
  } catch (...) {
    return fail();
  }
}

extern PyMethodDef g_unary_defs[8];

template <Tensor (*F)(const Tensor&)>
PyObject* unary_fn(PyObject*, PyObject* x) {
  try {
    if (!is_tensor(x)) {
      const char* name = "unary op";
      for (const PyMethodDef& d : g_unary_defs)
        if (d.ml_meth == reinterpret_cast<PyCFunction>(&unary_fn<F>)) name = d.ml_name;
      throw py::type_error(std::string(name) + "(): argument 'input' (position 1) must be Tensor, not " +
                           type_name(x));
    }
    return wrap(F(unwrap(x)));
  } catch (...) {
    return fail();
  }
}

template <Tensor (*F)(const Tensor&)>
PyObject* unary_slot(PyObject* x) {
  try {
    return wrap(F(unwrap(x)));
  } catch (...) {
    return fail();
  }
}

template <Tensor (*F)(const Tensor&)>
PyObject* unary_method(PyObject* self, PyObject*) {
  return unary_slot<F>(self);
}

template <Tensor (*F)(const Tensor&)>
PyMethodDef unary_def(const char* name) {
  return PyMethodDef{name, reinterpret_cast<PyCFunction>(&unary_fn<F>), METH_O, nullptr};
}
template <Tensor (*F)(const Tensor&)>
PyMethodDef method_def(const char* name) {
  return PyMethodDef{name, reinterpret_cast<PyCFunction>(&unary_method<F>), METH_NOARGS, nullptr};
}

// Method definitions must outlive the functions made from them.
PyMethodDef g_unary_defs[] = {
    unary_def<&dagrad::relu>("relu"),       unary_def<&dagrad::tanh>("tanh"),
    unary_def<&dagrad::sigmoid>("sigmoid"), unary_def<&dagrad::exp>("exp"),
    unary_def<&dagrad::log>("log"),         unary_def<&dagrad::sqrt>("sqrt"),
    unary_def<&dagrad::neg>("neg"),         unary_def<&dagrad::abs>("abs"),
};

// The same as Tensor methods (x.relu(), ...).
PyMethodDef g_method_defs[] = {
    method_def<&dagrad::relu>("relu"),       method_def<&dagrad::tanh>("tanh"),
    method_def<&dagrad::sigmoid>("sigmoid"), method_def<&dagrad::exp>("exp"),
    method_def<&dagrad::log>("log"),         method_def<&dagrad::sqrt>("sqrt"),
    method_def<&dagrad::abs>("abs"),
};

}  // namespace

void install_fast_calls(py::module_& m, py::handle tensor_type) {
  g_type = reinterpret_cast<PyTypeObject*>(tensor_type.ptr());
  g_tinfo = py::detail::get_type_info(typeid(Tensor));
  PyNumberMethods* nb = g_type->tp_as_number;
  nb->nb_add = &binary_slot<&dagrad::add>;
  nb->nb_subtract = &binary_slot<&dagrad::sub>;
  nb->nb_multiply = &binary_slot<&dagrad::mul>;
  nb->nb_true_divide = &binary_slot<&dagrad::div>;
  nb->nb_negative = &unary_slot<&dagrad::neg>;
  for (PyMethodDef& def : g_method_defs) {
    PyObject* d = PyDescr_NewMethod(g_type, &def);
    if (!d || PyObject_SetAttrString(tensor_type.ptr(), def.ml_name, d) != 0) {
      Py_XDECREF(d);
      throw py::error_already_set();
    }
    Py_DECREF(d);
  }
  PyType_Modified(g_type);
  // Module functions keep pybind11's docstrings and signatures for everything else; these
  // names take the direct path (the Python API re-exports them).
  for (PyMethodDef& def : g_unary_defs) {
    PyObject* f = PyCFunction_NewEx(&def, nullptr, m.attr("__name__").ptr());
    if (!f) throw py::error_already_set();
    m.attr(def.ml_name) = py::reinterpret_steal<py::object>(f);
  }
}

}  // namespace dagrad_py
