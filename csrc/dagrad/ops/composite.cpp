// Composite ops: built only from primitives, so their gradients (of any order) follow from the
// primitives' backward rules. Where a composition decides the gradient at a kink, or keeps a
// branch finite so that a zero gradient times an infinite local derivative cannot make NaN, a
// NOTE says so.
#include <cmath>
#include <limits>

#include "dagrad/ops.h"

namespace dagrad {

namespace {
Tensor c(const Tensor& like, double v) { return scalar(v, like.dtype()); }
Tensor as_float(const Tensor& x) { return is_floating(x.dtype()) ? x : cast(x, DType::Float32); }
std::vector<int64_t> all_dims(const Tensor& x) {
  std::vector<int64_t> d(x.ndim());
  for (int64_t i = 0; i < x.ndim(); ++i) d[i] = i;
  return d;
}
// Drops the reduced dims of a keepdim result.
Tensor drop_dims(const Tensor& r, const Tensor& x, std::vector<int64_t> dims) {
  if (dims.empty()) dims = all_dims(x);
  Shape s;
  for (int64_t d = 0; d < x.ndim(); ++d) {
    bool reduced = false;
    for (int64_t k : dims) reduced = reduced || wrap_dim(k, x.ndim(), "reduce") == d;
    if (!reduced) s.push_back(x.shape()[d]);
  }
  return reshape(r, s);
}
}  // namespace

// ---- elementwise ----------------------------------------------------------------------------
// As PyTorch, the square of a bool tensor is int64 (x ** 2), not bool (x * x, a logical and).
Tensor square(const Tensor& x) {
  Tensor v = x.dtype() == DType::Bool ? cast(x, DType::Int64) : x;
  return mul(v, v);
}
// 1 / sqrt(x), not x ** -0.5: rsqrt(-0.0) is -inf, as in PyTorch.
Tensor rsqrt(const Tensor& x) {
  Tensor s = sqrt(x);
  return div(c(s, 1.0), s);
}

// NOTE: at x = 0 the gradient is negative_slope (x > 0 is false), as in PyTorch.
Tensor leaky_relu(const Tensor& x, double slope) {
  Tensor v = as_float(x);
  return where(gt(v, c(v, 0.0)), v, mul(v, c(v, slope)));
}

// NOTE: the gradient is 0 at both kinks (x == min_val, x == max_val), as PyTorch's hardtanh and
// relu6; NaN fails both comparisons and passes through.
Tensor hardtanh(const Tensor& x, double min_val, double max_val) {
  if (min_val > max_val)
    throw ValueError("hardtanh: min_val " + std::to_string(min_val) + " cannot be greater than max_val " +
                     std::to_string(max_val));
  Tensor v = as_float(x);
  Tensor lo = c(v, min_val), hi = c(v, max_val);
  return where(le(v, lo), lo, where(ge(v, hi), hi, v));
}

// NOTE: the negative branch sees where(x > 0, 0, x), so exp never overflows in the branch not
// taken; at x = 0 the gradient is alpha (the negative branch), as in PyTorch.
Tensor elu(const Tensor& x, double alpha) {
  Tensor v = as_float(x);
  Tensor pos = gt(v, c(v, 0.0));
  Tensor neg_part = where(pos, c(v, 0.0), v);
  return where(pos, v, mul(expm1(neg_part), c(v, alpha)));
}

Tensor gelu(const Tensor& x, bool tanh_approximation) {
  Tensor v = as_float(x);
  Tensor half_x = mul(v, c(v, 0.5));
  if (!tanh_approximation) return mul(half_x, add(c(v, 1.0), erf(mul(v, c(v, M_SQRT1_2)))));
  Tensor inner = mul(add(v, mul(mul(mul(v, v), v), c(v, 0.044715))), c(v, std::sqrt(2.0 / M_PI)));
  return mul(half_x, add(c(v, 1.0), tanh(inner)));
}

// NOTE: above the threshold softplus is x; the other branch sees a clamped argument, so exp
// never overflows there and its zero gradient stays zero.
Tensor softplus(const Tensor& x, double beta, double threshold) {
  Tensor v = as_float(x);
  Tensor bx = mul(v, c(v, beta));
  Tensor linear_region = gt(bx, c(v, threshold));
  Tensor safe = where(linear_region, c(v, 0.0), bx);
  return where(linear_region, v, div(log1p(exp(safe)), c(v, beta)));
}

Tensor silu(const Tensor& x) {
  Tensor v = as_float(x);
  return mul(v, sigmoid(v));
}

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

// ---- shapes ------------------------------------------------------------------------------------
Tensor squeeze(const Tensor& x, std::optional<int64_t> dim) {
  Shape s;
  if (dim) {
    if (x.ndim() == 0) {
      wrap_dim_or_scalar(*dim, 0, "squeeze");
      return x;
    }
    const int64_t d = wrap_dim(*dim, x.ndim(), "squeeze");
    for (int64_t i = 0; i < x.ndim(); ++i)
      if (i != d || x.shape()[i] != 1) s.push_back(x.shape()[i]);
  } else {
    for (int64_t v : x.shape())
      if (v != 1) s.push_back(v);
  }
  return reshape(x, s);
}
Tensor unsqueeze(const Tensor& x, int64_t dim) {
  const int64_t d = wrap_dim(dim, x.ndim() + 1, "unsqueeze");
  Shape s = x.shape();
  s.insert(s.begin() + d, 1);
  return reshape(x, s);
}
Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.ndim() == 0) {
    wrap_dim_or_scalar(start_dim, 0, "flatten");
    wrap_dim_or_scalar(end_dim, 0, "flatten");
    return reshape(x, {1});
  }
  const int64_t s = wrap_dim(start_dim, x.ndim(), "flatten"), e = wrap_dim(end_dim, x.ndim(), "flatten");
  if (s > e) throw ValueError("flatten: start_dim cannot come after end_dim");
  Shape out(x.shape().begin(), x.shape().begin() + s);
  int64_t n = 1;
  for (int64_t i = s; i <= e; ++i) n *= x.shape()[i];
  out.push_back(n);
  out.insert(out.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, out);
}
Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.empty()) throw ValueError("stack: expected a non-empty list of tensors");
  const int64_t d = wrap_dim(dim, xs[0].ndim() + 1, "stack");
  std::vector<Tensor> us;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (xs[i].shape() != xs[0].shape())
      throw ShapeError("stack: expects each tensor to be equal size, but got " + shape_str(xs[0].shape()) +
                       " at entry 0 and " + shape_str(xs[i].shape()) + " at entry " + std::to_string(i));
    us.push_back(unsqueeze(xs[i], d));
  }
  return cat(us, d);
}
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  const int64_t d = wrap_dim(dim, x.ndim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) throw ValueError("split: split sizes must be non-negative");
    total += s;
  }
  if (total != x.shape()[d])
    throw ValueError("split: split sizes " + shape_str(sizes) + " must sum to the size " +
                     std::to_string(x.shape()[d]) + " of dimension " + std::to_string(d) + " of " +
                     shape_str(x.shape()));
  std::vector<Tensor> out;
  int64_t at = 0;
  for (int64_t s : sizes) {
    out.push_back(slice(x, d, at, at + s, 1));
    at += s;
  }
  return out;
}
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  if (chunks <= 0) throw ValueError("chunk: chunks must be positive, got " + std::to_string(chunks));
  const int64_t d = wrap_dim(dim, x.ndim(), "chunk");
  const int64_t n = x.shape()[d], size = std::max<int64_t>(1, (n + chunks - 1) / chunks);
  std::vector<int64_t> sizes;
  for (int64_t at = 0; at < n; at += size) sizes.push_back(std::min(size, n - at));
  if (sizes.empty()) sizes.push_back(0);
  return split(x, sizes, d);
}
Tensor pad(const Tensor& x, const std::vector<int64_t>& p, Scalar value) {
  if (p.size() % 2 != 0 || static_cast<int64_t>(p.size() / 2) > x.ndim())
    throw ValueError("pad: padding length " + std::to_string(p.size()) +
                     " must be even and at most twice the number of dims of " + shape_str(x.shape()));
  Tensor v = x;
  const int64_t nd = x.ndim();
  std::vector<int64_t> starts(nd, 0), steps(nd, 1);
  Shape out = x.shape();
  bool grow = false;
  for (size_t k = 0; k < p.size() / 2; ++k) {
    const int64_t d = nd - 1 - static_cast<int64_t>(k);
    const int64_t before = p[2 * k], after = p[2 * k + 1];
    const int64_t size = v.shape()[d];
    if (before == std::numeric_limits<int64_t>::min() || after == std::numeric_limits<int64_t>::min())
      throw ValueError("pad: padding " + std::to_string(std::min(before, after)) + " is out of range");
    if (before < 0 || after < 0) {  // negative padding crops
      const int64_t b = std::max<int64_t>(0, -before), e = size - std::max<int64_t>(0, -after);
      if (e < b) throw ValueError("pad: cropping more than the size of dimension " + std::to_string(d));
      v = slice(v, d, b, e, 1);
    }
    out[d] = checked_add(checked_add(v.shape()[d], std::max<int64_t>(0, before), "pad"),
                         std::max<int64_t>(0, after), "pad");
    starts[d] = std::max<int64_t>(0, before);
    grow = grow || before > 0 || after > 0;
  }
  for (int64_t d = 0; d < nd - static_cast<int64_t>(p.size() / 2); ++d) out[d] = v.shape()[d];
  return grow ? embed(v, out, starts, steps, value) : v;
}

