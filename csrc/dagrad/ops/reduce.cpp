// Reductions: sum and mean over all dims or a set of dims, with keepdim; and sum_to, the
// one place where broadcasting is undone for gradients.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "dagrad/kernels/dispatch.h"
#include "dagrad/kernels/elementwise_fns.h"
#include "dagrad/kernels/parallel.h"
#include "dagrad/kernels/strided.h"
#include "dagrad/ops.h"
#include "dagrad/ops/composite.h"

namespace dagrad {

namespace {

// attrs.ints: the reduced dims, sorted; attrs.keepdim; attrs.scalar: element count per output
// (mean only).
Tensor reduce(OpKind op, const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  const char* name = op_name(op);
  const int64_t nd = x.ndim();
  const bool all_dims = dims.empty();
  if (all_dims)
    for (int64_t d = 0; d < nd; ++d) dims.push_back(d);
  for (auto& d : dims) d = wrap_dim_or_scalar(d, nd, name);
  // As PyTorch: an empty reduction with no identity is a RuntimeError over every dim and an
  // IndexError over named dims, checked before repeated dims are.
  if (op == OpKind::Amax || op == OpKind::Amin) {
    for (int64_t d : dims) {
      if (nd == 0 || x.shape()[d] != 0) continue;
      const std::string msg = std::string(name) + ": cannot reduce over a dimension of size 0 of shape " +
                              shape_str(x.shape()) + " (the operation has no identity)";
      if (all_dims) throw RuntimeError(msg);
      throw IndexError(msg);
    }
  }
  std::sort(dims.begin(), dims.end());
  if (std::adjacent_find(dims.begin(), dims.end()) != dims.end())
    throw ValueError(std::string(name) + ": a dimension appears more than once in the list of dims");
  if (nd == 0) dims.clear();  // a 0-d tensor reduces to itself

  Shape out;
  int64_t count = 1;
  for (int64_t d = 0; d < nd; ++d) {
    bool r = std::binary_search(dims.begin(), dims.end(), d);
    if (r) count *= x.shape()[d];
    if (!r)
      out.push_back(x.shape()[d]);
    else if (keepdim)
      out.push_back(1);
  }
  Tensor v = x;
  if (op == OpKind::Mean && !is_floating(x.dtype()))
    throw TypeError(std::string("mean: input dtype must be floating point, got ") + dtype_name(x.dtype()));
  if (x.dtype() == DType::Bool && op != OpKind::Amax && op != OpKind::Amin) v = cast(x, DType::Int64);
  OpAttrs attrs;
  attrs.ints = std::move(dims);
  attrs.keepdim = keepdim;
  attrs.scalar = static_cast<double>(count);
  return make_op(op, {v}, std::move(out), v.dtype(), std::move(attrs));
}

// Accumulates in double (float inputs) or int64, serially in a fixed order: see
// Note [Thread budget] for why reductions are not split.
template <class T, class Acc>
void reduce_forward(Node& out, double scale) {
  alloc_output(out);
  const Node& x = in(out, 0);
  const T* px = x.data<T>();
  T* po = out.data<T>();
  const int64_t n_out = out.numel();
  std::vector<Acc> acc(static_cast<size_t>(n_out), Acc(0));
  const auto& dims = out.attrs.ints;
  if (static_cast<int64_t>(dims.size()) == x.ndim()) {
    Acc s = 0;
    const int64_t n = x.numel();
    for (int64_t i = 0; i < n; ++i) s = fn::add(s, static_cast<Acc>(px[i]));  // Note [Integer overflow wraps]
    if (n_out) acc[0] = s;
  } else {
    // Iterate over x; each element lands on the output element with the same kept indices.
    Shape keep_shape = x.shape;
    for (int64_t d : dims) keep_shape[d] = 1;
    Shape ost = contiguous_strides(keep_shape);
    for (int64_t d : dims) ost[d] = 0;
    StridedLoop<2> loop(x.shape, {contiguous_strides(x.shape), ost});
    loop.run_rows(0, loop.rows(), [&](int64_t n, const auto& off, const auto& st) {
      const T* xi = px + off[0];
      Acc* a = acc.data() + off[1];
      if (st[1] == 0) {
        Acc s = 0;
        for (int64_t i = 0; i < n; ++i) s = fn::add(s, static_cast<Acc>(xi[i * st[0]]));
        *a = fn::add(*a, s);
      } else {
        for (int64_t i = 0; i < n; ++i) a[i * st[1]] = fn::add(a[i * st[1]], static_cast<Acc>(xi[i * st[0]]));
      }
    });
  }
  for (int64_t i = 0; i < n_out; ++i) po[i] = static_cast<T>(acc[i] * static_cast<Acc>(scale));
}

// The gradient of a reduction, broadcast back over the reduced dims.
Tensor expand_back(const Tensor& out, const Tensor& g) {
  const Tensor x = input(out, 0);
  Tensor gk = g;
  if (!out->attrs.keepdim) {
    Shape keep = x.shape();
    for (int64_t d : out->attrs.ints) keep[d] = 1;
    gk = reshape(g, keep);
  }
  return expand(gk, x.shape());
}

}  // namespace

// ---- sum ------------------------------------------------------------------------------------
Tensor sum(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return reduce(OpKind::Sum, x, std::move(dims), keepdim);
}
void Sum_forward(Node& out) {
  switch (out.dtype) {
    case DType::Float32: reduce_forward<float, double>(out, 1.0); break;
    case DType::Float64: reduce_forward<double, double>(out, 1.0); break;
    case DType::Int64: reduce_forward<int64_t, int64_t>(out, 1.0); break;
    case DType::Bool: throw TypeError("sum: bool input must be cast first");
  }
}
std::vector<Tensor> Sum_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return {expand_back(out, g)};
}

