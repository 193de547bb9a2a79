// Argument errors that name the public function and the argument, for every bound call.
#include "arg_errors.h"

#include <pybind11/numpy.h>
#include <structmember.h>

#include <cstddef>
#include <cstring>

#include "dagrad/common.h"

namespace py = pybind11;
using dagrad::Shape;
using dagrad::Tensor;

namespace dagrad_py {

// Note [Argument errors]
// ~~~~~~~~~~~~~~~~~~~~~~
// pybind11 answers a call whose arguments fit no overload with "incompatible function
// arguments. The following argument types are supported: ... Invoked with: ...", which names
// neither the argument at fault nor the public function, and a py::object converted inside a
// binding (x.sum(dim='a')) fails with "Unable to cast Python instance ...". Both are replaced in
// one place, not per binding:
// - install_arg_errors wraps each pybind11 function of the module and each method and property
//   setter of Tensor, once, at import, in a `Checked` callable. It forwards the call unchanged
//   (vectorcall: one extra C call; methods are still called without making a bound method,
//   Py_TPFLAGS_METHOD_DESCRIPTOR), records the public name in a thread-local for the helpers
//   below, and only when pybind11 reports that no overload fits does it ask
//   dagrad._args.explain_call to find the first argument that does not fit the signature and
//   raise TypeError (a wrong type), ValueError (an int that does not fit int64) or IndexError.
// - The helpers here (int_arg, dims_arg, shape_args, tensor_arg, convert_operand) convert the
//   py::object arguments of bindings and raise the same messages, naming that recorded call.
// Messages read "Tensor.sum(): argument 'dim' must be an int or a sequence of ints, not str",
// as PyTorch's do. The Python wrappers use the same wording (dagrad/_args.py).

namespace {

thread_local const char* t_current = nullptr;

struct CallScope {
  const char* prev;
  explicit CallScope(const char* name) : prev(t_current) { t_current = name; }
  ~CallScope() { t_current = prev; }
};

}  // namespace

std::string type_name(py::handle v) {
  if (v.is_none()) return "None";
  PyTypeObject* t = Py_TYPE(v.ptr());
  std::string n = t->tp_name;  // "str", "numpy.ndarray", "dagrad._core.Tensor"
  const std::string core = "dagrad._core.";
  if (n.compare(0, core.size(), core) == 0) n = n.substr(core.size());
  return n;
}

namespace {

std::string prefix(const char* arg) { return std::string(current_call()) + "(): argument '" + arg + "'"; }

[[noreturn]] void type_error(const char* arg, const std::string& expected, py::handle got) {
  throw dagrad::TypeError(prefix(arg) + " must be " + expected + ", not " + type_name(got));
}

bool is_int_like(py::handle v) { return !PyFloat_Check(v.ptr()) && PyIndex_Check(v.ptr()); }

// ------------------------------------------------------------------------ the Checked wrapper

struct Checked {
  PyObject_HEAD vectorcallfunc vectorcall;
  PyObject* func;  // the pybind11 function (a PyCFunction)
  PyObject* name;  // the public name, "Tensor.sum" (a str)
  std::string* cname;
};

PyObject* explain(Checked* c, PyObject* const* args, Py_ssize_t nargs, PyObject* kwnames) {
  PyObject *type, *value, *tb;
  PyErr_Fetch(&type, &value, &tb);
  PyErr_NormalizeException(&type, &value, &tb);
  PyObject* s = value ? PyObject_Str(value) : nullptr;
  const char* msg = s ? PyUnicode_AsUTF8(s) : nullptr;
  const bool overload_failure = msg && std::strstr(msg, "incompatible function arguments") != nullptr;
  if (!overload_failure) {
    Py_XDECREF(s);
    PyErr_Clear();
    PyErr_Restore(type, value, tb);
    return nullptr;
  }
  PyObject* tuple = PyTuple_New(nargs);
  PyObject* kwargs = PyDict_New();
  bool ok = tuple && kwargs;
  for (Py_ssize_t i = 0; ok && i < nargs; ++i) {
    Py_INCREF(args[i]);
    PyTuple_SET_ITEM(tuple, i, args[i]);
  }
  const Py_ssize_t nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
  for (Py_ssize_t i = 0; ok && i < nkw; ++i)
    ok = PyDict_SetItem(kwargs, PyTuple_GET_ITEM(kwnames, i), args[nargs + i]) == 0;
  PyObject* r = nullptr;
  if (ok) {
    PyObject* mod = PyImport_ImportModule("dagrad._args");
    PyObject* fn = mod ? PyObject_GetAttrString(mod, "explain_call") : nullptr;
    PyObject* doc = PyObject_GetAttrString(c->func, "__doc__");
    if (fn && doc) r = PyObject_CallFunctionObjArgs(fn, c->name, doc, tuple, kwargs, s, nullptr);
    Py_XDECREF(mod);
    Py_XDECREF(fn);
    Py_XDECREF(doc);
  }
  Py_XDECREF(tuple);
  Py_XDECREF(kwargs);
  Py_XDECREF(s);
  if (r != nullptr || !PyErr_Occurred()) {  // explain_call always raises; if not, keep pybind11's
    Py_XDECREF(r);
    PyErr_Restore(type, value, tb);
    return nullptr;
  }
  Py_XDECREF(type);
  Py_XDECREF(value);
  Py_XDECREF(tb);
  return nullptr;
}

PyObject* checked_vectorcall(PyObject* self, PyObject* const* args, size_t nargsf, PyObject* kwnames) {
  auto* c = reinterpret_cast<Checked*>(self);
  PyObject* r;
  {
    CallScope scope(c->cname->c_str());
    r = PyObject_Vectorcall(c->func, args, nargsf, kwnames);
  }
  if (r || !PyErr_ExceptionMatches(PyExc_TypeError)) return r;
  CallScope scope(c->cname->c_str());
  return explain(c, args, PyVectorcall_NARGS(nargsf), kwnames);
}

PyObject* checked_descr_get(PyObject* self, PyObject* obj, PyObject*) {
  if (obj == nullptr || obj == Py_None) {
    Py_INCREF(self);
    return self;
  }
  return PyMethod_New(self, obj);
}

PyObject* checked_getattro(PyObject* self, PyObject* name) {
  PyObject* r = PyObject_GenericGetAttr(self, name);
  if (r || !PyErr_ExceptionMatches(PyExc_AttributeError)) return r;
  PyErr_Clear();
  return PyObject_GetAttr(reinterpret_cast<Checked*>(self)->func, name);
}

PyObject* checked_get_doc(PyObject* self, void*) {
  return PyObject_GetAttrString(reinterpret_cast<Checked*>(self)->func, "__doc__");
}
PyObject* checked_get_name(PyObject* self, void*) {
  return PyObject_GetAttrString(reinterpret_cast<Checked*>(self)->func, "__name__");
}
PyObject* checked_get_wrapped(PyObject* self, void*) {
  PyObject* f = reinterpret_cast<Checked*>(self)->func;
  Py_INCREF(f);
  return f;
}

PyObject* checked_repr(PyObject* self) {
  return PyUnicode_FromFormat("<dagrad function %U>", reinterpret_cast<Checked*>(self)->name);
}

void checked_dealloc(PyObject* self) {
  auto* c = reinterpret_cast<Checked*>(self);
  PyTypeObject* tp = Py_TYPE(self);
  Py_XDECREF(c->func);
  Py_XDECREF(c->name);
  delete c->cname;
  PyObject_Free(self);
  Py_DECREF(tp);
}

PyGetSetDef g_getset[] = {
    {"__doc__", checked_get_doc, nullptr, nullptr, nullptr},
    {"__name__", checked_get_name, nullptr, nullptr, nullptr},
    {"__wrapped__", checked_get_wrapped, nullptr, nullptr, nullptr},
    {nullptr, nullptr, nullptr, nullptr, nullptr},
};

PyMemberDef g_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, static_cast<Py_ssize_t>(offsetof(Checked, vectorcall)), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

#ifndef Py_TPFLAGS_HAVE_VECTORCALL
#define Py_TPFLAGS_HAVE_VECTORCALL _Py_TPFLAGS_HAVE_VECTORCALL
#endif

// Two types: a method binds to its instance (and is called without a bound method); a module
// function, like a builtin, does not bind when stored on a class.
PyTypeObject* make_type(bool method) {
  static PyType_Slot method_slots[] = {
      {Py_tp_call, reinterpret_cast<void*>(&PyVectorcall_Call)},
      {Py_tp_descr_get, reinterpret_cast<void*>(&checked_descr_get)},
      {Py_tp_getattro, reinterpret_cast<void*>(&checked_getattro)},
      {Py_tp_getset, g_getset},
      {Py_tp_members, g_members},
      {Py_tp_repr, reinterpret_cast<void*>(&checked_repr)},
      {Py_tp_dealloc, reinterpret_cast<void*>(&checked_dealloc)},
      {0, nullptr},
  };
  static PyType_Slot function_slots[] = {
      {Py_tp_call, reinterpret_cast<void*>(&PyVectorcall_Call)},
      {Py_tp_getattro, reinterpret_cast<void*>(&checked_getattro)},
      {Py_tp_getset, g_getset},
      {Py_tp_members, g_members},
      {Py_tp_repr, reinterpret_cast<void*>(&checked_repr)},
      {Py_tp_dealloc, reinterpret_cast<void*>(&checked_dealloc)},
      {0, nullptr},
  };
  static PyType_Spec method_spec = {"dagrad._core.checked_method", sizeof(Checked), 0,
                                    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL | Py_TPFLAGS_METHOD_DESCRIPTOR,
                                    method_slots};
  static PyType_Spec function_spec = {"dagrad._core.checked_function", sizeof(Checked), 0,
                                      Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_VECTORCALL, function_slots};
  PyObject* t = PyType_FromSpec(method ? &method_spec : &function_spec);
  if (!t) throw py::error_already_set();
  return reinterpret_cast<PyTypeObject*>(t);
}

py::object make_checked(PyTypeObject* type, py::handle func, const std::string& name) {
  Checked* c = PyObject_New(Checked, type);
  if (!c) throw py::error_already_set();
  c->vectorcall = &checked_vectorcall;
  c->func = func.inc_ref().ptr();
  c->name = PyUnicode_FromString(name.c_str());
  c->cname = new std::string(name);
  return py::reinterpret_steal<py::object>(reinterpret_cast<PyObject*>(c));
}

bool is_pybind_function(py::handle f) {
  // pybind11 functions are PyCFunctions whose self is their function record: a capsule up to
  // pybind11 2.x, a "pybind11_detail_function_record_..." object since 3.0.
  if (!PyCFunction_Check(f.ptr())) return false;
  PyObject* self = PyCFunction_GET_SELF(f.ptr());
  if (!self) return false;
  return PyCapsule_CheckExact(self) ||
         std::strstr(Py_TYPE(self)->tp_name, "pybind11_detail_function_record") != nullptr;
}

}  // namespace

const char* current_call(const char* fallback) { return t_current ? t_current : fallback; }

int64_t int_arg(py::handle v, const char* arg, bool is_size) {
  if (!is_int_like(v)) type_error(arg, "int", v);
  py::int_ i = py::reinterpret_steal<py::int_>(PyNumber_Index(v.ptr()));
  if (!i) throw py::error_already_set();
  int overflow = 0;
  long long r = PyLong_AsLongLongAndOverflow(i.ptr(), &overflow);
  if (overflow) {
    std::string m = prefix(arg) + " is out of range: " + std::string(py::str(i)) + " does not fit in int64";
    if (is_size) throw dagrad::TypeError(m);
    throw dagrad::ValueError(m);
  }
  return static_cast<int64_t>(r);
}

int64_t dim_arg(int64_t v, int64_t ndim, const char* arg) {
  const int64_t lo = ndim == 0 ? -1 : -ndim, hi = ndim == 0 ? 0 : ndim - 1;
  if (v < lo || v > hi)
    throw dagrad::IndexError(prefix(arg) + " is out of range: dimension " + std::to_string(v) + " of a tensor of " +
                             std::to_string(ndim) + " dimensions (expected to be in range of [" + std::to_string(lo) +
                             ", " + std::to_string(hi) + "])");
  return v;
}

std::vector<int64_t> dims_arg(py::handle dim, int64_t ndim, const char* arg) {
  std::vector<int64_t> out;
  if (dim.is_none()) return out;
  auto one = [&](py::handle d) { out.push_back(dim_arg(int_arg(d, arg), ndim, arg)); };
  // A list, tuple, range or 1-d array of dims; anything else must be one int.
  const bool many = py::isinstance<py::list>(dim) || py::isinstance<py::tuple>(dim) || PyRange_Check(dim.ptr()) ||
                    (py::isinstance<py::array>(dim) && py::reinterpret_borrow<py::array>(dim).ndim() == 1);
  if (!many) {
    if (!is_int_like(dim)) type_error(arg, "an int or a sequence of ints", dim);
    one(dim);
    return out;
  }
  for (py::handle d : dim) {
    if (!is_int_like(d)) type_error(arg, "an int or a sequence of ints", d);
    one(d);
  }
  return out;
}

Shape shape_args(const py::args& args, const char* arg, int64_t min_size, bool is_size) {
  py::sequence seq = args;
  if (args.size() == 1 && !is_int_like(args[0])) {
    if (!(py::isinstance<py::list>(args[0]) || py::isinstance<py::tuple>(args[0])))
      type_error(arg, "a sequence of ints", args[0]);
    seq = args[0];
  }
  Shape s;
  for (py::handle v : seq) {
    if (!is_int_like(v)) type_error(arg, "a sequence of ints", v);
    int64_t n = int_arg(v, arg, is_size);
    if (n < min_size)
      throw dagrad::ValueError(prefix(arg) + " has an invalid size " + std::to_string(n) + " in " +
                               std::string(py::str(seq)));
    s.push_back(n);
  }
  return s;
}

Tensor tensor_arg(py::handle v, const char* arg) {
  if (!tensor_type::is_tensor(v.ptr())) type_error(arg, "Tensor", v);
  return v.cast<Tensor>();
}

bool is_operand(py::handle other) {
  // Numbers (numpy scalars included: PyNumber_Check is false for str), tensors, arrays, lists.
  return tensor_type::is_tensor(other.ptr()) || PyNumber_Check(other.ptr()) || py::isinstance<py::list>(other) ||
         py::isinstance<py::tuple>(other) || py::isinstance<py::array>(other);
}

Tensor convert_operand(py::handle other) {
  if (!is_operand(other)) type_error("other", "a Tensor, a number or an array", other);
  try {
    return py::module_::import("dagrad").attr("tensor")(other).cast<Tensor>();
  } catch (py::error_already_set& e) {
    if (!e.matches(PyExc_TypeError) && !e.matches(PyExc_ValueError)) throw;
    throw dagrad::TypeError(prefix("other") +
                            " must be a Tensor, a number or an array of numbers: " + std::string(py::str(e.value())));
  }
}

void install_arg_errors(py::module_& m, py::handle tensor_type) {
  PyTypeObject* function_type = make_type(false);
  PyTypeObject* method_type = make_type(true);
  // Collected first: the dicts are written to below.
  std::vector<std::pair<std::string, py::object>> functions, methods, properties;
  for (auto item : py::reinterpret_borrow<py::dict>(m.attr("__dict__"))) {
    std::string name = py::str(item.first);
    if (!name.empty() && name[0] != '_' && is_pybind_function(item.second))
      functions.emplace_back(name, py::reinterpret_borrow<py::object>(item.second));
  }
  py::object property = py::module_::import("builtins").attr("property");
  // The type's own dict (its __dict__ is a mappingproxy, which PyDict_Next cannot walk).
  PyObject* tdict = reinterpret_cast<PyTypeObject*>(tensor_type.ptr())->tp_dict;
  for (auto item : py::reinterpret_borrow<py::dict>(tdict)) {
    std::string name = py::str(item.first);
    if (name.empty() || name[0] == '_') continue;
    py::handle v = item.second;
    if (PyInstanceMethod_Check(v.ptr()) && is_pybind_function(PyInstanceMethod_GET_FUNCTION(v.ptr())))
      methods.emplace_back(name, py::reinterpret_borrow<py::object>(PyInstanceMethod_GET_FUNCTION(v.ptr())));
    else if (py::isinstance(v, property) && is_pybind_function(v.attr("fset")))
      properties.emplace_back(name, py::reinterpret_borrow<py::object>(v));
  }
  for (auto& [name, f] : functions) m.attr(name.c_str()) = make_checked(function_type, f, name);
  for (auto& [name, f] : methods)
    py::setattr(tensor_type, name.c_str(), make_checked(method_type, f, "Tensor." + name));
  for (auto& [name, p] : properties) {
    py::object setter = make_checked(function_type, p.attr("fset"), "Tensor." + name);
    py::setattr(tensor_type, name.c_str(), property(p.attr("fget"), setter, p.attr("fdel"), p.attr("__doc__")));
  }
  PyType_Modified(reinterpret_cast<PyTypeObject*>(tensor_type.ptr()));
}

}  // namespace dagrad_py