// ---- convolution and pooling (unfold + matmul, unfold + reduction) ---------------------------------
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const std::vector<int64_t>& stride,
              const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, int64_t groups) {
  if (x.ndim() == 3) return squeeze(conv2d(unsqueeze(x, 0), w, b, stride, padding, dilation, groups), 0);
  if (x.ndim() != 4)
    throw ShapeError("conv2d: expected a 3-d (C, H, W) or 4-d (N, C, H, W) input, got shape " + shape_str(x.shape()));
  if (w.ndim() != 4)
    throw ShapeError("conv2d: expected a 4-d weight (out_channels, in_channels/groups, kH, kW), got shape " +
                     shape_str(w.shape()));
  if (groups <= 0) throw ValueError("conv2d: groups must be positive");
  const int64_t N = x.shape()[0], C = x.shape()[1], O = w.shape()[0], kh = w.shape()[2], kw = w.shape()[3];
  if (C != w.shape()[1] * groups || O % groups != 0)
    throw ShapeError("conv2d: input of shape " + shape_str(x.shape()) + " has " + std::to_string(C) +
                     " channels but weight of shape " + shape_str(w.shape()) + " with groups=" +
                     std::to_string(groups) + " expects " + std::to_string(w.shape()[1] * groups) +
                     " (and out_channels divisible by groups)");
  if (x.dtype() != w.dtype() || (b.defined() && b.dtype() != x.dtype()))
    throw TypeError(std::string("conv2d: input, weight and bias must have one dtype, got ") +
                    dtype_name(x.dtype()) + " and " + dtype_name(w.dtype()));
  if (b.defined() && (b.ndim() != 1 || b.shape()[0] != O))
    throw ShapeError("conv2d: bias of shape " + shape_str(b.shape()) + " does not fit " + std::to_string(O) +
                     " output channels");
  const auto [oh, ow] = window_output_size("conv2d", x.shape(), {kh, kw}, stride, padding, dilation);
  Tensor cols = unfold(x, {kh, kw}, stride, padding, dilation);  // (N, C*kh*kw, L)
  const int64_t L = cols.shape()[2], ckk = cols.shape()[1];
  Tensor y;
  if (groups == 1) {
    y = matmul(reshape(w, {O, ckk}), cols);  // (N, O, L)
  } else {
    Tensor cg = reshape(cols, {N, groups, ckk / groups, L});
    Tensor wg = reshape(w, {groups, O / groups, ckk / groups});
    y = matmul(wg, cg);  // (N, groups, O/groups, L)
  }
  y = reshape(y, {N, O, oh, ow});
  if (b.defined()) y = add(y, reshape(b, {1, O, 1, 1}));
  return y;
}
Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t padding,
              int64_t dilation, int64_t groups) {
  if (x.ndim() == 2) return squeeze(conv1d(unsqueeze(x, 0), w, b, stride, padding, dilation, groups), 0);
  if (x.ndim() != 3)
    throw ShapeError("conv1d: expected a 2-d (C, L) or 3-d (N, C, L) input, got shape " + shape_str(x.shape()));
  if (w.ndim() != 3)
    throw ShapeError("conv1d: expected a 3-d weight (out_channels, in_channels/groups, k), got shape " +
                     shape_str(w.shape()));
  if (groups <= 0) throw ValueError("conv1d: groups must be positive");
  if (x.shape()[1] != w.shape()[1] * groups || w.shape()[0] % groups != 0)
    throw ShapeError("conv1d: input of shape " + shape_str(x.shape()) + " has " + std::to_string(x.shape()[1]) +
                     " channels but weight of shape " + shape_str(w.shape()) + " with groups=" +
                     std::to_string(groups) + " expects " + std::to_string(w.shape()[1] * groups) +
                     " (and out_channels divisible by groups)");
  Tensor y = conv2d(unsqueeze(x, 2), unsqueeze(w, 2), b, {1, stride}, {0, padding}, {1, dilation}, groups);
  return squeeze(y, 2);
}

