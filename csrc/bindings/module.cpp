// pybind11 bindings: converts arguments, releases the GIL around runs, maps exceptions.
// See Note [GIL policy].
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <omp.h>

#include <cmath>
#include <optional>
#include <cstring>
#include <limits>

#include "dagrad/autodiff.h"
#include "dagrad/kernels/gemm.h"
#include "dagrad/ops.h"
#include "dagrad/optim.h"
#include "dagrad/profiler.h"
#include "dagrad/runtime.h"
#include "dagrad/trace.h"
#include "dagrad/scheduler.h"
#include "arg_errors.h"
#include "fast_calls.h"

namespace py = pybind11;
using namespace dagrad;

// Note [GIL policy]
// ~~~~~~~~~~~~~~~~~
// Recording a node is a few hundred nanoseconds of C++ and keeps the GIL (releasing and
// re-taking it would cost as much). Everything that runs kernels (realize, backward, grad,
// numpy(), in-place updates) releases the GIL for the whole run, so other Python threads
// proceed while the scheduler works. Worker threads never touch Python objects: they only
// see nodes and storage. Node teardown may happen on any thread and touches no Python.

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

Tensor from_numpy(const py::array& arr, DType dt, bool requires_grad) {
  if (!(arr.flags() & py::array::c_style) || !arr.dtype().is(numpy_dtype(dt)))
    throw TypeError("internal: _from_numpy needs a C-contiguous array of the target dtype");
  Shape shape(arr.shape(), arr.shape() + arr.ndim());
  return from_data(arr.data(), shape, dt, requires_grad);
}

}  // namespace

std::optional<Scalar> dagrad_py::as_scalar(const py::handle& h, bool throw_on_overflow) {
  PyObject* o = h.ptr();
  if (PyBool_Check(o)) return Scalar::boolean(o == Py_True);
  if (PyLong_Check(o)) {
    int overflow = 0;
    const long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow && !throw_on_overflow) return std::nullopt;
    if (overflow)
      throw ValueError("the Python int " + std::string(py::str(h)) + " does not fit in int64");
    return Scalar::integer(v);
  }
  if (PyFloat_Check(o)) return Scalar(PyFloat_AS_DOUBLE(o));
  // numpy scalars (np.bool_, np.int64, np.float32, ...): by their dtype's kind.
  if (py::hasattr(h, "dtype") && py::hasattr(h, "item") && !py::isinstance<Tensor>(h) &&
      !py::isinstance<py::array>(h)) {
    const std::string kind = py::str(h.attr("dtype").attr("kind"));
    if (kind == "b" || kind == "i" || kind == "u" || kind == "f") return as_scalar(h.attr("item")(), throw_on_overflow);
  }
  return std::nullopt;
}

// A Python number next to a tensor: PyTorch's "weak" scalar rule (result_type, in the core).
Tensor dagrad_py::operand(const py::handle& other, const Tensor& like) {
  if (py::isinstance<Tensor>(other)) return other.cast<Tensor>();
  if (std::optional<Scalar> s = as_scalar(other)) {
    // A bool stays a bool tensor (promotion gives the same dtype, and sub can refuse it).
    if (s->kind() == Scalar::Kind::Bool) return scalar(*s, DType::Bool);
    return scalar(*s, result_type(like.dtype(), s->kind()));
  }
  return dagrad_py::convert_operand(other);  // a TypeError naming the call for a non-number
}

