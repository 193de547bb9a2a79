// (1) pybind11 as dagrad uses it now: py::class_ + an nb_multiply slot wrapping with type_caster_base.
#include <pybind11/pybind11.h>
#include "common.h"
namespace py = pybind11;
struct T {
  Handle h;
};
static PyTypeObject* g_type;
static const py::detail::type_info* g_tinfo;
static const T& unwrap(PyObject* o) {
  auto* inst = reinterpret_cast<py::detail::instance*>(o);
  auto vh = inst->get_value_and_holder(g_tinfo, false);
  return *vh.value_ptr<T>();
}
static PyObject* mul(PyObject* a, PyObject* b) {
  if (Py_TYPE(a) != g_type || Py_TYPE(b) != g_type) Py_RETURN_NOTIMPLEMENTED;
  T r{record_mul(unwrap(a).h, unwrap(b).h)};
  return py::detail::type_caster_base<T>::cast(std::move(r), py::return_value_policy::move, py::handle()).ptr();
}
PYBIND11_MODULE(proto_pybind, m) {
  py::class_<T> cls(m, "T");
  m.def("make", [](float v) {
    auto n = std::make_shared<FakeNode>();
    n->value = v;
    return T{n};
  });
  g_type = reinterpret_cast<PyTypeObject*>(cls.ptr());
  g_tinfo = py::detail::get_type_info(typeid(T));
  g_type->tp_as_number->nb_multiply = &mul;
  PyType_Modified(g_type);
}