namespace {
Tensor pool_input(const Tensor& x, const char* op) {
  if (x.ndim() != 3 && x.ndim() != 4)
    throw ShapeError(std::string(op) + ": expected a 3-d (C, H, W) or 4-d (N, C, H, W) input, got shape " +
                     shape_str(x.shape()));
  return x.ndim() == 3 ? unsqueeze(x, 0) : x;
}
void check_pool_padding(const char* op, const std::vector<int64_t>& k, const std::vector<int64_t>& p) {
  if (k.size() != 2 || p.size() != 2) throw ValueError(std::string(op) + ": kernel_size and padding need 2 values");
  for (int i = 0; i < 2; ++i)
    if (p[i] > k[i] / 2)
      throw ValueError(std::string(op) + ": padding " + shape_str(p) +
                       " should be at most half of the kernel size " + shape_str(k));
}
}  // namespace

// The gradient goes to the first maximum of each window (argmax + gather); padding is -inf.
Tensor max_pool2d(const Tensor& x, const std::vector<int64_t>& k, const std::vector<int64_t>& s,
                  const std::vector<int64_t>& p, const std::vector<int64_t>& d) {
  check_pool_padding("max_pool2d", k, p);
  Tensor v = pool_input(x, "max_pool2d");
  const int64_t N = v.shape()[0], C = v.shape()[1];
  const auto [oh, ow] = window_output_size("max_pool2d", x.shape(), k, s, p, d);
  Tensor cols = unfold(v, k, s, p, d, -std::numeric_limits<double>::infinity());
  Tensor y = max_dim(reshape(cols, {N, C, k[0] * k[1], oh * ow}), 2).first;
  y = reshape(y, {N, C, oh, ow});
  return x.ndim() == 3 ? squeeze(y, 0) : y;
}
Tensor avg_pool2d(const Tensor& x, const std::vector<int64_t>& k, const std::vector<int64_t>& s,
                  const std::vector<int64_t>& p, bool count_include_pad) {
  check_pool_padding("avg_pool2d", k, p);
  Tensor v = pool_input(x, "avg_pool2d");
  const int64_t N = v.shape()[0], C = v.shape()[1], H = v.shape()[2], W = v.shape()[3];
  const auto [oh, ow] = window_output_size("avg_pool2d", x.shape(), k, s, p, {1, 1});
  Tensor cols = unfold(v, k, s, p, {1, 1});
  const int64_t L = oh * ow;
  Tensor windows = reshape(cols, {N, C, k[0] * k[1], L});
  Tensor y;
  if (count_include_pad || (p[0] == 0 && p[1] == 0)) {
    y = mean(windows, {2});
  } else {
    Tensor ones = full({1, 1, H, W}, 1.0, v.dtype());
    Tensor count = sum(reshape(unfold(ones, k, s, p, {1, 1}), {1, 1, k[0] * k[1], L}), {2});
    y = div(sum(windows, {2}), count);
  }
  y = reshape(y, {N, C, oh, ow});
  return x.ndim() == 3 ? squeeze(y, 0) : y;
}