// ---- mean -----------------------------------------------------------------------------------
Tensor mean(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return reduce(OpKind::Mean, x, std::move(dims), keepdim);
}
void Mean_forward(Node& out) {
  const double scale = 1.0 / out.attrs.scalar;  // 0/0 = nan for an empty mean, as numpy
  DAGRAD_DISPATCH_FLOAT(out.dtype, "mean", (reduce_forward<T, double>(out, scale)));
}
// Scale the small gradient before broadcasting it, not after.
std::vector<Tensor> Mean_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return {expand_back(out, mul(g, scalar_like(g, 1.0 / out->attrs.scalar)))};
}

// ---- sum_to ---------------------------------------------------------------------------------
Tensor sum_to(const Tensor& g, const Shape& shape) {
  if (g.shape() == shape) return g;
  const Shape& gs = g.shape();
  if (gs.size() < shape.size())
    throw ShapeError("sum_to: cannot sum a gradient of shape " + shape_str(gs) + " to shape " + shape_str(shape));
  const size_t lead = gs.size() - shape.size();
  std::vector<int64_t> dims;
  for (size_t i = 0; i < gs.size(); ++i) {
    if (i < lead) {
      dims.push_back(static_cast<int64_t>(i));
    } else if (shape[i - lead] == 1 && gs[i] != 1) {
      dims.push_back(static_cast<int64_t>(i));
    } else if (shape[i - lead] != gs[i]) {
      throw ShapeError("sum_to: cannot sum a gradient of shape " + shape_str(gs) + " to shape " + shape_str(shape));
    }
  }
  Tensor s = dims.empty() ? g : sum(g, dims, true);
  return s.shape() == shape ? s : reshape(s, shape);
}

// ---- prod -----------------------------------------------------------------------------------
Tensor prod(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return reduce(OpKind::Prod, x, std::move(dims), keepdim);
}
namespace {
template <class T, class Acc>
void prod_forward(Node& out) {
  alloc_output(out);
  const Node& x = in(out, 0);
  const T* px = x.data<T>();
  T* po = out.data<T>();
  std::vector<Acc> acc(static_cast<size_t>(out.numel()), Acc(1));
  Shape keep_shape = x.shape;
  for (int64_t d : out.attrs.ints) keep_shape[d] = 1;
  Shape ost = contiguous_strides(keep_shape);
  for (int64_t d : out.attrs.ints) ost[d] = 0;
  StridedLoop<2> loop(x.shape, {contiguous_strides(x.shape), ost});
  loop.run_rows(0, loop.rows(), [&](int64_t n, const auto& off, const auto& st) {
    for (int64_t i = 0; i < n; ++i) {
      Acc& a = acc[off[1] + i * st[1]];
      a = fn::mul(a, static_cast<Acc>(px[off[0] + i * st[0]]));
    }
  });
  for (int64_t i = 0; i < out.numel(); ++i) po[i] = static_cast<T>(acc[i]);
}
}  // namespace
void Prod_forward(Node& out) {
  switch (out.dtype) {
    case DType::Float32: prod_forward<float, double>(out); break;
    case DType::Float64: prod_forward<double, double>(out); break;
    case DType::Int64: prod_forward<int64_t, int64_t>(out); break;
    case DType::Bool: throw TypeError("prod: bool input must be cast first");
  }
}
// d prod / d x_i = product of the other elements of x_i's group, computed without dividing by
// zero: with no zero in the group it is prod / x_i; with exactly one zero only that element has
// a nonzero gradient (the product of the rest); with two or more every gradient is 0. Built
// from ordinary ops, so it can be differentiated again.
std::vector<Tensor> Prod_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  const Tensor x = input(out, 0);
  const auto& dims = out->attrs.ints;
  Tensor zero = scalar_like(x, 0.0), one = scalar_like(x, 1.0);
  Tensor is_zero = eq(x, zero);
  Tensor nzero = sum(cast(is_zero, x.dtype()), dims, true);
  Tensor x_safe = where(is_zero, one, x);
  Tensor p_safe = prod(x_safe, dims, true);
  Tensor none_zero = cast(eq(nzero, zero), x.dtype());
  Tensor one_zero = mul(cast(eq(nzero, one), x.dtype()), cast(is_zero, x.dtype()));
  Tensor local = add(mul(none_zero, div(p_safe, x_safe)), mul(one_zero, p_safe));
  return {mul(expand_back(out, g), local)};
}

