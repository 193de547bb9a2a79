// Direct CPython entry points for the calls a scalar graph makes millions of times.
#include "fast_calls.h"

#include <deque>

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
// descriptors. They read and make Tensor objects directly (Note [Tensor is a hand-written
// CPython type]) and convert other operands with the bindings' own casters, so the dtype rules
// (operand()) and the errors are the same as those of the pybind11 definitions they shadow
// (Tensor.__mul__ and so on stay reachable). A Python subclass of Tensor gets CPython's
// generic slots, hence pybind11's path. They hold the GIL, as recording a node always does
// (Note [GIL policy]).

namespace fast {

PyObject* fail() {
  try {
    throw;
  } catch (py::error_already_set& e) {
    e.restore();
  } catch (...) {
    py::detail::try_translate_exceptions();
  }
  return nullptr;
}

namespace {
// Method definitions (and their docs) must outlive the functions and descriptors made from them.
std::deque<PyMethodDef> g_defs;
std::deque<std::string> g_docs;

// A signature line as pybind11 writes it (dagrad/_core.pyi is generated from these).
const char* doc(const char* name, const char* first) {
  return g_docs.emplace_back(std::string(name) + "(" + first + ": dagrad._core.Tensor) -> dagrad._core.Tensor\n")
      .c_str();
}
}  // namespace

const char* name_of(PyCFunction f) {
  for (const PyMethodDef& d : g_defs)
    if (d.ml_meth == f) return d.ml_name;
  return "unary op";
}

}  // namespace fast

namespace {
using fast::fail;
using fast::is_tensor;
using fast::unwrap;
using fast::wrap;

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

}  // namespace

void install_fast_calls(py::module_& m, py::handle tensor_type, const std::vector<FastRow>& rows) {
  PyTypeObject* g_type = reinterpret_cast<PyTypeObject*>(tensor_type.ptr());
  PyNumberMethods* nb = g_type->tp_as_number;
  nb->nb_add = &binary_slot<&dagrad::add>;
  nb->nb_subtract = &binary_slot<&dagrad::sub>;
  nb->nb_multiply = &binary_slot<&dagrad::mul>;
  nb->nb_true_divide = &binary_slot<&dagrad::div>;
  nb->nb_negative = &fast::unary_slot<&dagrad::neg>;
  for (const FastRow& row : rows) {
    if (row.variants & kMethod) {
      PyMethodDef& def =
          fast::g_defs.emplace_back(PyMethodDef{row.name, row.method, METH_NOARGS, fast::doc(row.name, "self")});
      PyObject* d = PyDescr_NewMethod(g_type, &def);
      if (!d || PyObject_SetAttrString(tensor_type.ptr(), def.ml_name, d) != 0) {
        Py_XDECREF(d);
        throw py::error_already_set();
      }
      Py_DECREF(d);
    }
    if (row.variants & kFunction) {
      PyMethodDef& def =
          fast::g_defs.emplace_back(PyMethodDef{row.name, row.function, METH_O, fast::doc(row.name, "input")});
      PyObject* f = PyCFunction_NewEx(&def, nullptr, m.attr("__name__").ptr());
      if (!f) throw py::error_already_set();
      m.attr(def.ml_name) = py::reinterpret_steal<py::object>(f);
    }
  }
  PyType_Modified(g_type);
}

}  // namespace dagrad_py
