// Neural-network primitives: linear (x @ W^T + b in one node) and unfold / fold (im2col and
// its adjoint), from which conv1d, conv2d and the pools are composed (ops/composite.cpp).
#include <algorithm>

#include "dagrad/kernels/dispatch.h"
#include "dagrad/kernels/gemm.h"
#include "dagrad/kernels/parallel.h"
#include "dagrad/ops.h"

namespace dagrad {

// ---- linear -----------------------------------------------------------------------------------
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  if (w.ndim() != 2)
    throw ShapeError("linear: weight must be 2-d (out_features, in_features), got shape " +
                     shape_str(w.shape()));
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
      throw ValueError(std::string(op) + ": kernel_size, stride and dilation must be positive and padding "
                       "non-negative, got kernel_size " + shape_str(k) + ", stride " + shape_str(s) +
                       ", padding " + shape_str(p) + ", dilation " + shape_str(d));
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

std::pair<int64_t, int64_t> window_output_size(const char* op, const Shape& input,
                                               const std::vector<int64_t>& kernel,
                                               const std::vector<int64_t>& stride,
                                               const std::vector<int64_t>& padding,
                                               const std::vector<int64_t>& dilation) {
  const Window w = check_window(op, kernel, stride, padding, dilation);
  const int64_t H = input[input.size() - 2], W = input[input.size() - 1];
  const int64_t oh = window_out(op, H, w.kh, w.sh, w.ph, w.dh), ow = window_out(op, W, w.kw, w.sw, w.pw, w.dw);
  if (oh <= 0 || ow <= 0)
    throw ShapeError(std::string(op) + ": the kernel " + shape_str(kernel) + " (dilation " +
                     shape_str(dilation) + ", padding " + shape_str(padding) +
                     ") does not fit the input of shape " + shape_str(input));
  checked_mul(oh, ow, op);
  return {oh, ow};
}

Tensor unfold(const Tensor& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
              const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, double pad_value) {
  if (x.ndim() != 4)
    throw ShapeError("unfold: expected a 4-d input (N, C, H, W), got shape " + shape_str(x.shape()));
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
  if (H <= 0 || W <= 0)
    throw ValueError("fold: output_size must be positive, got " + shape_str(output_size));
  const auto [oh, ow] = window_output_size("fold", output_size, kernel, stride, padding, dilation);
  const Window w = check_window("fold", kernel, stride, padding, dilation);
  const int64_t kk = checked_mul(w.kh, w.kw, "fold");
  if (cols.ndim() != 3 || cols.shape()[1] % kk != 0 || cols.shape()[2] != oh * ow)
    throw ShapeError("fold: input of shape " + shape_str(cols.shape()) + " does not fit kernel " +
                     shape_str(kernel) + " and output size " + shape_str(output_size));
  OpAttrs a;
  a.ints = {w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, w.dh, w.dw, H, W};
  return make_op(OpKind::Fold, {cols}, {cols.shape()[0], cols.shape()[1] / kk, H, W}, cols.dtype(),
                 std::move(a));
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