// ---- amax, amin (gradient shared evenly among tied maxima, as PyTorch's amax) -------------------
Tensor amax(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return reduce(OpKind::Amax, x, std::move(dims), keepdim);
}
Tensor amin(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  return reduce(OpKind::Amin, x, std::move(dims), keepdim);
}
namespace {
template <class T>
void extreme_forward(Node& out, bool is_max) {
  alloc_output(out);
  const Node& x = in(out, 0);
  const T* px = x.data<T>();
  T* po = out.data<T>();
  std::vector<char> seen(static_cast<size_t>(out.numel()), 0);
  Shape keep_shape = x.shape;
  for (int64_t d : out.attrs.ints) keep_shape[d] = 1;
  Shape ost = contiguous_strides(keep_shape);
  for (int64_t d : out.attrs.ints) ost[d] = 0;
  StridedLoop<2> loop(x.shape, {contiguous_strides(x.shape), ost});
  loop.run_rows(0, loop.rows(), [&](int64_t n, const auto& off, const auto& st) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t o = off[1] + i * st[1];
      const T v = px[off[0] + i * st[0]];
      T& r = po[o];
      if (!seen[o]) {
        r = v;
        seen[o] = 1;
      } else if (r == r && (v != v || (is_max ? v > r : v < r))) {  // NaN wins, as PyTorch
        r = v;
      }
    }
  });
}
std::vector<Tensor> extreme_backward(const Tensor& out, const Tensor& g) {
  const Tensor x = input(out, 0);
  // The maximum's positions, NaN included: a NaN result came from the NaNs (as PyTorch).
  const Tensor o = expand_back(out, out);
  Tensor hit = cast(eq(x, o), g.dtype());
  if (is_floating(x.dtype())) hit = add(hit, mul(cast(ne(x, x), g.dtype()), cast(ne(o, o), g.dtype())));
  Tensor count = sum(hit, out->attrs.ints, true);
  Tensor share = div(hit, count);
  return {mul(expand_back(out, g), share)};
}
}  // namespace
void Amax_forward(Node& out) { DAGRAD_DISPATCH_ALL(out.dtype, extreme_forward<T>(out, true)); }
void Amin_forward(Node& out) { DAGRAD_DISPATCH_ALL(out.dtype, extreme_forward<T>(out, false)); }
std::vector<Tensor> Amax_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return extreme_backward(out, g);
}
std::vector<Tensor> Amin_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return extreme_backward(out, g);
}

