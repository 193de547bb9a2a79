// Neural-network primitives: linear (x @ W^T + b in one node) and unfold / fold (im2col and
// its adjoint), from which conv1d, conv2d and the pools are composed (ops/composite.cpp).
#include <algorithm>
#include <limits>

#include "dagrad/kernels/dispatch.h"
#include "dagrad/kernels/gemm.h"
#include "dagrad/kernels/parallel.h"
#include "dagrad/ops.h"
#include "dagrad/ops/composite.h"

namespace dagrad {

// ---- linear -----------------------------------------------------------------------------------
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  if (w.ndim() != 2)
    throw ShapeError("linear: weight must be 2-d (out_features, in_features), got shape " + shape_str(w.shape()));
  if (x.ndim() == 0 || x.shape().back() != w.shape()[1])
    throw ShapeError("linear: input of shape " + shape_str(x.shape()) + " does not fit weight of shape " +
                     shape_str(w.shape()) + " (expected last dimension " + std::to_string(w.shape()[1]) + ")");
  if (b.defined() && (b.ndim() != 1 || b.shape()[0] != w.shape()[0]))
    throw ShapeError("linear: bias of shape " + shape_str(b.shape()) + " does not fit weight of shape " +
                     shape_str(w.shape()));
  if (!is_floating(x.dtype()) || x.dtype() != w.dtype() || (b.defined() && b.dtype() != x.dtype()))
    throw TypeError(std::string("linear: expected input, weight and bias of one floating dtype, got ") +
                    dtype_name(x.dtype()) + ", " + dtype_name(w.dtype()) +
                    (b.defined() ? std::string(", ") + dtype_name(b.dtype()) : std::string()));
  Shape out = x.shape();
  out.back() = w.shape()[0];
  std::vector<Tensor> ins = {x, w};
  if (b.defined()) ins.push_back(b);
  return make_op(OpKind::Linear, ins, std::move(out), x.dtype());
}
void Linear_forward(Node& out) {
  alloc_output(out);
  const Node& x = in(out, 0);
  const Node& w = in(out, 1);
  const int64_t n = w.shape[0], k = w.shape[1], m = k ? x.numel() / k : out.numel() / std::max<int64_t>(n, 1);
  DAGRAD_DISPATCH_FLOAT(out.dtype, "linear", {
    const T* px = x.data<T>();
    const T* pw = w.data<T>();
    T* po = out.data<T>();
    kernels::gemm(false, true, m, n, k, px, k, pw, k, po);
    if (out.inputs.size() > 2) {
      const T* pb = in(out, 2).data<T>();
      parallel_for(m, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, n)), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r)
          for (int64_t j = 0; j < n; ++j) po[r * n + j] += pb[j];
      });
    }
  });
}
// dx = g @ W, dW = g^T x over every leading dim, db = g summed over every leading dim.
std::vector<Tensor> Linear_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  Tensor x = input(out, 0), w = input(out, 1);
  const int64_t nout = w.shape()[0], nin = w.shape()[1];
  std::vector<Tensor> r(out->inputs.size());
  if (needs[0]) r[0] = matmul(g, w);
  Tensor g2 = reshape(g, {-1, nout});
  if (needs[1]) r[1] = matmul_t(g2, reshape(x, {-1, nin}), true, false);
  if (r.size() > 2 && needs[2]) r[2] = sum(g2, {0});
  return r;
}