// ---- embedding and normalisation -------------------------------------------------------------
Tensor embedding(const Tensor& indices, const Tensor& weight) {
  if (weight.ndim() != 2)
    throw ShapeError("embedding: weight must be 2-d (num_embeddings, embedding_dim), got shape " +
                     shape_str(weight.shape()));
  return index(weight, {indices}, 0, /*allow_negative=*/false);
}
Tensor layer_norm(const Tensor& x, const Shape& ns, const Tensor& weight, const Tensor& bias, double eps) {
  const int64_t k = static_cast<int64_t>(ns.size());
  bool ok = k <= x.ndim() && k > 0;
  for (int64_t i = 0; ok && i < k; ++i) ok = x.shape()[x.ndim() - k + i] == ns[i];
  if (!ok)
    throw ShapeError("layer_norm: normalized_shape " + shape_str(ns) + " does not match the last dims of input " +
                     shape_str(x.shape()));
  if (!is_floating(x.dtype())) throw TypeError("layer_norm: input must be floating point");
  std::vector<int64_t> dims;
  for (int64_t i = x.ndim() - k; i < x.ndim(); ++i) dims.push_back(i);
  Tensor m = mean(x, dims, true);
  Tensor d = sub(x, m);
  Tensor v = mean(mul(d, d), dims, true);
  Tensor y = mul(d, rsqrt(add(v, c(v, eps))));
  if (weight.defined()) y = mul(y, weight);
  if (bias.defined()) y = add(y, bias);
  return y;
}
Tensor batch_norm_apply(const Tensor& x, const Tensor& m, const Tensor& v, const Tensor& weight,
                        const Tensor& bias, double eps) {
  if (x.ndim() < 2) throw ShapeError("batch_norm: expected at least 2-d input (N, C, ...), got shape " + shape_str(x.shape()));
  Shape bs(x.ndim(), 1);
  bs[1] = x.shape()[1];
  auto per_channel = [&](const Tensor& t, const char* what) {
    if (t.numel() != x.shape()[1])
      throw ShapeError(std::string("batch_norm: ") + what + " of shape " + shape_str(t.shape()) +
                       " does not match " + std::to_string(x.shape()[1]) + " channels of input " +
                       shape_str(x.shape()));
    return reshape(t, bs);
  };
  Tensor y = mul(sub(x, per_channel(m, "mean")), rsqrt(add(per_channel(v, "var"), c(x, eps))));
  if (weight.defined()) y = mul(y, per_channel(weight, "weight"));
  if (bias.defined()) y = add(y, per_channel(bias, "bias"));
  return y;
}