namespace {
using dagrad_py::operand;
using dagrad_py::as_scalar;

// Type and range checks raise errors naming the public call: Note [Argument errors].
std::vector<int64_t> dims_arg(const py::object& dim, const Tensor& x) {
  return dagrad_py::dims_arg(dim, x.ndim());
}

// reshape(2, 3), reshape((2, 3)) and reshape([2, 3]) all mean the same; -1 is inferred.
Shape shape_args(const py::args& args) { return dagrad_py::shape_args(args, "shape", -1); }

Tensor reduce_all_dims(const Tensor& x, const py::object& dim, bool keepdim, bool is_mean) {
  std::vector<int64_t> dims = dims_arg(dim, x);
  if (!dim.is_none() && dims.empty()) {  // dim=() reduces over everything, as PyTorch
    for (int64_t d = 0; d < x.ndim(); ++d) dims.push_back(d);
  }
  return is_mean ? mean(x, dims, keepdim) : sum(x, dims, keepdim);
}

// An in-place op computes its value out of place, then writes it back: refused, as in PyTorch,
// when the value's dtype cannot be cast to the tensor's (int_t += 0.5 would silently truncate).
template <class F>
Tensor inplace(const char* op, const Tensor& self, F make_value, bool is_copy = false) {
  Tensor v;
  {
    NoGradGuard ng;
    v = make_value();
  }
  if (!is_copy && !can_cast(v.dtype(), self.dtype()))
    throw RuntimeError(std::string(op) + ": result type " + dtype_name(v.dtype()) +
                       " can't be cast to the desired output type " + dtype_name(self.dtype()));
  py::gil_scoped_release release;
  assign_(self, v);
  return self;
}

}  // namespace