// ---- unfold / fold (attrs.ints = {kh, kw, sh, sw, ph, pw, dh, dw[, H, W]}) ---------------------
namespace {
// The arithmetic of a window placement. The sizes were checked when the op was built
// (window_output_size), so the kernels compute them again without checks.
struct Window {
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  int64_t out_h(int64_t h) const { return (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1; }
  int64_t out_w(int64_t w) const { return (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1; }
};
Window window_of(const std::vector<int64_t>& a) { return {a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]}; }

Window check_window(const char* op, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                    const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation) {
  auto pair = [op](const std::vector<int64_t>& v, const char* what) {
    if (v.size() != 2) throw ValueError(std::string(op) + ": " + what + " must have 2 values");
    return v;
  };
  auto k = pair(kernel, "kernel_size"), s = pair(stride, "stride"), p = pair(padding, "padding"),
       d = pair(dilation, "dilation");
  for (int i = 0; i < 2; ++i) {
    if (k[i] <= 0 || s[i] <= 0 || d[i] <= 0 || p[i] < 0)
      throw ValueError(std::string(op) +
                       ": kernel_size, stride and dilation must be positive and padding "
                       "non-negative, got kernel_size " +
                       shape_str(k) + ", stride " + shape_str(s) + ", padding " + shape_str(p) + ", dilation " +
                       shape_str(d));
  }
  return {k[0], k[1], s[0], s[1], p[0], p[1], d[0], d[1]};
}

// (size + 2 * pad - dil * (k - 1) - 1) / stride + 1 with every step overflow-checked; 0 when the
// (dilated) kernel does not fit the padded size (C++ division would round a negative up to 0).
int64_t window_out(const char* op, int64_t size, int64_t k, int64_t stride, int64_t pad, int64_t dil) {
  const int64_t padded = checked_add(size, checked_mul(2, pad, op), op);
  const int64_t span = checked_add(checked_mul(dil, k - 1, op), 1, op);
  return padded < span ? 0 : (padded - span) / stride + 1;
}
}  // namespace

std::pair<int64_t, int64_t> window_output_size(const char* op, const Shape& input, const std::vector<int64_t>& kernel,
                                               const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                                               const std::vector<int64_t>& dilation) {
  const Window w = check_window(op, kernel, stride, padding, dilation);
  const int64_t H = input[input.size() - 2], W = input[input.size() - 1];
  const int64_t oh = window_out(op, H, w.kh, w.sh, w.ph, w.dh), ow = window_out(op, W, w.kw, w.sw, w.pw, w.dw);
  if (oh <= 0 || ow <= 0)
    throw ShapeError(std::string(op) + ": the kernel " + shape_str(kernel) + " (dilation " + shape_str(dilation) +
                     ", padding " + shape_str(padding) + ") does not fit the input of shape " + shape_str(input));
  checked_mul(oh, ow, op);
  return {oh, ow};
}

Tensor unfold(const Tensor& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
              const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, double pad_value) {
  if (x.ndim() != 4) throw ShapeError("unfold: expected a 4-d input (N, C, H, W), got shape " + shape_str(x.shape()));
  const auto [oh, ow] = window_output_size("unfold", x.shape(), kernel, stride, padding, dilation);
  const Window w = check_window("unfold", kernel, stride, padding, dilation);
  OpAttrs a;
  a.ints = {w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, w.dh, w.dw};
  a.scalar = pad_value;
  const int64_t rows = checked_mul(x.shape()[1], checked_mul(w.kh, w.kw, "unfold"), "unfold");
  return make_op(OpKind::Unfold, {x}, {x.shape()[0], rows, oh * ow}, x.dtype(), std::move(a));
}
void Unfold_forward(Node& out) {
  alloc_output(out);
  const Node& x = in(out, 0);
  const Window w = window_of(out.attrs.ints);
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t oh = w.out_h(H), ow = w.out_w(W), L = oh * ow;
  DAGRAD_DISPATCH_FLOAT(out.dtype, "unfold", {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const T pad = static_cast<T>(out.attrs.scalar);
    parallel_for(N * C, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const T* plane = px + p * H * W;
        for (int64_t ki = 0; ki < w.kh; ++ki)
          for (int64_t kj = 0; kj < w.kw; ++kj) {
            T* row = po + (p * w.kh * w.kw + ki * w.kw + kj) * L;
            for (int64_t oy = 0; oy < oh; ++oy) {
              const int64_t iy = oy * w.sh - w.ph + ki * w.dh;
              for (int64_t ox = 0; ox < ow; ++ox) {
                const int64_t ix = ox * w.sw - w.pw + kj * w.dw;
                row[oy * ow + ox] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? plane[iy * W + ix] : pad;
              }
            }
          }
      }
    });
  });
}
std::vector<Tensor> Unfold_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  const auto& a = out->attrs.ints;
  const Tensor x = input(out, 0);
  return {fold(g, {x.shape()[2], x.shape()[3]}, {a[0], a[1]}, {a[2], a[3]}, {a[4], a[5]}, {a[6], a[7]})};
}

