// The binding table: every op's Python surface, one row each (Note [The binding table]).
// Arguments are converted and checked here so that errors name the public call
// (Note [Argument errors]); everything else is the core's.
#include <pybind11/stl.h>

#include <limits>
#include <optional>

#include "arg_errors.h"
#include "dagrad/ops.h"
#include "fast_calls.h"  // the fast rows' entry points (fast_row)
#include "op_table.h"

namespace py = pybind11;
using namespace dagrad;

namespace dagrad_py {

namespace {

std::vector<int64_t> dims_of(const py::object& dim, const Tensor& x) { return dims_arg(dim, x.ndim()); }

// reshape(2, 3), reshape((2, 3)) and reshape([2, 3]) all mean the same; -1 is inferred.
Shape shape_of(const py::args& args, const char* arg = "shape") { return shape_args(args, arg, -1); }

Tensor reduce_all_dims(const Tensor& x, const py::object& dim, bool keepdim, bool is_mean) {
  std::vector<int64_t> dims = dims_of(dim, x);
  if (!dim.is_none() && dims.empty()) {  // dim=() reduces over everything, as PyTorch
    for (int64_t d = 0; d < x.ndim(); ++d) dims.push_back(d);
  }
  return is_mean ? mean(x, dims, keepdim) : sum(x, dims, keepdim);
}

Tensor opt(const std::optional<Tensor>& t) { return t ? *t : Tensor(); }

// Binary ops take a number or an array beside the tensor (PyTorch's weak scalars).
template <Tensor (*F)(const Tensor&, const Tensor&)>
Tensor with_operand(const Tensor& a, const py::object& b) {
  return F(a, operand(b, a));
}

}  // namespace

void init_ops(OpTable& t) {
  const auto dim_none = py::arg("dim") = py::none();
  const auto keepdim = py::arg("keepdim") = false;

  // ---- elementwise ---------------------------------------------------------------------------
  // The dagrad.add family is wrapped in Python (a number may come first); the operators are
  // Tensor's number slots (Note [Fast calls]).
  t.internal("add", &with_operand<&add>);
  t.internal("sub", &with_operand<&sub>);
  t.internal("mul", &with_operand<&mul>);
  t.internal("div", &with_operand<&div>);
  t.unary<&dagrad::neg>("neg", kFunction | kFast);
  t.unary<&dagrad::exp>("exp", kBoth | kFast);
  t.unary<&dagrad::log>("log", kBoth | kFast);
  t.unary<&dagrad::sqrt>("sqrt", kBoth | kFast);
  t.unary<&dagrad::tanh>("tanh", kBoth | kFast);
  t.unary<&dagrad::sigmoid>("sigmoid", kBoth | kFast);
  t.unary<&dagrad::relu>("relu", kBoth | kFast);
  t.unary<&dagrad::abs>("abs", kBoth | kFast);
  t.unary<&dagrad::sign>("sign", kBoth);
  t.unary<&dagrad::sin>("sin", kBoth);
  t.unary<&dagrad::cos>("cos", kBoth);
  t.unary<&dagrad::log1p>("log1p", kBoth);
  t.unary<&dagrad::expm1>("expm1", kBoth);
  t.unary<&dagrad::erf>("erf", kBoth);
  t.unary<&dagrad::square>("square", kBoth);
  t.unary<&dagrad::rsqrt>("rsqrt", kBoth);
  t.internal("silu", &silu);
  t.internal("pow", [](const Tensor& a, Scalar p) { return dagrad::pow(a, p); });
  t.def("pow", kMethod, [](const Tensor& x, Scalar p) { return dagrad::pow(x, p); });
  t.internal("cast", &cast);
  t.internal("_scalar_like", [](py::object v, const Tensor& like) { return operand(v, like); });

  // ---- selection and comparison ----------------------------------------------------------------
  t.internal("where", [](const Tensor& c, const Tensor& a, const Tensor& b) { return where(c, a, b); });
  t.internal("maximum", [](const Tensor& a, const Tensor& b) { return maximum(a, b); });
  t.internal("minimum", [](const Tensor& a, const Tensor& b) { return minimum(a, b); });
  t.def("maximum", kMethod, &with_operand<&maximum>);
  t.def("minimum", kMethod, &with_operand<&minimum>);
  t.def("eq", kMethod, &with_operand<&eq>);
  t.def("ne", kMethod, &with_operand<&ne>);
  t.def("lt", kMethod, &with_operand<&lt>);
  t.def("le", kMethod, &with_operand<&le>);
  t.def("gt", kMethod, &with_operand<&gt>);
  t.def("ge", kMethod, &with_operand<&ge>);
  const auto clamp_fn = [](const Tensor& x, std::optional<Scalar> lo, std::optional<Scalar> hi) {
    return clamp(x, lo, hi);
  };
  t.def("clamp", kBoth, clamp_fn, py::arg("min") = py::none(), py::arg("max") = py::none());
  t.def("clip", kBoth, clamp_fn, py::arg("min") = py::none(), py::arg("max") = py::none());

  // ---- linear algebra --------------------------------------------------------------------------
  t.internal("matmul", [](const Tensor& a, const Tensor& b) { return matmul(a, b); });
  t.def("matmul", kMethod, &with_operand<&matmul>);
  t.internal("matmul_t", &matmul_t);

  // ---- reductions ------------------------------------------------------------------------------
  t.internal(
      "sum", [](const Tensor& x, py::object dim, bool kd) { return reduce_all_dims(x, dim, kd, false); },
      py::arg("input"), dim_none, keepdim);
  t.internal(
      "mean", [](const Tensor& x, py::object dim, bool kd) { return reduce_all_dims(x, dim, kd, true); },
      py::arg("input"), dim_none, keepdim);
  t.def(
      "sum", kMethod, [](const Tensor& x, py::object dim, bool kd) { return reduce_all_dims(x, dim, kd, false); },
      dim_none, keepdim);
  t.def(
      "mean", kMethod, [](const Tensor& x, py::object dim, bool kd) { return reduce_all_dims(x, dim, kd, true); },
      dim_none, keepdim);
  t.def(
      "prod", kBoth, [](const Tensor& x, py::object dim, bool kd) { return prod(x, dims_of(dim, x), kd); }, dim_none,
      keepdim);
  t.def(
      "amax", kBoth, [](const Tensor& x, py::object dim, bool kd) { return amax(x, dims_of(dim, x), kd); }, dim_none,
      keepdim);
  t.def(
      "amin", kBoth, [](const Tensor& x, py::object dim, bool kd) { return amin(x, dims_of(dim, x), kd); }, dim_none,
      keepdim);
  t.def(
      "argmax", kBoth, [](const Tensor& x, std::optional<int64_t> dim, bool kd) { return argmax(x, dim, kd); },
      dim_none, keepdim);
  t.def(
      "argmin", kBoth, [](const Tensor& x, std::optional<int64_t> dim, bool kd) { return argmin(x, dim, kd); },
      dim_none, keepdim);
  t.internal("max_dim", [](const Tensor& x, int64_t dim, bool kd) { return max_dim(x, dim, kd); });
  t.internal("min_dim", [](const Tensor& x, int64_t dim, bool kd) { return min_dim(x, dim, kd); });
  t.internal("var", [](const Tensor& x, py::object dim, double correction, bool kd) {
    return var(x, dims_of(dim, x), correction, kd);
  });
  t.internal("std", [](const Tensor& x, py::object dim, double correction, bool kd) {
    return stddev(x, dims_of(dim, x), correction, kd);
  });
  t.def(
      "logsumexp", kBoth, [](const Tensor& x, py::object dim, bool kd) { return logsumexp(x, dims_of(dim, x), kd); },
      py::arg("dim"), keepdim);
  t.internal("softmax", &softmax);
  t.internal("log_softmax", &log_softmax);
  t.def("softmax", kMethod, [](const Tensor& x, int64_t dim) { return softmax(x, dim); }, py::arg("dim"));
  t.def("log_softmax", kMethod, [](const Tensor& x, int64_t dim) { return log_softmax(x, dim); }, py::arg("dim"));

  // ---- movement --------------------------------------------------------------------------------
  t.internal("reshape", [](const Tensor& x, const Shape& s) { return reshape(x, s); });
  t.def("reshape", kMethod, [](const Tensor& x, py::args a) { return reshape(x, shape_of(a)); });
  t.def("view", kMethod, [](const Tensor& x, py::args a) { return reshape(x, shape_of(a)); });
  t.internal("expand", [](const Tensor& x, const Shape& s) { return expand(x, s); });
  t.def("expand", kMethod, [](const Tensor& x, py::args a) { return expand(x, shape_of(a, "size")); });
  t.def("broadcast_to", kMethod, [](const Tensor& x, py::args s) { return expand(x, shape_of(s, "size")); });
  t.internal("permute", [](const Tensor& x, const std::vector<int64_t>& p) { return permute(x, p); });
  t.def("permute", kMethod, [](const Tensor& x, py::args a) {
    Shape dims = shape_args(a, "dims", std::numeric_limits<int64_t>::min(), false);
    for (int64_t& d : dims) d = dim_arg(d, x.ndim(), "dims");
    return permute(x, dims);
  });
  t.internal("transpose", &transpose);
  t.def(
      "transpose", kMethod,
      [](const Tensor& x, int64_t d0, int64_t d1) {
        return transpose(x, dim_arg(d0, x.ndim(), "dim0"), dim_arg(d1, x.ndim(), "dim1"));
      },
      py::arg("dim0"), py::arg("dim1"));
  t.def("squeeze", kBoth, [](const Tensor& x, std::optional<int64_t> dim) { return squeeze(x, dim); }, dim_none);
  t.def("unsqueeze", kBoth, [](const Tensor& x, int64_t dim) { return unsqueeze(x, dim); }, py::arg("dim"));
  t.def(
      "flatten", kBoth,
      [](const Tensor& x, int64_t s, int64_t e) {
        return flatten(x, dim_arg(s, x.ndim(), "start_dim"), dim_arg(e, x.ndim(), "end_dim"));
      },
      py::arg("start_dim") = 0, py::arg("end_dim") = -1);
  t.internal("pad", [](const Tensor& x, const std::vector<int64_t>& p, Scalar value) { return pad(x, p, value); });

  // ---- indexing --------------------------------------------------------------------------------
  t.def(
      "gather", kMethod, [](const Tensor& x, int64_t dim, const Tensor& idx) { return gather(x, dim, idx); },
      py::arg("dim"), py::arg("index"));
  t.internal("strided_slice", &strided_slice);
  t.internal("index", [](const Tensor& x, const std::vector<Tensor>& idx, int64_t first_dim) {
    return index(x, idx, first_dim);
  });
  t.internal("scatter_add", [](const Tensor& src, int64_t dim, const Tensor& idx, const Shape& shape) {
    return scatter_add(src, dim, idx, shape);
  });
  t.internal("cat", [](const std::vector<Tensor>& xs, int64_t dim) { return cat(xs, dim); });
  t.internal("stack", [](const std::vector<Tensor>& xs, int64_t dim) { return stack(xs, dim); });
  t.internal("split",
             [](const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) { return split(x, sizes, dim); });
  t.internal("chunk", [](const Tensor& x, int64_t chunks, int64_t dim) { return chunk(x, chunks, dim); });
  t.internal("sum_to", &sum_to);

  // ---- neural-network functions (dagrad.nn.functional wraps them) ------------------------------
  t.internal("leaky_relu", &leaky_relu);
  t.internal("hardtanh", &hardtanh);
  t.internal("elu", &elu);
  t.internal("gelu", &gelu);
  t.internal("softplus", &softplus);
  t.internal(
      "linear", [](const Tensor& x, const Tensor& w, const std::optional<Tensor>& b) { return linear(x, w, opt(b)); },
      py::arg("input"), py::arg("weight"), py::arg("bias") = py::none());
  t.internal("unfold", &unfold);
  t.internal("fold", &fold);
  t.internal("conv2d", [](const Tensor& x, const Tensor& w, const std::optional<Tensor>& b,
                          const std::vector<int64_t>& s, const std::vector<int64_t>& p, const std::vector<int64_t>& d,
                          int64_t g) { return conv2d(x, w, opt(b), s, p, d, g); });
  t.internal("conv1d", [](const Tensor& x, const Tensor& w, const std::optional<Tensor>& b, int64_t s, int64_t p,
                          int64_t d, int64_t g) { return conv1d(x, w, opt(b), s, p, d, g); });
  t.internal("max_pool2d", &max_pool2d);
  t.internal("avg_pool2d", &avg_pool2d);
  t.internal("embedding", &embedding);
  t.internal("rnn_cell", &rnn_cell);
  t.internal("lstm_cell", &lstm_cell);
  t.internal("gru_cell", [](const Tensor& gi, const Tensor& h, const Tensor& w, const std::optional<Tensor>& b,
                            int64_t gi_row) { return gru_cell(gi, h, w, opt(b), gi_row); });
  t.internal("layer_norm",
             [](const Tensor& x, const Shape& ns, const std::optional<Tensor>& w, const std::optional<Tensor>& b,
                double eps) { return layer_norm(x, ns, opt(w), opt(b), eps); });
  t.internal("batch_norm_apply", [](const Tensor& x, const Tensor& mean, const Tensor& var,
                                    const std::optional<Tensor>& w, const std::optional<Tensor>& b,
                                    double eps) { return batch_norm_apply(x, mean, var, opt(w), opt(b), eps); });

  // ---- losses ----------------------------------------------------------------------------------
  t.internal("mse_loss",
             [](const Tensor& a, const Tensor& y, const std::string& r) { return mse_loss(a, y, reduction_from(r)); });
  t.internal("l1_loss",
             [](const Tensor& a, const Tensor& y, const std::string& r) { return l1_loss(a, y, reduction_from(r)); });
  t.internal("smooth_l1_loss", [](const Tensor& a, const Tensor& y, const std::string& r, double beta) {
    return smooth_l1_loss(a, y, reduction_from(r), beta);
  });
  t.internal("nll_loss", [](const Tensor& x, const Tensor& y, const std::optional<Tensor>& w, const std::string& r,
                            int64_t ignore) { return nll_loss(x, y, opt(w), reduction_from(r), ignore); });
  t.internal("cross_entropy",
             [](const Tensor& x, const Tensor& y, const std::optional<Tensor>& w, const std::string& r, int64_t ignore,
                double ls) { return cross_entropy(x, y, opt(w), reduction_from(r), ignore, ls); });
  t.internal("binary_cross_entropy",
             [](const Tensor& p, const Tensor& y, const std::optional<Tensor>& w, const std::string& r) {
               return binary_cross_entropy(p, y, opt(w), reduction_from(r));
             });
  t.internal("binary_cross_entropy_with_logits", [](const Tensor& x, const Tensor& y, const std::optional<Tensor>& w,
                                                    const std::string& r, const std::optional<Tensor>& pw) {
    return binary_cross_entropy_with_logits(x, y, opt(w), reduction_from(r), opt(pw));
  });
}

}  // namespace dagrad_py
