// dagrad.Tensor's CPython type: allocation, teardown, weak references, and the class builder.
#include "tensor_type.h"

#include <structmember.h>

#include <cstddef>

namespace py = pybind11;

namespace dagrad_py {

// Note [Tensor is a hand-written CPython type]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A scalar graph creates and frees one Tensor object per op, so the object's own cost is a
// large share of recording an op from Python (about 100 ns of C++). Through pybind11 each new
// object was three things: the Python instance, a separately heap-allocated C++ Tensor, and an
// entry in pybind11's registry of live instances (inserted on creation, erased on death). The
// prototypes in benchmarks/wrapper_proto time `x * w` on a stand-in handle (a shared_ptr, as
// Tensor is) through the same kind of nb_multiply slot: pybind11 ~145 ns, nanobind 3.1 (value
// inline, but still a registry) ~70 ns, a hand-written type holding the handle inline ~45 ns,
// of which ~20 ns are the loop and the stand-in node. So Tensor is a heap type made with
// PyType_FromSpec (Python code may still add methods, as dagrad/_tensor.py does) whose object
// is PyTensor: the handle and the weak-reference list, nothing else. Nothing maps nodes to
// objects; as before, every conversion of a C++ Tensor to Python makes a new object (so
// `x.add_(1) is x` stays False, as with pybind11's by-value returns).
// pybind11 stays for everything else: the caster in tensor_type.h converts at every pybind11
// boundary, and TensorClass defines the methods with pybind11's cpp_function, so signatures,
// docstrings, argument errors (Note [Argument errors]) and the stub are the same as before.
// The type has no __dict__ and no GC flag: tensors stay out of the cyclic GC. It cannot be
// instantiated from Python (tensors come from dagrad.tensor and the ops), as before.
// GIL: objects are created and destroyed with the GIL held, like any Python object; dropping
// the handle may free a graph, which touches no Python object except gil_safe_holder's
// callables (Note [GIL policy]).

namespace tensor_type {
PyTypeObject* g_type = nullptr;

void throw_uninitialised() { throw py::type_error("dagrad.Tensor object is not initialised"); }
}  // namespace tensor_type

namespace {

void tensor_dealloc(PyObject* self) {
  PyTypeObject* tp = Py_TYPE(self);
  auto* o = reinterpret_cast<PyTensor*>(self);
  if (o->weakrefs) PyObject_ClearWeakRefs(self);
  if (PyErr_Occurred()) {
    // Dropping the last handle may release Python callables (hooks): keep an exception that is
    // being raised (this object may die while its frame unwinds) out of their way.
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    o->value.~Tensor();
    PyErr_Restore(type, value, tb);
  } else {
    o->value.~Tensor();
  }
  tp->tp_free(self);
  Py_DECREF(tp);  // instances of heap types own a reference to their type
}

// As for pybind11's types without a constructor: Tensor.__new__ makes an object holding no node
// (which every entry point refuses, see unwrap), Tensor() raises.
PyObject* tensor_new(PyTypeObject* type, PyObject*, PyObject*) {
  PyObject* self = type->tp_alloc(type, 0);
  if (!self) return nullptr;
  auto* o = reinterpret_cast<PyTensor*>(self);
  new (&o->value) dagrad::Tensor();
  o->weakrefs = nullptr;
  return self;
}

int tensor_init(PyObject* self, PyObject*, PyObject*) {
  PyErr_Format(PyExc_TypeError, "%s: No constructor defined!", Py_TYPE(self)->tp_name);
  return -1;
}

PyMemberDef tensor_members[] = {
    {"__weaklistoffset__", T_PYSSIZET, offsetof(PyTensor, weakrefs), READONLY, nullptr},
    {nullptr, 0, 0, 0, nullptr},
};

PyType_Slot tensor_slots[] = {
    {Py_tp_dealloc, reinterpret_cast<void*>(&tensor_dealloc)},
    {Py_tp_new, reinterpret_cast<void*>(&tensor_new)},
    {Py_tp_init, reinterpret_cast<void*>(&tensor_init)},
    {Py_tp_members, tensor_members},
    {0, nullptr},
};

PyType_Spec tensor_spec = {"dagrad._core.Tensor", sizeof(PyTensor), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
                           tensor_slots};

}  // namespace

TensorClass::TensorClass(py::module_& m) {
  if (tensor_type::g_type) throw std::runtime_error("dagrad._core: the Tensor type exists already");
  // A heap type's tp_as_number points into the type itself: the fast calls (Note [Fast
  // calls]) fill its number slots after the methods are defined.
  type_ = py::reinterpret_steal<py::object>(PyType_FromSpec(&tensor_spec));
  if (!type_) throw py::error_already_set();
  tensor_type::g_type = reinterpret_cast<PyTypeObject*>(type_.ptr());
  Py_INCREF(type_.ptr());  // kept for the process: g_type is used by every conversion
  m.attr("Tensor") = type_;
}

py::object TensorClass::unbound(const py::cpp_function& f) {
  if (PyInstanceMethod_Check(f.ptr()))
    return py::reinterpret_borrow<py::object>(PyInstanceMethod_GET_FUNCTION(f.ptr()));
  return f;
}

TensorClass& TensorClass::property(const char* name, const py::object& fget, const py::object& fset) {
  // As pybind11's def_property: a builtin property, empty doc (the package documents Tensor).
  type_.attr(name) = py::reinterpret_borrow<py::object>(reinterpret_cast<PyObject*>(&PyProperty_Type))(
      fget, fset, py::none(), py::str(""));
  return *this;
}

}  // namespace dagrad_py
