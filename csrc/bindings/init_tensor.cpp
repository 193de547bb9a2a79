// dtype and the Tensor class: properties, values, operators, in-place updates, creation.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <optional>

#include "arg_errors.h"
#include "bindings.h"
#include "dagrad/autodiff.h"
#include "dagrad/ops.h"
#include "dagrad/runtime.h"
#include "dagrad/scheduler.h"
#include "dagrad/trace.h"

namespace py = pybind11;
using namespace dagrad;

namespace dagrad_py {

std::shared_ptr<py::function> gil_safe_holder(py::function fn) {
  return std::shared_ptr<py::function>(new py::function(std::move(fn)), [](py::function* f) {
    if (!Py_IsInitialized()) return;  // at exit: leaked, not touched without a GIL
    py::gil_scoped_acquire gil;
    delete f;
  });
}

void realize_nogil(const std::vector<Tensor>& ts) {
  py::gil_scoped_release release;
  realize(ts);
}

// Note [Reading values while tracing]: a compiled step is traced once and replayed without
// running Python, so a value read inside the traced function would be read only once.
void check_not_tracing(const char* what) {
  if (trace::active())
    throw RuntimeError(std::string(what) +
                       " inside a function being traced by dagrad.compile: the function runs once "
                       "to record its graph and is then replayed without Python, so this value would "
                       "be read only once and go stale. Return the tensor from the function and read "
                       "it outside instead");
}

std::optional<Scalar> as_scalar(const py::handle& h, bool throw_on_overflow) {
  PyObject* o = h.ptr();
  if (PyBool_Check(o)) return Scalar::boolean(o == Py_True);
  if (PyLong_Check(o)) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow && !throw_on_overflow) return std::nullopt;
    if (overflow) throw ValueError("the Python int " + std::string(py::str(h)) + " does not fit in int64");
    return Scalar::integer(v);
  }
  if (PyFloat_Check(o)) return Scalar(PyFloat_AS_DOUBLE(o));
  // numpy scalars (np.bool_, np.int64, np.float32, ...): by their dtype's kind.
  if (py::hasattr(h, "dtype") && py::hasattr(h, "item") && !tensor_type::is_tensor(h.ptr()) &&
      !py::isinstance<py::array>(h)) {
    const std::string kind = py::str(h.attr("dtype").attr("kind"));
    if (kind == "b" || kind == "i" || kind == "u" || kind == "f") return as_scalar(h.attr("item")(), throw_on_overflow);
  }
  return std::nullopt;
}

// A Python number next to a tensor: PyTorch's "weak" scalar rule (result_type, in the core).
Tensor operand(const py::handle& other, const Tensor& like) {
  if (tensor_type::is_tensor(other.ptr())) return other.cast<Tensor>();
  if (std::optional<Scalar> s = as_scalar(other)) {
    // A bool stays a bool tensor (promotion gives the same dtype, and sub can refuse it).
    if (s->kind() == Scalar::Kind::Bool) return scalar(*s, DType::Bool);
    return scalar(*s, result_type(like.dtype(), s->kind()));
  }
  return convert_operand(other);  // a TypeError naming the call for a non-number
}

