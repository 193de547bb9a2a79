// (3) nanobind 3.1: the value inline in the instance; nb_multiply set through nb::type_slots.
#include <nanobind/nanobind.h>
#include "common.h"
namespace nb = nanobind;
struct T {
  Handle h;
};
static PyTypeObject* g_type;
static PyObject* mul(PyObject* a, PyObject* b) {
  if (Py_TYPE(a) != g_type || Py_TYPE(b) != g_type) Py_RETURN_NOTIMPLEMENTED;
  T r{record_mul(nb::inst_ptr<T>(a)->h, nb::inst_ptr<T>(b)->h)};
  return nb::cast(std::move(r), nb::rv_policy::move).release().ptr();
}
static PyType_Slot slots[] = {{Py_nb_multiply, (void*)mul}, {0, nullptr}};
NB_MODULE(proto_nanobind, m) {
  nb::class_<T> cls(m, "T", nb::type_slots(slots));
  g_type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  m.def("make", [](float v) {
    auto n = std::make_shared<FakeNode>();
    n->value = v;
    return T{n};
  });
}