PYBIND11_MODULE(_core, m) {
  m.doc() = "dagrad core: graph, parallel scheduler, autodiff and kernels (C++17)";

  // See Note [No thread waits for a dagrad lock holding the GIL].
  LockWaitHooks hooks;
  hooks.before_wait = []() -> void* { return PyGILState_Check() ? PyEval_SaveThread() : nullptr; };
  hooks.after_wait = [](void* state) {
    if (state) PyEval_RestoreThread(static_cast<PyThreadState*>(state));
  };
  set_lock_wait_hooks(hooks);

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const dagrad::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const dagrad::IndexError& e) {
      PyErr_SetString(PyExc_IndexError, e.what());
    } catch (const dagrad::MemoryError& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    }
  });

  py::enum_<DType>(m, "dtype")
      .value("float32", DType::Float32)
      .value("float64", DType::Float64)
      .value("int64", DType::Int64)
      .value("bool", DType::Bool)
      .def_property_readonly("itemsize", [](DType d) { return itemsize(d); })
      .def_property_readonly("is_floating_point", [](DType d) { return is_floating(d); });

  // No per-object __dict__: tensors are not tracked by Python's cyclic GC, which matters when a
  // loop creates millions of them. State lives on the node (see _is_param).
  py::class_<Tensor>(m, "Tensor")
      .def_property_readonly("shape", [](const Tensor& t) { return py::tuple(py::cast(t.shape())); })
      .def_property_readonly("ndim", &Tensor::ndim)
      .def_property_readonly("dtype", &Tensor::dtype)
      .def("dim", &Tensor::ndim)
      .def("numel", &Tensor::numel)
      .def_property("requires_grad", &Tensor::requires_grad,
                    [](const Tensor& t, bool v) { set_requires_grad(t, v); })
      .def("requires_grad_", [](const Tensor& t, bool v) { set_requires_grad(t, v); return t; },
           py::arg("requires_grad") = true)
      .def_property(
          "grad", [](const Tensor& t) -> py::object {
            NodePtr g = get_grad(t);
            if (!g) return py::none();
            return py::cast(Tensor(std::move(g)));
          },
          [](const Tensor& t, const py::object& g) {
            if (!g.is_none() && !py::isinstance<Tensor>(g))
              throw TypeError("Tensor.grad: assigned grad must be a Tensor or None, not " + dagrad_py::type_name(g));
            set_grad(t, g.is_none() ? Tensor() : g.cast<Tensor>());
          })
      .def_property_readonly("is_leaf", [](const Tensor& t) { return t->is_leaf(); })
      .def_property_readonly("_op", [](const Tensor& t) { return std::string(op_name(t->op)); })
      .def_property_readonly("_id", [](const Tensor& t) { return t->id; })
      .def_property_readonly("_realized", [](const Tensor& t) { return t->realized(); })
      .def_property_readonly("_graph_freed", [](const Tensor& t) { return t->graph_freed; })
      .def_property("_is_param", [](const Tensor& t) { return t->is_param; },
                    [](const Tensor& t, bool v) { t->is_param = v; })
      .def("numpy", &to_numpy)
      .def("item", [](const Tensor& t) -> py::object {
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
      .def_property("data", &detach, [](const Tensor& t, const Tensor& v) {
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
      .def("__pow__", [](const Tensor& a, py::object p) {
        if (std::optional<Scalar> s = as_scalar(p)) return pow(a, *s);
        throw TypeError("pow: the exponent must be a Python number, got " +
                        std::string(py::str(py::type::of(p).attr("__name__"))));
      })
      .def("__rpow__", [](const Tensor& a, py::object base) {
        if (!(py::isinstance<py::int_>(base) || py::isinstance<py::float_>(base)))
          throw TypeError("pow: unsupported base type");
        double b = base.cast<double>();
        if (!(b > 0.0)) throw ValueError("pow: a tensor exponent needs a positive base, got " +
                                         std::to_string(b));
        Tensor x = is_floating(a.dtype()) ? a : cast(a, DType::Float32);
        Tensor r = exp(mul(x, scalar(std::log(b), x.dtype())));
        // 1 ** x is 1 even for x = nan or inf (C's pow, PyTorch); exp(x * 0) would be nan there,
        // and x * 0 is nonzero (nan) exactly there.
        if (b != 1.0) return r;
        Tensor zero = scalar(0.0, x.dtype());
        return where(ne(mul(x, zero), zero), scalar(1.0, x.dtype()), r);
      })
      .def("__iadd__", [](const Tensor& a, py::object b) {
        Tensor o = operand(b, a);
        return inplace("__iadd__", a, [&] { return add(a, o); });
      })
      .def("__isub__", [](const Tensor& a, py::object b) {
        Tensor o = operand(b, a);
        return inplace("__isub__", a, [&] { return sub(a, o); });
      })
      .def("__imul__", [](const Tensor& a, py::object b) {
        Tensor o = operand(b, a);
        return inplace("__imul__", a, [&] { return mul(a, o); });
      })
      .def("__itruediv__", [](const Tensor& a, py::object b) {
        Tensor o = operand(b, a);
        return inplace("__itruediv__", a, [&] { return div(a, o); });
      })
      .def("add_", [](const Tensor& a, py::object b, Scalar alpha) {
        Tensor o = operand(b, a);
        return inplace("add_", a, [&] { return alpha.to_double() == 1.0 ? add(a, o) : add(a, mul(o, scalar(alpha, result_type(o.dtype(), alpha.kind())))); });
      }, py::arg("other"), py::kw_only(), py::arg("alpha") = 1.0)
      .def("sub_", [](const Tensor& a, py::object b, Scalar alpha) {
        Tensor o = operand(b, a);
        return inplace("sub_", a, [&] { return alpha.to_double() == 1.0 ? sub(a, o) : sub(a, mul(o, scalar(alpha, result_type(o.dtype(), alpha.kind())))); });
      }, py::arg("other"), py::kw_only(), py::arg("alpha") = 1.0)
      .def("mul_", [](const Tensor& a, py::object b) {
        Tensor o = operand(b, a);
        return inplace("mul_", a, [&] { return mul(a, o); });
      })
      .def("div_", [](const Tensor& a, py::object b) {
        Tensor o = operand(b, a);
        return inplace("div_", a, [&] { return div(a, o); });
      })
      .def("zero_", [](const Tensor& a) { return inplace("zero_", a, [&] { return scalar(0.0, a.dtype()); }); })
      .def("fill_", [](const Tensor& a, Scalar v) { return inplace("fill_", a, [&] { return scalar(v, a.dtype()); }); })
      .def("copy_", [](const Tensor& a, py::object src) {
        // A number is written as the tensor's dtype straight from its exact value (as fill_),
        // not through the float32 a weak scalar would become (1e-100 into bool is True).
        std::optional<Scalar> s = as_scalar(src);
        Tensor o = s ? scalar(*s, a.dtype()) : operand(src, a);
        return inplace("copy_", a, [&] { return o; }, /*is_copy=*/true);
      })
      // methods
      .def("sum", [](const Tensor& x, py::object dim, bool keepdim) { return reduce_all_dims(x, dim, keepdim, false); },
           py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def("mean", [](const Tensor& x, py::object dim, bool keepdim) { return reduce_all_dims(x, dim, keepdim, true); },
           py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def("reshape", [](const Tensor& x, py::args a) { return reshape(x, shape_args(a)); })
      .def("view", [](const Tensor& x, py::args a) { return reshape(x, shape_args(a)); })
      .def("expand", [](const Tensor& x, py::args a) { return expand(x, dagrad_py::shape_args(a, "size", -1)); })
      .def("permute", [](const Tensor& x, py::args a) {
        Shape dims = dagrad_py::shape_args(a, "dims", std::numeric_limits<int64_t>::min(), false);
        for (int64_t& d : dims) d = dagrad_py::dim_arg(d, x.ndim(), "dims");
        return permute(x, dims);
      })
      .def("transpose", [](const Tensor& x, int64_t d0, int64_t d1) {
        return transpose(x, dagrad_py::dim_arg(d0, x.ndim(), "dim0"), dagrad_py::dim_arg(d1, x.ndim(), "dim1"));
      }, py::arg("dim0"), py::arg("dim1"))
      .def_property_readonly("T", [](const Tensor& x) {
        std::vector<int64_t> perm(x.ndim());
        for (int64_t i = 0; i < x.ndim(); ++i) perm[i] = x.ndim() - 1 - i;
        return permute(x, perm);
      })
      .def("exp", [](const Tensor& x) { return dagrad::exp(x); })
      .def("log", [](const Tensor& x) { return dagrad::log(x); })
      .def("sqrt", [](const Tensor& x) { return dagrad::sqrt(x); })
      .def("tanh", [](const Tensor& x) { return dagrad::tanh(x); })
      .def("sigmoid", [](const Tensor& x) { return dagrad::sigmoid(x); })
      .def("relu", [](const Tensor& x) { return dagrad::relu(x); })
      .def("pow", [](const Tensor& x, Scalar p) { return dagrad::pow(x, p); })
      .def("matmul", [](const Tensor& a, py::object b) { return matmul(a, operand(b, a)); })
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
      .def("__abs__", [](const Tensor& a) { return dagrad::abs(a); })
      .def("eq", [](const Tensor& a, py::object b) { return eq(a, operand(b, a)); })
      .def("ne", [](const Tensor& a, py::object b) { return ne(a, operand(b, a)); })
      .def("lt", [](const Tensor& a, py::object b) { return lt(a, operand(b, a)); })
      .def("le", [](const Tensor& a, py::object b) { return le(a, operand(b, a)); })
      .def("gt", [](const Tensor& a, py::object b) { return gt(a, operand(b, a)); })
      .def("ge", [](const Tensor& a, py::object b) { return ge(a, operand(b, a)); })
      .def("maximum", [](const Tensor& a, py::object b) { return maximum(a, operand(b, a)); })
      .def("minimum", [](const Tensor& a, py::object b) { return minimum(a, operand(b, a)); })
      .def("clamp", [](const Tensor& x, std::optional<Scalar> lo, std::optional<Scalar> hi) { return clamp(x, lo, hi); },
           py::arg("min") = py::none(), py::arg("max") = py::none())
      .def("clip", [](const Tensor& x, std::optional<Scalar> lo, std::optional<Scalar> hi) { return clamp(x, lo, hi); },
           py::arg("min") = py::none(), py::arg("max") = py::none())
      .def("prod", [](const Tensor& x, py::object dim, bool keepdim) { return prod(x, dims_arg(dim, x), keepdim); },
           py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def("amax", [](const Tensor& x, py::object dim, bool keepdim) { return amax(x, dims_arg(dim, x), keepdim); },
           py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def("amin", [](const Tensor& x, py::object dim, bool keepdim) { return amin(x, dims_arg(dim, x), keepdim); },
           py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def("argmax", [](const Tensor& x, std::optional<int64_t> dim, bool keepdim) { return argmax(x, dim, keepdim); },
           py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def("argmin", [](const Tensor& x, std::optional<int64_t> dim, bool keepdim) { return argmin(x, dim, keepdim); },
           py::arg("dim") = py::none(), py::arg("keepdim") = false)
      .def("logsumexp", [](const Tensor& x, py::object dim, bool keepdim) { return logsumexp(x, dims_arg(dim, x), keepdim); },
           py::arg("dim"), py::arg("keepdim") = false)
      .def("softmax", [](const Tensor& x, int64_t dim) { return softmax(x, dim); }, py::arg("dim"))
      .def("log_softmax", [](const Tensor& x, int64_t dim) { return log_softmax(x, dim); }, py::arg("dim"))
      .def("squeeze", [](const Tensor& x, std::optional<int64_t> dim) { return squeeze(x, dim); }, py::arg("dim") = py::none())
      .def("unsqueeze", [](const Tensor& x, int64_t dim) { return unsqueeze(x, dim); }, py::arg("dim"))
      .def("flatten", [](const Tensor& x, int64_t s, int64_t e) {
        return flatten(x, dagrad_py::dim_arg(s, x.ndim(), "start_dim"), dagrad_py::dim_arg(e, x.ndim(), "end_dim"));
      },
           py::arg("start_dim") = 0, py::arg("end_dim") = -1)
      .def("broadcast_to", [](const Tensor& x, py::args s) { return expand(x, dagrad_py::shape_args(s, "size", -1)); })
      .def("gather", [](const Tensor& x, int64_t dim, const Tensor& idx) { return gather(x, dim, idx); },
           py::arg("dim"), py::arg("index"));

  // creation
  m.def("_from_numpy", &from_numpy, py::arg("array"), py::arg("dtype"), py::arg("requires_grad") = false);
  m.def("full", [](const Shape& shape, Scalar v, DType dt, bool rg) { return full(shape, v, dt, rg); },
        py::arg("shape"), py::arg("fill_value"), py::arg("dtype"), py::arg("requires_grad") = false);

  // ops
  m.def("add", [](const Tensor& a, py::object b) { return add(a, operand(b, a)); });
  m.def("sub", [](const Tensor& a, py::object b) { return sub(a, operand(b, a)); });
  m.def("mul", [](const Tensor& a, py::object b) { return mul(a, operand(b, a)); });
  m.def("div", [](const Tensor& a, py::object b) { return div(a, operand(b, a)); });
  m.def("neg", [](const Tensor& a) { return neg(a); });
  m.def("pow", [](const Tensor& a, Scalar p) { return dagrad::pow(a, p); });
  m.def("exp", [](const Tensor& a) { return dagrad::exp(a); });
  m.def("log", [](const Tensor& a) { return dagrad::log(a); });
  m.def("sqrt", [](const Tensor& a) { return dagrad::sqrt(a); });
  m.def("tanh", [](const Tensor& a) { return dagrad::tanh(a); });
  m.def("sigmoid", [](const Tensor& a) { return dagrad::sigmoid(a); });
  m.def("relu", [](const Tensor& a) { return dagrad::relu(a); });
  m.def("matmul", [](const Tensor& a, const Tensor& b) { return matmul(a, b); });
  m.def("matmul_t", &matmul_t);
  m.def("sum", [](const Tensor& x, py::object dim, bool keepdim) { return reduce_all_dims(x, dim, keepdim, false); },
        py::arg("input"), py::arg("dim") = py::none(), py::arg("keepdim") = false);
  m.def("mean", [](const Tensor& x, py::object dim, bool keepdim) { return reduce_all_dims(x, dim, keepdim, true); },
        py::arg("input"), py::arg("dim") = py::none(), py::arg("keepdim") = false);
  m.def("reshape", [](const Tensor& x, const Shape& s) { return reshape(x, s); });
  m.def("permute", [](const Tensor& x, const std::vector<int64_t>& p) { return permute(x, p); });
  m.def("transpose", &transpose);
  m.def("expand", [](const Tensor& x, const Shape& s) { return expand(x, s); });
  m.def("cast", &cast);
  for (const char* name : {"abs", "sign", "sin", "cos", "log1p", "expm1", "erf", "square", "rsqrt", "silu"}) {
    std::string n(name);
    Tensor (*f)(const Tensor&) = nullptr;
    if (n == "abs") f = &dagrad::abs;
    if (n == "sign") f = &dagrad::sign;
    if (n == "sin") f = &dagrad::sin;
    if (n == "cos") f = &dagrad::cos;
    if (n == "log1p") f = &dagrad::log1p;
    if (n == "expm1") f = &dagrad::expm1;
    if (n == "erf") f = &dagrad::erf;
    if (n == "square") f = &dagrad::square;
    if (n == "rsqrt") f = &dagrad::rsqrt;
    if (n == "silu") f = &dagrad::silu;
    m.def(name, f);
  }
  m.def("where", [](const Tensor& c, const Tensor& a, const Tensor& b) { return where(c, a, b); });
  m.def("maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); });
  m.def("minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); });
  m.def("max_dim", [](const Tensor& x, int64_t dim, bool keepdim) { return max_dim(x, dim, keepdim); });
  m.def("min_dim", [](const Tensor& x, int64_t dim, bool keepdim) { return min_dim(x, dim, keepdim); });
  m.def("var", [](const Tensor& x, py::object dim, double correction, bool keepdim) {
    return var(x, dims_arg(dim, x), correction, keepdim);
  });
  m.def("std", [](const Tensor& x, py::object dim, double correction, bool keepdim) {
    return stddev(x, dims_arg(dim, x), correction, keepdim);
  });
  m.def("strided_slice", &strided_slice);
  m.def("index", [](const Tensor& x, const std::vector<Tensor>& idx, int64_t first_dim) { return index(x, idx, first_dim); });
  m.def("scatter_add", [](const Tensor& src, int64_t dim, const Tensor& idx, const Shape& shape) {
    return scatter_add(src, dim, idx, shape);
  });
  m.def("cat", [](const std::vector<Tensor>& xs, int64_t dim) { return cat(xs, dim); });
  m.def("stack", [](const std::vector<Tensor>& xs, int64_t dim) { return stack(xs, dim); });
  m.def("split", [](const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) { return split(x, sizes, dim); });
  m.def("chunk", [](const Tensor& x, int64_t chunks, int64_t dim) { return chunk(x, chunks, dim); });
  m.def("pad", [](const Tensor& x, const std::vector<int64_t>& p, Scalar value) { return pad(x, p, value); });
  m.def("_scalar_like", [](py::object v, const Tensor& like) { return operand(v, like); });
  m.def("leaky_relu", &leaky_relu);
  m.def("hardtanh", &hardtanh);
  m.def("elu", &elu);
  m.def("gelu", &gelu);
  m.def("softplus", &softplus);
  m.def("softmax", &softmax);
  m.def("log_softmax", &log_softmax);
  m.def("logsumexp", [](const Tensor& x, py::object dim, bool keepdim) { return logsumexp(x, dims_arg(dim, x), keepdim); });
  auto opt = [](const std::optional<Tensor>& t) { return t ? *t : Tensor(); };
  m.def("linear", [opt](const Tensor& x, const Tensor& w, const std::optional<Tensor>& b) { return linear(x, w, opt(b)); },
        py::arg("input"), py::arg("weight"), py::arg("bias") = py::none());
  m.def("unfold", &unfold);
  m.def("fold", &fold);
  m.def("conv2d", [opt](const Tensor& x, const Tensor& w, const std::optional<Tensor>& b, const std::vector<int64_t>& s,
                        const std::vector<int64_t>& p, const std::vector<int64_t>& d, int64_t g) {
    return conv2d(x, w, opt(b), s, p, d, g);
  });
  m.def("conv1d", [opt](const Tensor& x, const Tensor& w, const std::optional<Tensor>& b, int64_t s, int64_t p,
                        int64_t d, int64_t g) { return conv1d(x, w, opt(b), s, p, d, g); });
  m.def("max_pool2d", &max_pool2d);
  m.def("avg_pool2d", &avg_pool2d);
  m.def("embedding", &embedding);
  m.def("layer_norm", [opt](const Tensor& x, const Shape& ns, const std::optional<Tensor>& w,
                            const std::optional<Tensor>& b, double eps) { return layer_norm(x, ns, opt(w), opt(b), eps); });
  m.def("batch_norm_apply", [opt](const Tensor& x, const Tensor& mean, const Tensor& var, const std::optional<Tensor>& w,
                                  const std::optional<Tensor>& b, double eps) {
    return batch_norm_apply(x, mean, var, opt(w), opt(b), eps);
  });
  m.def("mse_loss", [](const Tensor& a, const Tensor& t, const std::string& r) { return mse_loss(a, t, reduction_from(r)); });
  m.def("l1_loss", [](const Tensor& a, const Tensor& t, const std::string& r) { return l1_loss(a, t, reduction_from(r)); });
  m.def("smooth_l1_loss", [](const Tensor& a, const Tensor& t, const std::string& r, double beta) {
    return smooth_l1_loss(a, t, reduction_from(r), beta);
  });
  m.def("nll_loss", [opt](const Tensor& x, const Tensor& t, const std::optional<Tensor>& w, const std::string& r,
                          int64_t ignore) { return nll_loss(x, t, opt(w), reduction_from(r), ignore); });
  m.def("cross_entropy", [opt](const Tensor& x, const Tensor& t, const std::optional<Tensor>& w, const std::string& r,
                               int64_t ignore, double ls) {
    return cross_entropy(x, t, opt(w), reduction_from(r), ignore, ls);
  });
  m.def("binary_cross_entropy", [opt](const Tensor& p, const Tensor& t, const std::optional<Tensor>& w,
                                      const std::string& r) { return binary_cross_entropy(p, t, opt(w), reduction_from(r)); });
  m.def("binary_cross_entropy_with_logits", [opt](const Tensor& x, const Tensor& t, const std::optional<Tensor>& w,
                                                  const std::string& r, const std::optional<Tensor>& pw) {
    return binary_cross_entropy_with_logits(x, t, opt(w), reduction_from(r), opt(pw));
  });
  m.def("sum_to", &sum_to);

  // running and differentiating
  m.def("realize", &realize_nogil);
  m.def("backward", [](const std::vector<Tensor>& roots, const std::vector<std::optional<Tensor>>& grads,
                       bool retain, bool create) {
    std::vector<Tensor> g;
    for (auto& x : grads) g.push_back(x ? *x : Tensor());
    py::gil_scoped_release release;
    backward(roots, g, retain, create);
  });
  m.def("grad", [](const std::vector<Tensor>& outs, const std::vector<Tensor>& ins,
                   const std::vector<std::optional<Tensor>>& gouts, bool retain, bool create,
                   bool allow_unused) {
    std::vector<Tensor> g;
    for (auto& x : gouts) g.push_back(x ? *x : Tensor());
    std::vector<Tensor> r;
    {
      py::gil_scoped_release release;
      r = grad(outs, ins, g, retain, create, allow_unused);
    }
    py::list out;
    for (auto& t : r) out.append(t.defined() ? py::cast(t) : py::none());
    return out;
  });
  m.def("is_grad_enabled", &GradMode::is_enabled);
  m.def("set_grad_enabled", &GradMode::set_enabled);
  m.def("set_num_threads", &set_num_threads);
  m.def("get_num_threads", &get_num_threads);
  m.def("max_threads", &max_threads);
  m.def("last_run_stats", [] {
    RunStats s = last_run_stats();
    py::dict d;
    d["nodes"] = s.nodes;
    d["threads_used"] = s.threads_used;
    d["parallel"] = s.parallel;
    d["fused"] = s.fused;
    return d;
  });
  m.def("_set_fusion_enabled", &set_fusion_enabled);
  m.def("_fusion_enabled", &fusion_enabled);

  // optimizers
  py::class_<OptimHyper, std::shared_ptr<OptimHyper>>(m, "OptimHyper")
      .def(py::init<>())
      .def_readwrite("lr", &OptimHyper::lr)
      .def_readwrite("momentum", &OptimHyper::momentum)
      .def_readwrite("dampening", &OptimHyper::dampening)
      .def_readwrite("weight_decay", &OptimHyper::weight_decay)
      .def_readwrite("beta1", &OptimHyper::beta1)
      .def_readwrite("beta2", &OptimHyper::beta2)
      .def_readwrite("eps", &OptimHyper::eps)
      .def_readwrite("alpha", &OptimHyper::alpha)
      .def_readwrite("lr_decay", &OptimHyper::lr_decay)
      .def_readwrite("nesterov", &OptimHyper::nesterov)
      .def_readwrite("amsgrad", &OptimHyper::amsgrad)
      .def_readwrite("centered", &OptimHyper::centered)
      .def_readwrite("maximize", &OptimHyper::maximize)
      .def_readwrite("decoupled", &OptimHyper::decoupled);
  py::enum_<OptimKind>(m, "OptimKind")
      .value("SGD", OptimKind::SGD)
      .value("Adam", OptimKind::Adam)
      .value("RMSprop", OptimKind::RMSprop)
      .value("Adagrad", OptimKind::Adagrad);
  m.def("optim_step", [](OptimKind kind, const Tensor& p, const Tensor& g, const std::vector<std::optional<Tensor>>& st,
                         const std::shared_ptr<OptimHyper>& h) {
    std::vector<Tensor> state;
    for (auto& t : st) state.push_back(t ? *t : Tensor());
    py::gil_scoped_release release;
    optim_step_now(kind, p, g, state, h);
  });

  // compile: tracing and replay
  py::class_<Program, std::shared_ptr<Program>>(m, "Program")
      .def(py::init<>())
      .def("preconditions_hold", &Program::preconditions_hold)
      .def("replay", [](Program& p) {
        py::gil_scoped_release release;
        p.replay();
      })
      .def_property_readonly("num_events", &Program::num_events)
      .def_property_readonly("num_nodes", &Program::num_nodes);
  // No lock is held across the traced function: Note [Tracing belongs to the tracing thread].
  m.def("_trace_begin", &trace::begin);
  m.def("_trace_end", &trace::end);
  m.def("is_tracing", &trace::active);
  m.def("_copy_into", [](const Tensor& dst, const Tensor& src) {
    py::gil_scoped_release release;
    copy_into(dst, src);
  });
  m.def("_clone_leaf", [](const Tensor& t) {
    py::gil_scoped_release release;
    return clone_leaf(t);
  });

  // profiler
  m.def("_profiler_set_enabled", &profiler::set_enabled);
  m.def("_profiler_take_events", [] {
    py::list out;
    for (const TraceEvent& e : profiler::take_events()) {
      py::dict d;
      d["node"] = e.node_id;
      d["op"] = op_name(e.op);
      d["thread"] = e.thread;
      d["start_ns"] = e.start_ns;
      d["end_ns"] = e.end_ns;
      out.append(d);
    }
    return out;
  });
  m.def("_config", [] {
    py::dict d;
#ifdef _OPENMP
    d["openmp"] = _OPENMP;
#else
    d["openmp"] = py::none();
#endif
    d["blas"] = kernels::gemm_backend();
    d["compiler"] = __VERSION__;
    d["omp_max_threads"] = omp_get_max_threads();
    return d;
  });

  // Every public binding above names itself and its argument in errors: Note [Argument errors].
  dagrad_py::install_arg_errors(m, m.attr("Tensor"));
  // Last, over the definitions above: Note [Fast calls].
  dagrad_py::install_fast_calls(m, m.attr("Tensor"));
}