// ---- losses ----------------------------------------------------------------------------------------
Reduction reduction_from(const std::string& name) {
  if (name == "mean") return Reduction::Mean;
  if (name == "sum") return Reduction::Sum;
  if (name == "none") return Reduction::None;
  throw ValueError("reduction must be 'mean', 'sum' or 'none', got '" + name + "'");
}
namespace {
Tensor reduce_loss(const Tensor& l, Reduction r) {
  switch (r) {
    case Reduction::None: return l;
    case Reduction::Sum: return sum(l);
    case Reduction::Mean: return mean(l);
  }
  return l;
}
void check_pair(const char* op, const Tensor& a, const Tensor& t) {
  broadcast_shapes(a.shape(), t.shape(), op);
}
}  // namespace

Tensor mse_loss(const Tensor& a, const Tensor& t, Reduction r) {
  check_pair("mse_loss", a, t);
  Tensor d = sub(a, t);
  return reduce_loss(mul(d, d), r);
}
Tensor l1_loss(const Tensor& a, const Tensor& t, Reduction r) {
  check_pair("l1_loss", a, t);
  return reduce_loss(abs(sub(a, t)), r);
}
Tensor smooth_l1_loss(const Tensor& a, const Tensor& t, Reduction r, double beta) {
  check_pair("smooth_l1_loss", a, t);
  if (beta < 0) throw ValueError("smooth_l1_loss: beta must be non-negative");
  Tensor d = abs(sub(a, t));
  if (beta == 0.0) return reduce_loss(d, r);
  Tensor quad = div(mul(mul(d, d), c(d, 0.5)), c(d, beta));
  return reduce_loss(where(lt(d, c(d, beta)), quad, sub(d, c(d, 0.5 * beta))), r);
}