namespace {

py::dtype numpy_dtype(DType dt) {
  switch (dt) {
    case DType::Float32: return py::dtype::of<float>();
    case DType::Float64: return py::dtype::of<double>();
    case DType::Int64: return py::dtype::of<int64_t>();
    case DType::Bool: return py::dtype::of<bool>();
  }
  return py::dtype::of<float>();
}

// A read-only numpy view of the value; the capsule keeps the storage alive.
py::array to_numpy(const Tensor& t) {
  check_not_tracing("numpy()");
  realize_nogil({t});
  auto* keep = new StoragePtr(t->storage);
  py::capsule owner(keep, [](void* p) { delete static_cast<StoragePtr*>(p); });
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  std::vector<py::ssize_t> strides;
  Shape cs = contiguous_strides(t.shape());
  // An empty array's strides address nothing: numpy's own (itemsize) avoid overflowing ones.
  for (int64_t s : cs) strides.push_back(t.numel() ? static_cast<py::ssize_t>(s * itemsize(t.dtype())) : 0);
  py::array arr(numpy_dtype(t.dtype()), shape, strides, t->storage->data(), owner);
  py::detail::array_proxy(arr.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return arr;
}

}  // namespace

py::array node_array(const Node& n, bool writable) {
  auto* keep = new StoragePtr(n.storage);
  py::capsule owner(keep, [](void* p) { delete static_cast<StoragePtr*>(p); });
  std::vector<py::ssize_t> shape(n.shape.begin(), n.shape.end());
  std::vector<py::ssize_t> strides;
  const int64_t numel = n.numel();
  for (int64_t s : contiguous_strides(n.shape))
    strides.push_back(numel ? static_cast<py::ssize_t>(s * itemsize(n.dtype)) : 0);
  py::array arr(numpy_dtype(n.dtype), shape, strides, n.storage->data(), owner);
  if (!writable) py::detail::array_proxy(arr.ptr())->flags &= ~py::detail::npy_api::NPY_ARRAY_WRITEABLE_;
  return arr;
}

namespace {

Tensor from_numpy(const py::array& arr, DType dt, bool requires_grad) {
  if (!(arr.flags() & py::array::c_style) || !arr.dtype().is(numpy_dtype(dt)))
    throw TypeError("internal: _from_numpy needs a C-contiguous array of the target dtype");
  Shape shape(arr.shape(), arr.shape() + arr.ndim());
  return from_data(arr.data(), shape, dt, requires_grad);
}

// An in-place op computes its value out of place, without recording, then writes it back
// (runtime.h's write_inplace checks the dtypes), with the GIL released (Note [GIL policy]).
template <class F>
Tensor inplace(const char* op, const Tensor& self, F make_value, bool is_copy = false) {
  Tensor v;
  {
    NoGradGuard ng;
    v = make_value();
  }
  py::gil_scoped_release release;
  write_inplace(op, self, v, is_copy);
  return self;
}

}  // namespace

void init_tensor(py::module_& m, TensorClass& cls) {
  py::enum_<DType>(m, "dtype")
      .value("float32", DType::Float32)
      .value("float64", DType::Float64)
      .value("int64", DType::Int64)
      .value("bool", DType::Bool)
      .def_property_readonly("itemsize", [](DType d) { return itemsize(d); })
      .def_property_readonly("is_floating_point", [](DType d) { return is_floating(d); });

  // No per-object __dict__: tensors are not tracked by Python's cyclic GC, which matters when a
  // loop creates millions of them. State lives on the node (see _is_param). Weak references
  // work (weakref.ref(t), WeakValueDictionary), as for torch.Tensor. The type itself: Note
  // [Tensor is a hand-written CPython type].
  cls.def_property_readonly("shape", [](const Tensor& t) { return py::tuple(py::cast(t.shape())); })
      .def_property_readonly("ndim", &Tensor::ndim)
      .def_property_readonly("dtype", &Tensor::dtype)
      .def("dim", &Tensor::ndim)
      .def("numel", &Tensor::numel)
      .def_property("requires_grad", &Tensor::requires_grad, [](const Tensor& t, bool v) { set_requires_grad(t, v); })
      .def(
          "requires_grad_",
          [](const Tensor& t, bool v) {
            set_requires_grad(t, v);
            return t;
          },
          py::arg("requires_grad") = true)
      .def_property(
          "grad",
          [](const Tensor& t) -> py::object {
            NodePtr g = get_grad(t);
            if (!g) return py::none();
            return py::cast(Tensor(std::move(g)));
          },
          [](const Tensor& t, const py::object& g) {
            if (!g.is_none() && !tensor_type::is_tensor(g.ptr()))
              throw TypeError("Tensor.grad: assigned grad must be a Tensor or None, not " + type_name(g));
            set_grad(t, g.is_none() ? Tensor() : g.cast<Tensor>());
          })
      .def_property_readonly("is_leaf", [](const Tensor& t) { return t->is_leaf(); })
      .def_property_readonly("_op",
                             [](const Tensor& t) {
                               // A user-defined op (autograd.Function, a C++ custom op) by its own name.
                               if (t->op == OpKind::Custom && t->attrs.custom) return t->attrs.custom->name;
                               return std::string(op_name(t->op));
                             })
      .def_property_readonly("_id", [](const Tensor& t) { return t->id; })
      .def_property_readonly("_realized", [](const Tensor& t) { return t->realized(); })
      .def_property_readonly("_graph_freed", [](const Tensor& t) { return t->graph_freed; })
      // Introspection for the graph views (dagrad.viz) and grad_fn.next_functions.
      .def_property_readonly("_inputs",
                             [](const Tensor& t) {
                               std::vector<Tensor> out;
                               GraphLock lock;  // a run on another thread may be releasing edges
                               for (const Edge& e : t->inputs) out.emplace_back(e.node);
                               return out;
                             })
      .def_property_readonly("_is_backward", [](const Tensor& t) { return t->is_backward; })
      .def_property_readonly("_storage_id",
                             [](const Tensor& t) -> py::object {
                               if (!t->storage) return py::none();
                               return py::int_(reinterpret_cast<uintptr_t>(t->storage.get()));
                             })
      .def("retain_grad", [](const Tensor& t) { retain_grad(t); })
      .def_property_readonly("retains_grad", [](const Tensor& t) { return (t->grad_flags & Node::kRetainsGrad) != 0; })
      .def("_register_hook",
           [](const Tensor& t, py::function fn) {
             // Note [Gradient hooks from Python]: the hook lives in the core's table, which may
             // drop it on any thread (the node dies wherever its last edge goes), so the
             // Python callable is released under the GIL; it is called with the GIL, which
             // backward (running with the GIL released, Note [GIL policy]) takes around it.
             std::shared_ptr<py::function> holder = gil_safe_holder(std::move(fn));
             return add_grad_hook(t, [holder](const Tensor& g) -> Tensor {
               py::gil_scoped_acquire gil;
               py::object r = (*holder)(g);
               if (r.is_none()) return Tensor();
               if (!tensor_type::is_tensor(r.ptr()))
                 throw TypeError("hook: a gradient hook must return a Tensor or None, not " + type_name(r));
               return r.cast<Tensor>();
             });
           })
      .def_property(
          "_is_param", [](const Tensor& t) { return t->is_param; }, [](const Tensor& t, bool v) { t->is_param = v; })
      .def("numpy", &to_numpy)
      .def("item",
           [](const Tensor& t) -> py::object {
             check_not_tracing("item()");
             realize_nogil({t});
             if (t.dtype() == DType::Int64 && t.numel() == 1) return py::int_(t.data<int64_t>()[0]);  // exact
             double v = t.item();
             switch (t.dtype()) {
               case DType::Int64: break;
               case DType::Bool: return py::bool_(v != 0.0);
               default: return py::float_(v);
             }
           })
      .def("detach", &detach)
      .def_property("data", &detach,
                    [](const Tensor& t, const Tensor& v) {
                      if (v.shape() != t.shape())
                        throw RuntimeError("data: cannot assign a tensor of shape " + shape_str(v.shape()) +
                                           " to one of shape " + shape_str(t.shape()));
                      NoGradGuard ng;
                      py::gil_scoped_release release;
                      assign_(detach(t), v);
                    })
      .def("_backward",
           [](const Tensor& t, const py::object& gradient, bool retain, bool create) {
             Tensor g = gradient.is_none() ? Tensor() : operand(gradient, t);
             py::gil_scoped_release release;
             t.backward(g, retain, create);
           })
      // arithmetic
      .def("__add__", [](const Tensor& a, py::object b) { return add(a, operand(b, a)); })
      .def("__radd__", [](const Tensor& a, py::object b) { return add(operand(b, a), a); })
      .def("__sub__", [](const Tensor& a, py::object b) { return sub(a, operand(b, a)); })
      .def("__rsub__", [](const Tensor& a, py::object b) { return sub(operand(b, a), a); })
      .def("__mul__", [](const Tensor& a, py::object b) { return mul(a, operand(b, a)); })
      .def("__rmul__", [](const Tensor& a, py::object b) { return mul(operand(b, a), a); })
      .def("__truediv__", [](const Tensor& a, py::object b) { return div(a, operand(b, a)); })
      .def("__rtruediv__", [](const Tensor& a, py::object b) { return div(operand(b, a), a); })
      .def("__matmul__", [](const Tensor& a, py::object b) { return matmul(a, operand(b, a)); })
      .def("__rmatmul__", [](const Tensor& a, py::object b) { return matmul(operand(b, a), a); })
      .def("__neg__", [](const Tensor& a) { return neg(a); })
      .def("__pos__", [](const Tensor& a) { return a; })
      .def("__pow__",
           [](const Tensor& a, py::object p) {
             if (std::optional<Scalar> s = as_scalar(p)) return pow(a, *s);
             throw TypeError("pow: the exponent must be a Python number, got " +
                             std::string(py::str(py::type::of(p).attr("__name__"))));
           })
      .def("__rpow__",
           [](const Tensor& a, py::object base) {
             if (!(py::isinstance<py::int_>(base) || py::isinstance<py::float_>(base)))
               throw TypeError("pow: unsupported base type");
             double b = base.cast<double>();
             if (!(b > 0.0)) throw ValueError("pow: a tensor exponent needs a positive base, got " + std::to_string(b));
             Tensor x = is_floating(a.dtype()) ? a : cast(a, DType::Float32);
             Tensor r = exp(mul(x, scalar(std::log(b), x.dtype())));
             // 1 ** x is 1 even for x = nan or inf (C's pow, PyTorch); exp(x * 0) would be nan there,
             // and x * 0 is nonzero (nan) exactly there.
             if (b != 1.0) return r;
             Tensor zero = scalar(0.0, x.dtype());
             return where(ne(mul(x, zero), zero), scalar(1.0, x.dtype()), r);
           })
      .def("__iadd__",
           [](const Tensor& a, py::object b) {
             Tensor o = operand(b, a);
             return inplace("__iadd__", a, [&] { return add(a, o); });
           })
      .def("__isub__",
           [](const Tensor& a, py::object b) {
             Tensor o = operand(b, a);
             return inplace("__isub__", a, [&] { return sub(a, o); });
           })
      .def("__imul__",
           [](const Tensor& a, py::object b) {
             Tensor o = operand(b, a);
             return inplace("__imul__", a, [&] { return mul(a, o); });
           })
      .def("__itruediv__",
           [](const Tensor& a, py::object b) {
             Tensor o = operand(b, a);
             return inplace("__itruediv__", a, [&] { return div(a, o); });
           })
      .def(
          "add_",
          [](const Tensor& a, py::object b, Scalar alpha) {
            Tensor o = operand(b, a);
            return inplace("add_", a, [&] {
              return alpha.to_double() == 1.0 ? add(a, o)
                                              : add(a, mul(o, scalar(alpha, result_type(o.dtype(), alpha.kind()))));
            });
          },
          py::arg("other"), py::kw_only(), py::arg("alpha") = 1.0)
      .def(
          "sub_",
          [](const Tensor& a, py::object b, Scalar alpha) {
            Tensor o = operand(b, a);
            return inplace("sub_", a, [&] {
              return alpha.to_double() == 1.0 ? sub(a, o)
                                              : sub(a, mul(o, scalar(alpha, result_type(o.dtype(), alpha.kind()))));
            });
          },
          py::arg("other"), py::kw_only(), py::arg("alpha") = 1.0)
      .def("mul_",
           [](const Tensor& a, py::object b) {
             Tensor o = operand(b, a);
             return inplace("mul_", a, [&] { return mul(a, o); });
           })
      .def("div_",
           [](const Tensor& a, py::object b) {
             Tensor o = operand(b, a);
             return inplace("div_", a, [&] { return div(a, o); });
           })
      .def("zero_", [](const Tensor& a) { return inplace("zero_", a, [&] { return scalar(0.0, a.dtype()); }); })
      .def("fill_", [](const Tensor& a, Scalar v) { return inplace("fill_", a, [&] { return scalar(v, a.dtype()); }); })
      .def("copy_",
           [](const Tensor& a, py::object src) {
             // A number is written as the tensor's dtype straight from its exact value (as fill_),
             // not through the float32 a weak scalar would become (1e-100 into bool is True).
             std::optional<Scalar> s = as_scalar(src);
             Tensor o = s ? scalar(*s, a.dtype()) : operand(src, a);
             return inplace("copy_", a, [&] { return o; }, /*is_copy=*/true);
           })
      .def_property_readonly("T",
                             [](const Tensor& x) {
                               std::vector<int64_t> perm(x.ndim());
                               for (int64_t i = 0; i < x.ndim(); ++i) perm[i] = x.ndim() - 1 - i;
                               return permute(x, perm);
                             })
      .def("to", [](const Tensor& x, DType dt) { return cast(x, dt); })
      .def("float", [](const Tensor& x) { return cast(x, DType::Float32); })
      .def("double", [](const Tensor& x) { return cast(x, DType::Float64); })
      .def("long", [](const Tensor& x) { return cast(x, DType::Int64); })
      .def("is_floating_point", [](const Tensor& x) { return is_floating(x.dtype()); })
      .def("__eq__", [](const Tensor& a, py::object b) { return eq(a, operand(b, a)); })
      .def("__ne__", [](const Tensor& a, py::object b) { return ne(a, operand(b, a)); })
      .def("__lt__", [](const Tensor& a, py::object b) { return lt(a, operand(b, a)); })
      .def("__le__", [](const Tensor& a, py::object b) { return le(a, operand(b, a)); })
      .def("__gt__", [](const Tensor& a, py::object b) { return gt(a, operand(b, a)); })
      .def("__ge__", [](const Tensor& a, py::object b) { return ge(a, operand(b, a)); })
      .def("__abs__", [](const Tensor& a) { return dagrad::abs(a); });

  // creation
  m.def("_from_numpy", &from_numpy, py::arg("array"), py::arg("dtype"), py::arg("requires_grad") = false);
  m.def(
      "full", [](const Shape& shape, Scalar v, DType dt, bool rg) { return full(shape, v, dt, rg); }, py::arg("shape"),
      py::arg("fill_value"), py::arg("dtype"), py::arg("requires_grad") = false);
}

}  // namespace dagrad_py
