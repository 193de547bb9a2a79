// (2) A hand-written heap type (PyType_FromSpec) holding the handle inline: no separate C++
// value, no instance registry.
#include <Python.h>
#include <structmember.h>
#include <new>
#include "common.h"
struct Obj {
  PyObject_HEAD Handle h;
  PyObject* weakrefs;
};
static PyTypeObject* g_type;
static PyObject* wrap(Handle&& h) {
  Obj* o = PyObject_New(Obj, g_type);  // heap type: PyObject_New increfs the type
  if (!o) return nullptr;
  new (&o->h) Handle(std::move(h));
  o->weakrefs = nullptr;
  return reinterpret_cast<PyObject*>(o);
}
static void dealloc(PyObject* self) {
  Obj* o = reinterpret_cast<Obj*>(self);
  PyTypeObject* tp = Py_TYPE(self);
  if (o->weakrefs) PyObject_ClearWeakRefs(self);
  o->h.~Handle();
  tp->tp_free(self);
  Py_DECREF(tp);
}
static PyObject* mul(PyObject* a, PyObject* b) {
  if (Py_TYPE(a) != g_type || Py_TYPE(b) != g_type) Py_RETURN_NOTIMPLEMENTED;
  return wrap(record_mul(reinterpret_cast<Obj*>(a)->h, reinterpret_cast<Obj*>(b)->h));
}
static PyObject* make(PyObject*, PyObject* v) {
  auto n = std::make_shared<FakeNode>();
  n->value = static_cast<float>(PyFloat_AsDouble(v));
  return wrap(std::move(n));
}
static PyMemberDef members[] = {{"__weaklistoffset__", T_PYSSIZET, offsetof(Obj, weakrefs), READONLY, nullptr},
                                {nullptr, 0, 0, 0, nullptr}};
static PyType_Slot slots[] = {
    {Py_tp_dealloc, (void*)dealloc}, {Py_nb_multiply, (void*)mul}, {Py_tp_members, members}, {0, nullptr}};
static PyType_Spec spec = {"proto_capi.T", sizeof(Obj), 0, Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE, slots};
static PyMethodDef fns[] = {{"make", make, METH_O, nullptr}, {nullptr, nullptr, 0, nullptr}};
static PyModuleDef mod = {PyModuleDef_HEAD_INIT, "proto_capi", nullptr, -1, fns};
PyMODINIT_FUNC PyInit_proto_capi() {
  PyObject* m = PyModule_Create(&mod);
  g_type = reinterpret_cast<PyTypeObject*>(PyType_FromSpec(&spec));
  PyModule_AddObject(m, "T", reinterpret_cast<PyObject*>(g_type));
  Py_INCREF(g_type);
  return m;
}