// ---- argmax, argmin (attrs.ints = {dim}; the first extreme index; NaN counts as the max) -------
namespace {
Tensor arg_extreme(OpKind op, const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  const char* name = op_name(op);
  if (!dim) {
    if (x.numel() == 0)
      throw IndexError(std::string(name) + ": cannot reduce an empty tensor of shape " + shape_str(x.shape()));
    Tensor flat = reshape(x, {x.numel()});
    Tensor r = arg_extreme(op, flat, 0, false);
    if (keepdim) r = reshape(r, Shape(x.ndim(), 1));
    return r;
  }
  const int64_t d = wrap_dim_or_scalar(*dim, x.ndim(), name);
  if (x.ndim() > 0 && x.shape()[d] == 0)
    throw IndexError(std::string(name) + ": cannot reduce over dimension " + std::to_string(d) +
                     " of size 0 of shape " + shape_str(x.shape()));
  if (x.ndim() == 0) {
    return full({}, 0.0, DType::Int64);
  }
  Shape out;
  for (int64_t i = 0; i < x.ndim(); ++i) {
    if (i != d)
      out.push_back(x.shape()[i]);
    else if (keepdim)
      out.push_back(1);
  }
  OpAttrs attrs;
  attrs.ints = {d};
  attrs.keepdim = keepdim;
  Tensor t = make_op(op, {x}, std::move(out), DType::Int64, std::move(attrs));
  t->requires_grad = false;
  return t;
}
template <class T>
void arg_forward(Node& out, bool is_max) {
  alloc_output(out);
  const Node& x = in(out, 0);
  const int64_t d = out.attrs.ints[0];
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < d; ++i) outer *= x.shape[i];
  for (int64_t i = d + 1; i < x.ndim(); ++i) inner *= x.shape[i];
  const int64_t n = x.shape[d];
  const T* px = x.data<T>();
  int64_t* po = out.data<int64_t>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < inner; ++j) {
      const T* base = px + o * n * inner + j;
      int64_t best = 0;
      T bv = base[0];
      for (int64_t k = 1; k < n && bv == bv; ++k) {
        const T v = base[k * inner];
        if (v != v || (is_max ? v > bv : v < bv)) {
          bv = v;
          best = k;
        }
      }
      po[o * inner + j] = best;
    }
}
}  // namespace
Tensor argmax(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  return arg_extreme(OpKind::Argmax, x, dim, keepdim);
}
Tensor argmin(const Tensor& x, std::optional<int64_t> dim, bool keepdim) {
  return arg_extreme(OpKind::Argmin, x, dim, keepdim);
}
void Argmax_forward(Node& out) { DAGRAD_DISPATCH_ALL(in(out, 0).dtype, arg_forward<T>(out, true)); }
void Argmin_forward(Node& out) { DAGRAD_DISPATCH_ALL(in(out, 0).dtype, arg_forward<T>(out, false)); }
std::vector<Tensor> Argmax_backward(const Tensor&, const Tensor&, const std::vector<bool>&) { return {Tensor()}; }
std::vector<Tensor> Argmin_backward(const Tensor&, const Tensor&, const std::vector<bool>&) { return {Tensor()}; }

// ---- softmax, log_softmax along one dim (attrs.ints = {dim}) --------------------------------------
// One pass per row: subtract the row max (stable at +-1000), exponentiate, sum in double.
// A row holding NaN gives NaN, a row of -inf gives NaN, as in PyTorch. Rows are independent, so
// they split over the thread budget without changing a bit.
namespace {
Tensor softmax_like(OpKind op, const Tensor& x, int64_t dim) {
  Tensor v = is_floating(x.dtype()) ? x : cast(x, DType::Float32);
  const int64_t d = wrap_dim_or_scalar(dim, v.ndim(), op_name(op));
  OpAttrs a;
  a.ints = {d};
  return make_op(op, {v}, v.shape(), v.dtype(), std::move(a));
}
template <class T>
void softmax_forward(Node& out, bool log) {
  alloc_output(out);
  const Node& x = in(out, 0);
  const int64_t d = out.attrs.ints[0];
  int64_t outer = 1, n = 1, inner = 1;
  if (x.ndim() > 0) {
    for (int64_t i = 0; i < d; ++i) outer *= x.shape[i];
    n = x.shape[d];
    for (int64_t i = d + 1; i < x.ndim(); ++i) inner *= x.shape[i];
  }
  if (out.numel() == 0) return;  // no row has an element to read (a dim of size 0)
  const T* px = x.data<T>();
  T* po = out.data<T>();
  const int64_t rows = outer * inner;
  parallel_for(rows, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, n)), [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t base = (r / inner) * n * inner + r % inner;
      const T* row = px + base;
      T* orow = po + base;
      T m = row[0];
      for (int64_t k = 1; k < n; ++k) {
        const T v = row[k * inner];
        if (v > m) m = v;
      }
      double s = 0;
      for (int64_t k = 0; k < n; ++k) s += std::exp(static_cast<double>(row[k * inner] - m));
      if (log) {
        const T ls = static_cast<T>(std::log(s));
        for (int64_t k = 0; k < n; ++k) orow[k * inner] = row[k * inner] - m - ls;
      } else {
        const double inv = 1.0 / s;
        for (int64_t k = 0; k < n; ++k)
          orow[k * inner] = static_cast<T>(std::exp(static_cast<double>(row[k * inner] - m)) * inv);
      }
    }
  });
}
}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) { return softmax_like(OpKind::Softmax, x, dim); }
void Softmax_forward(Node& out) { DAGRAD_DISPATCH_FLOAT(out.dtype, "softmax", softmax_forward<T>(out, false)); }
// dx = y * (g - sum(g * y)).
std::vector<Tensor> Softmax_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  const int64_t d = out->attrs.ints[0];
  std::vector<int64_t> dims = out.ndim() ? std::vector<int64_t>{d} : std::vector<int64_t>{};
  return {mul(out, sub(g, sum(mul(g, out), dims, true)))};
}