namespace {
// Class scores moved to (M, C) and targets to (M,), for inputs (N, C, d1, ...) or (C,).
struct Flat {
  Tensor scores, target;
  Shape target_shape;
};
Flat flatten_classes(const char* op, const Tensor& scores, const Tensor& target) {
  if (scores.ndim() == 0) throw ShapeError(std::string(op) + ": input must have at least 1 dimension");
  if (target.dtype() != DType::Int64)
    throw TypeError(std::string(op) + ": class targets must be int64, got " + dtype_name(target.dtype()));
  Shape expect;
  if (scores.ndim() >= 2) {
    expect.push_back(scores.shape()[0]);
    expect.insert(expect.end(), scores.shape().begin() + 2, scores.shape().end());
  }
  if (target.shape() != expect)
    throw ShapeError(std::string(op) + ": expected target of shape " + shape_str(expect) + " for input of shape " +
                     shape_str(scores.shape()) + ", got " + shape_str(target.shape()) +
                     (scores.ndim() >= 2 && (target.ndim() == 0 || target.shape()[0] != scores.shape()[0])
                          ? " (batch size mismatch)" : ""));
  const int64_t C = scores.ndim() == 1 ? scores.shape()[0] : scores.shape()[1];
  Tensor s = scores;
  if (s.ndim() == 1) s = unsqueeze(s, 0);
  if (s.ndim() > 2) {
    std::vector<int64_t> perm = {0};
    for (int64_t i = 2; i < s.ndim(); ++i) perm.push_back(i);
    perm.push_back(1);
    s = permute(s, perm);
  }
  return {reshape(s, {-1, C}), reshape(target, {-1}), target.shape()};
}

// Targets are checked before any kernel reads memory with them: the IndexError names the
// bad target and the number of classes.
void check_targets(const char* op, const Tensor& target, int64_t classes, int64_t ignore_index) {
  if (!target->realized()) realize_now({target});  // Note [Values while recording]
  const int64_t* p = target->data<int64_t>();
  for (int64_t i = 0; i < target.numel(); ++i)
    if (p[i] != ignore_index && (p[i] < 0 || p[i] >= classes))
      throw IndexError(std::string(op) + ": target " + std::to_string(p[i]) + " is out of bounds for " +
                       std::to_string(classes) + " classes (at position " + std::to_string(i) + ")");
}

// Per-element losses -w[t_i] * logp[i, t_i] and their weights (0 where ignored).
std::pair<Tensor, Tensor> picked_nll(const Flat& f, const Tensor& weight, int64_t ignore_index) {
  const Tensor& t = f.target;
  Tensor valid = ne(t, full({}, ignore_index, DType::Int64));
  Tensor safe = where(valid, t, full({}, 0.0, DType::Int64));
  Tensor picked = squeeze(gather(f.scores, 1, unsqueeze(safe, 1)), 1);
  Tensor w = cast(valid, f.scores.dtype());
  if (weight.defined()) w = mul(w, index(weight, {safe}, 0));
  return {neg(mul(picked, w)), w};
}

Tensor finish(const Tensor& per_elem, const Tensor& w, Reduction r, const Shape& shape) {
  switch (r) {
    case Reduction::None: return reshape(per_elem, shape);
    case Reduction::Sum: return sum(per_elem);
    case Reduction::Mean: return div(sum(per_elem), sum(w));
  }
  return per_elem;
}
void check_weight(const char* op, const Tensor& weight, int64_t C) {
  if (weight.defined() && (weight.ndim() != 1 || weight.shape()[0] != C))
    throw ShapeError(std::string(op) + ": weight of shape " + shape_str(weight.shape()) + " does not match " +
                     std::to_string(C) + " classes");
}
}  // namespace

Tensor nll_loss(const Tensor& logp, const Tensor& target, const Tensor& weight, Reduction r, int64_t ignore_index) {
  Flat f = flatten_classes("nll_loss", logp, target);
  check_weight("nll_loss", weight, f.scores.shape()[1]);
  check_targets("nll_loss", target, f.scores.shape()[1], ignore_index);
  auto [l, w] = picked_nll(f, weight, ignore_index);
  return finish(l, w, r, f.target_shape);
}