Tensor fold(const Tensor& cols, const std::vector<int64_t>& output_size, const std::vector<int64_t>& kernel,
            const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
            const std::vector<int64_t>& dilation) {
  if (output_size.size() != 2) throw ValueError("fold: output_size must have 2 values");
  const int64_t H = output_size[0], W = output_size[1];
  if (H <= 0 || W <= 0) throw ValueError("fold: output_size must be positive, got " + shape_str(output_size));
  const auto [oh, ow] = window_output_size("fold", output_size, kernel, stride, padding, dilation);
  const Window w = check_window("fold", kernel, stride, padding, dilation);
  const int64_t kk = checked_mul(w.kh, w.kw, "fold");
  if (cols.ndim() != 3 || cols.shape()[1] % kk != 0 || cols.shape()[2] != oh * ow)
    throw ShapeError("fold: input of shape " + shape_str(cols.shape()) + " does not fit kernel " + shape_str(kernel) +
                     " and output size " + shape_str(output_size));
  OpAttrs a;
  a.ints = {w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, w.dh, w.dw, H, W};
  return make_op(OpKind::Fold, {cols}, {cols.shape()[0], cols.shape()[1] / kk, H, W}, cols.dtype(), std::move(a));
}
void Fold_forward(Node& out) {
  alloc_output(out);
  const Node& cols = in(out, 0);
  const Window w = window_of(out.attrs.ints);
  const int64_t N = out.shape[0], C = out.shape[1], H = out.shape[2], W = out.shape[3];
  const int64_t oh = w.out_h(H), ow = w.out_w(W), L = oh * ow;
  DAGRAD_DISPATCH_FLOAT(out.dtype, "fold", {
    const T* pc = cols.data<T>();
    T* po = out.data<T>();
    // Each (n, c) plane is written by one thread, in a fixed order: deterministic.
    parallel_for(N * C, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        T* plane = po + p * H * W;
        std::fill(plane, plane + H * W, T(0));
        for (int64_t ki = 0; ki < w.kh; ++ki)
          for (int64_t kj = 0; kj < w.kw; ++kj) {
            const T* row = pc + (p * w.kh * w.kw + ki * w.kw + kj) * L;
            for (int64_t oy = 0; oy < oh; ++oy) {
              const int64_t iy = oy * w.sh - w.ph + ki * w.dh;
              if (iy < 0 || iy >= H) continue;
              for (int64_t ox = 0; ox < ow; ++ox) {
                const int64_t ix = ox * w.sw - w.pw + kj * w.dw;
                if (ix >= 0 && ix < W) plane[iy * W + ix] += row[oy * ow + ox];
              }
            }
          }
      }
    });
  });
}
std::vector<Tensor> Fold_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  const auto& a = out->attrs.ints;
  return {unfold(g, {a[0], a[1]}, {a[2], a[3]}, {a[4], a[5]}, {a[6], a[7]}, 0.0)};
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
                     " channels but weight of shape " + shape_str(w.shape()) +
                     " with groups=" + std::to_string(groups) + " expects " + std::to_string(w.shape()[1] * groups) +
                     " (and out_channels divisible by groups)");
  if (x.dtype() != w.dtype() || (b.defined() && b.dtype() != x.dtype()))
    throw TypeError(std::string("conv2d: input, weight and bias must have one dtype, got ") + dtype_name(x.dtype()) +
                    " and " + dtype_name(w.dtype()));
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
Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t padding, int64_t dilation,
              int64_t groups) {
  if (x.ndim() == 2) return squeeze(conv1d(unsqueeze(x, 0), w, b, stride, padding, dilation, groups), 0);
  if (x.ndim() != 3)
    throw ShapeError("conv1d: expected a 2-d (C, L) or 3-d (N, C, L) input, got shape " + shape_str(x.shape()));
  if (w.ndim() != 3)
    throw ShapeError("conv1d: expected a 3-d weight (out_channels, in_channels/groups, k), got shape " +
                     shape_str(w.shape()));
  if (groups <= 0) throw ValueError("conv1d: groups must be positive");
  if (x.shape()[1] != w.shape()[1] * groups || w.shape()[0] % groups != 0)
    throw ShapeError("conv1d: input of shape " + shape_str(x.shape()) + " has " + std::to_string(x.shape()[1]) +
                     " channels but weight of shape " + shape_str(w.shape()) +
                     " with groups=" + std::to_string(groups) + " expects " + std::to_string(w.shape()[1] * groups) +
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
      throw ValueError(std::string(op) + ": padding " + shape_str(p) + " should be at most half of the kernel size " +
                       shape_str(k));
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
Tensor batch_norm_apply(const Tensor& x, const Tensor& m, const Tensor& v, const Tensor& weight, const Tensor& bias,
                        double eps) {
  if (x.ndim() < 2)
    throw ShapeError("batch_norm: expected at least 2-d input (N, C, ...), got shape " + shape_str(x.shape()));
  Shape bs(x.ndim(), 1);
  bs[1] = x.shape()[1];
  auto per_channel = [&](const Tensor& t, const char* what) {
    if (t.numel() != x.shape()[1])
      throw ShapeError(std::string("batch_norm: ") + what + " of shape " + shape_str(t.shape()) + " does not match " +
                       std::to_string(x.shape()[1]) + " channels of input " + shape_str(x.shape()));
    return reshape(t, bs);
  };
  Tensor y = mul(sub(x, per_channel(m, "mean")), rsqrt(add(per_channel(v, "var"), c(x, eps))));
  if (weight.defined()) y = mul(y, per_channel(weight, "weight"));
  if (bias.defined()) y = add(y, per_channel(bias, "bias"));
  return y;
}

}  // namespace dagrad