Tensor log_softmax(const Tensor& x, int64_t dim) { return softmax_like(OpKind::LogSoftmax, x, dim); }
void LogSoftmax_forward(Node& out) { DAGRAD_DISPATCH_FLOAT(out.dtype, "log_softmax", softmax_forward<T>(out, true)); }
// dx = g - exp(y) * sum(g).
std::vector<Tensor> LogSoftmax_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  const int64_t d = out->attrs.ints[0];
  std::vector<int64_t> dims = out.ndim() ? std::vector<int64_t>{d} : std::vector<int64_t>{};
  return {sub(g, mul(exp(out), sum(g, dims, true)))};
}

}  // namespace dagrad

// =============================================================================================
// Composites: no backward of their own. Built only from the primitives above, so their
// gradients (of any order) follow from the primitives' backward rules. Where a composition
// decides the gradient at a kink, or keeps a branch finite so that a zero gradient times an
// infinite local derivative cannot make NaN, a NOTE says so.
// =============================================================================================

namespace dagrad {
using namespace composite;

// ---- statistics ------------------------------------------------------------------------------
Tensor var(const Tensor& x, std::vector<int64_t> dims, double correction, bool keepdim) {
  if (!is_floating(x.dtype()))
    throw TypeError(std::string("var: input dtype must be floating point, got ") + dtype_name(x.dtype()));
  Tensor m = mean(x, dims, true);
  Tensor d = sub(x, m);
  Tensor s = sum(mul(d, d), dims, keepdim);
  const double n = static_cast<double>(x.numel()) / static_cast<double>(std::max<int64_t>(1, m.numel()));
  // As PyTorch, the divisor is max(0, n - correction): no element, or one with the default
  // correction, gives 0 / 0 = nan (n - correction < 0 would give -0.0).
  return div(s, c(s, std::max(0.0, n - correction)));
}
Tensor stddev(const Tensor& x, std::vector<int64_t> dims, double correction, bool keepdim) {
  return sqrt(var(x, std::move(dims), correction, keepdim));
}

// The max is subtracted (and added back) without a gradient: any constant gives the same
// derivative, softmax(x). An infinite max is replaced by 0 so that inf - inf cannot appear.
namespace {
Tensor stable_shift(const Tensor& x, const std::vector<int64_t>& dims) {
  Tensor m = detach(amax(x, dims, true));
  return where(eq(abs(m), c(m, std::numeric_limits<double>::infinity())), c(m, 0.0), m);
}
}  // namespace
Tensor logsumexp(const Tensor& x, std::vector<int64_t> dims, bool keepdim) {
  Tensor v = as_float(x);
  if (v.numel() == 0) return log(sum(exp(v), dims, keepdim));
  Tensor m = stable_shift(v, dims);
  Tensor r = add(log(sum(exp(sub(v, m)), dims, true)), m);
  return keepdim ? r : drop_dims(r, v, dims);
}
namespace {
std::pair<Tensor, Tensor> extreme_dim(const Tensor& x, int64_t dim, bool keepdim, bool is_max) {
  const char* name = is_max ? "max" : "min";
  if (x.ndim() == 0) {
    wrap_dim_or_scalar(dim, 0, name);
    return {x, full({}, 0.0, DType::Int64)};
  }
  const int64_t d = wrap_dim(dim, x.ndim(), name);
  Tensor idx = is_max ? argmax(x, d, true) : argmin(x, d, true);
  Tensor vals = gather(x, d, idx);
  if (!keepdim) {
    vals = squeeze(vals, d);
    idx = squeeze(idx, d);
  }
  return {vals, idx};
}
}  // namespace
std::pair<Tensor, Tensor> max_dim(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme_dim(x, dim, keepdim, true);
}
std::pair<Tensor, Tensor> min_dim(const Tensor& x, int64_t dim, bool keepdim) {
  return extreme_dim(x, dim, keepdim, false);
}

}  // namespace dagrad