Tensor cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight, Reduction r,
                     int64_t ignore_index, double ls) {
  if (ls < 0.0 || ls > 1.0) throw ValueError("cross_entropy: label_smoothing must be in [0, 1]");
  if (logits.ndim() == 0) throw ShapeError("cross_entropy: input must have at least 1 dimension");
  // Checked here, so that an int input is reported under cross_entropy, not its fused row op.
  if (!is_floating(logits.dtype()))
    throw TypeError(std::string("cross_entropy: input must be floating point, got ") + dtype_name(logits.dtype()));
  const int64_t cdim = logits.ndim() == 1 ? 0 : 1;
  const int64_t C = logits.shape()[cdim];
  check_weight("cross_entropy", weight, C);
  // The common case, (N, C) logits against N class indices, is one fused node each way.
  if (logits.ndim() == 2 && target.dtype() == DType::Int64 && target.ndim() == 1 &&
      target.shape()[0] == logits.shape()[0] && !weight.defined() && ls == 0.0 && r != Reduction::None) {
    check_targets("cross_entropy", target, C, ignore_index);
    return cross_entropy_rows(logits, target, ignore_index, r == Reduction::Sum);
  }
  Tensor logp = log_softmax(logits, cdim);
  if (is_floating(target.dtype())) {  // class probabilities
    if (target.shape() != logits.shape())
      throw ShapeError("cross_entropy: probability targets of shape " + shape_str(target.shape()) +
                       " must match the input of shape " + shape_str(logits.shape()));
    Tensor t = ls > 0 ? add(mul(target, c(target, 1.0 - ls)), c(target, ls / C)) : target;
    Tensor terms = mul(logp, t);
    if (weight.defined()) {
      Shape ws(logits.ndim(), 1);
      ws[cdim] = C;
      terms = mul(terms, reshape(weight, ws));
    }
    Tensor l = neg(sum(terms, {cdim}));
    if (r == Reduction::Mean) return div(sum(l), c(l, static_cast<double>(std::max<int64_t>(1, l.numel()))));
    return reduce_loss(l, r);
  }
  Flat f = flatten_classes("cross_entropy", logp, target);
  check_targets("cross_entropy", target, C, ignore_index);
  auto [l, w] = picked_nll(f, weight, ignore_index);
  if (ls > 0.0) {
    // (1 - ls) * nll + ls / C * sum_c(-w_c * logp_c), over the non-ignored elements.
    Tensor valid = cast(ne(f.target, full({}, ignore_index, DType::Int64)), logp.dtype());
    Tensor s = weight.defined() ? mul(f.scores, reshape(weight, {1, C})) : f.scores;
    Tensor smooth = mul(neg(sum(s, {1})), valid);
    l = add(mul(l, c(l, 1.0 - ls)), mul(smooth, c(l, ls / C)));
  }
  return finish(l, w, r, f.target_shape);
}

// NOTE: log(p) is clamped at -100 as in PyTorch. Its value comes from clamp(log(p), -100); its
// gradient from log(max(p, 1e-12)) (the straight-through form value + f - detach(f), with
// f - detach(f) exactly 0), so p = 0 or 1 gives finite gradients, never 0 * inf = NaN.
namespace {
Tensor clamped_log(const Tensor& p) {
  Tensor value = detach(clamp(log(p), -100.0, std::nullopt));
  Tensor f = log(clamp(p, 1e-12, std::nullopt));
  return add(value, sub(f, detach(f)));
}
// log(1 + exp(-x)) for any x, exact gradient -sigmoid(-x) everywhere (no kink at 0), finite
// at +-1000: each branch only sees arguments for which exp cannot overflow.
Tensor softplus_neg(const Tensor& x) {
  Tensor zero = c(x, 0.0);
  Tensor nonneg = ge(x, zero);
  Tensor xp = where(nonneg, x, zero), xn = where(nonneg, zero, x);
  Tensor pos = log1p(exp(neg(xp)));
  Tensor negb = sub(log1p(exp(xn)), xn);
  return where(nonneg, pos, negb);
}
}  // namespace

Tensor binary_cross_entropy(const Tensor& p, const Tensor& t, const Tensor& weight, Reduction r) {
  if (p.shape() != t.shape())
    throw ShapeError("binary_cross_entropy: target of shape " + shape_str(t.shape()) +
                     " must match the input of shape " + shape_str(p.shape()));
  Tensor one = c(p, 1.0);
  Tensor l = neg(add(mul(t, clamped_log(p)), mul(sub(one, t), clamped_log(sub(one, p)))));
  if (weight.defined()) l = mul(l, weight);
  return reduce_loss(l, r);
}

Tensor binary_cross_entropy_with_logits(const Tensor& x, const Tensor& t, const Tensor& weight, Reduction r,
                                        const Tensor& pos_weight) {
  if (x.shape() != t.shape())
    throw ShapeError("binary_cross_entropy_with_logits: target of shape " + shape_str(t.shape()) +
                     " must match the input of shape " + shape_str(x.shape()));
  Tensor one = c(x, 1.0);
  Tensor sp = softplus_neg(x);  // -log(sigmoid(x))
  Tensor lw = pos_weight.defined() ? add(one, mul(sub(pos_weight, one), t)) : one;
  Tensor l = add(mul(sub(one, t), x), mul(lw, sp));
  if (weight.defined()) l = mul(l, weight);
  return reduce_loss(l, r);
}

}  // namespace dagrad
