// Neural-network primitives: linear (x @ W^T + b in one node), unfold / fold (im2col and its
// adjoint), direct convolution and its gradients (Note [Direct convolution]; grouped
// convolutions are composed from unfold and a batched matmul), and direct max / average
// pooling (Note [Direct pooling]).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "dagrad/kernels/dispatch.h"
#include "dagrad/kernels/elementwise.h"
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
    // The bias is the GEMM's epilogue, added to each tile while it is in cache.
    if (out.inputs.size() > 2)
      kernels::gemm_bias(false, true, m, n, k, px, k, pw, k, in(out, 2).data<T>(), po);
    else
      kernels::gemm(false, true, m, n, k, px, k, pw, k, po);
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
// Planes per chunk when a windowed kernel splits over threads: about 32k element visits, so a
// small layer (8x8 digits) runs inline instead of paying a parallel region for microseconds of
// work (Note [Thread budget]).
int64_t plane_grain(double work_per_plane) {
  // In double: a pool's kernel may be as large as int64 allows while the input is tiny.
  return static_cast<int64_t>(std::max(1.0, std::floor(32768.0 / std::max(1.0, work_per_plane))));
}

// The arithmetic of a window placement. The sizes were checked when the op was built
// (window_output_size), so the kernels compute them again without checks.
struct Window {
  int64_t kh, kw, sh, sw, ph, pw, dh, dw;
  int64_t out_h(int64_t h) const { return (h + 2 * ph - dh * (kh - 1) - 1) / sh + 1; }
  int64_t out_w(int64_t w) const { return (w + 2 * pw - dw * (kw - 1) - 1) / sw + 1; }
};
Window window_of(const std::vector<int64_t>& a) { return {a[0], a[1], a[2], a[3], a[4], a[5], a[6], a[7]}; }

// The output columns [ox0, ox1) whose input column ix = ox * sw - pw + kj * dw falls inside
// [0, W) for kernel column kj, and the input column ix0 under ox0: the rows of unfold and fold
// then copy (or add) that run with no bounds test, and pad the columns outside it.
struct ColumnRange {
  int64_t ox0, ox1, ix0;
};
ColumnRange column_range(const Window& w, int64_t kj, int64_t W, int64_t ow) {
  const int64_t off = kj * w.dw - w.pw;  // ix = ox * sw + off
  const int64_t ox0 = std::min(ow, off >= 0 ? 0 : (-off + w.sw - 1) / w.sw);
  const int64_t ox1 = std::max(ox0, std::min(ow, W - off <= 0 ? 0 : (W - off - 1) / w.sw + 1));
  return {ox0, ox1, ox0 * w.sw + off};
}

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
namespace {
// GCC turns the copy and fill loops of im2col_plane into memmove / memset calls; its runs are
// short (a row of a LeNet layer is 8 to 24 values), where the call costs more than the copy:
// 40% of a 16x12x12 -> 400x64 im2col went to memmove's dispatch.
#if defined(__GNUC__) && !defined(__clang__)
#define DAGRAD_NO_LIBCALL_LOOPS __attribute__((optimize("no-tree-loop-distribute-patterns")))
#else
#define DAGRAD_NO_LIBCALL_LOOPS
#endif
// im2col of one (H, W) plane: kh * kw rows of oh * ow columns, row r at rows + r * ld.
template <class T>
DAGRAD_NO_LIBCALL_LOOPS DAGRAD_SIMD_CLONES void im2col_plane(const T* plane, T* rows, int64_t ld, const Window& w,
                                                             int64_t H, int64_t W, int64_t oh, int64_t ow, T pad) {
  for (int64_t ki = 0; ki < w.kh; ++ki)
    for (int64_t kj = 0; kj < w.kw; ++kj) {
      T* row = rows + (ki * w.kw + kj) * ld;
      const ColumnRange cr = column_range(w, kj, W, ow);
      for (int64_t oy = 0; oy < oh; ++oy) {
        T* dst = row + oy * ow;
        const int64_t iy = oy * w.sh - w.ph + ki * w.dh;
        if (iy < 0 || iy >= H) {
          for (int64_t ox = 0; ox < ow; ++ox) dst[ox] = pad;
          continue;
        }
        const T* src = plane + iy * W + cr.ix0;  // the input under output column cr.ox0
        for (int64_t ox = 0; ox < cr.ox0; ++ox) dst[ox] = pad;
        if (w.sw == 1)
          for (int64_t ox = cr.ox0; ox < cr.ox1; ++ox) dst[ox] = src[ox - cr.ox0];
        else
          for (int64_t ox = cr.ox0; ox < cr.ox1; ++ox) dst[ox] = src[(ox - cr.ox0) * w.sw];
        for (int64_t ox = cr.ox1; ox < ow; ++ox) dst[ox] = pad;
      }
    }
}
// col2im of one plane, the adjoint of im2col_plane: zeroes the plane, then adds every row's
// columns back in (ki, kj, oy, ox) order, so each element gets its terms in one fixed order.
template <class T>
DAGRAD_SIMD_CLONES void col2im_plane(const T* rows, int64_t ld, T* plane, const Window& w, int64_t H, int64_t W,
                                     int64_t oh, int64_t ow) {
  std::fill(plane, plane + H * W, T(0));
  for (int64_t ki = 0; ki < w.kh; ++ki)
    for (int64_t kj = 0; kj < w.kw; ++kj) {
      const T* row = rows + (ki * w.kw + kj) * ld;
      const ColumnRange cr = column_range(w, kj, W, ow);
      for (int64_t oy = 0; oy < oh; ++oy) {
        const int64_t iy = oy * w.sh - w.ph + ki * w.dh;
        if (iy < 0 || iy >= H) continue;
        const T* src = row + oy * ow;
        T* dst = plane + iy * W + cr.ix0;
        if (w.sw == 1)
          for (int64_t ox = cr.ox0; ox < cr.ox1; ++ox) dst[ox - cr.ox0] += src[ox];
        else
          for (int64_t ox = cr.ox0; ox < cr.ox1; ++ox) dst[(ox - cr.ox0) * w.sw] += src[ox];
      }
    }
}
}  // namespace

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
    parallel_for(N * C, plane_grain(double(w.kh) * double(w.kw) * double(L)), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) im2col_plane(px + p * H * W, po + p * w.kh * w.kw * L, L, w, H, W, oh, ow, pad);
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
    parallel_for(N * C, plane_grain(double(w.kh) * double(w.kw) * double(L)), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) col2im_plane(pc + p * w.kh * w.kw * L, L, po + p * H * W, w, H, W, oh, ow);
    });
  });
}
std::vector<Tensor> Fold_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  const auto& a = out->attrs.ints;
  return {unfold(g, {a[0], a[1]}, {a[2], a[3]}, {a[4], a[5]}, {a[6], a[7]}, 0.0)};
}

// ---- direct convolution (attrs.ints = {kh, kw, sh, sw, ph, pw, dh, dw[, H, W]}) -----------------
// Note [Direct convolution]: conv2d (groups == 1) is one node, and its gradients two more,
// instead of unfold + a batched matmul + a bias add over the whole batch (issue #16):
//   conv2d(x, w, b)             y[n] = W @ im2col(x[n]) + b
//   conv2d_input_backward(g, w) dx[n] = col2im(W^T @ g[n])       (the adjoint of conv2d in x)
//   conv2d_weight_backward(g, x) dW = sum_n g[n] @ im2col(x[n])^T (the adjoint in w)
//   conv2d_bias_backward(g)      db = g summed over n, and the plane
// Each is linear in each input, and the backward of each is built from the three, so
// gradients of any order follow. im2col is never materialised for the batch: a sample's
// columns (C*kh*kw x L) go to a buffer of the thread that works on it, are multiplied while
// they are in cache, and are overwritten by the next sample's; a 1x1 kernel with stride 1 and
// no padding multiplies the input plane itself. Forward and input gradient split over
// samples: each sample is computed by the same instructions whatever the split.
// Small layers (L < 64) put several samples' columns side by side in one GEMM
// (sample_chunk). Grouped convolutions (groups > 1) keep the composite of unfold and a
// batched matmul. The run planner costs these nodes in flops, as it does matmul (node_cost
// and splits() in scheduler/plan.cpp, Note [Serial or parallel run]).
// The weight gradient sums over the batch. Its order must not depend on the thread count:
// the batch is cut into chunks of B samples (B * L up to kWeightColumns columns, so each
// GEMM has a long enough inner dimension while its columns stay in cache), the chunks into
// at most kWeightGroups contiguous groups, both from the shapes alone. A group sums its
// chunks' products in chunk order into its own partial; the partials are then added in
// group order. The threads only decide which group each works on.
namespace {
constexpr int64_t kWeightGroups = 8;
constexpr int64_t kWeightColumns = 256;  // the inner dimension K a weight-gradient chunk aims at
// Samples (or groups) per chunk when a conv kernel splits: about 1 MFLOP per chunk, so the
// digits CNN's 8x8 layers do not pay a parallel region for a few microseconds of work.
int64_t conv_grain(double flops_per_item) {
  return static_cast<int64_t>(std::max(1.0, std::ceil(double(1 << 20) / std::max(1.0, flops_per_item))));
}
struct ConvGeom {
  Window w;
  int64_t N, C, H, W, O, oh, ow, L, kk, ckk;
  bool direct;  // 1x1, stride 1, no padding: the input plane is its own im2col
};
ConvGeom conv_geom(const std::vector<int64_t>& a, const Shape& x, int64_t O) {
  ConvGeom g;
  g.w = window_of(a);
  g.N = x[0], g.C = x[1], g.H = x[2], g.W = x[3], g.O = O;
  g.oh = g.w.out_h(g.H), g.ow = g.w.out_w(g.W), g.L = g.oh * g.ow;
  g.kk = g.w.kh * g.w.kw, g.ckk = g.C * g.kk;
  g.direct = g.kk == 1 && g.w.sh == 1 && g.w.sw == 1 && g.w.ph == 0 && g.w.pw == 0;
  return g;
}
// Stride 1 and dilation 1 (every layer of LeNet and the digits CNN): a row of im2col is oh
// runs of ow values, run oy at (oy + ki, kj) of the padded plane. The general im2col_plane
// spends ~10 cycles per run on its bounds and padding logic, which is most of the time when
// runs are 4 to 24 values; here a padded plane (when there is padding) is built once per
// (sample, channel) and the runs are fixed-size copies for the usual widths.
bool unit_window(const Window& w) { return w.sh == 1 && w.sw == 1 && w.dh == 1 && w.dw == 1; }
template <class T, int OW>
void unit_rows(const T* plane, int64_t Wp, T* rows, int64_t ld, const Window& w, int64_t oh, int64_t ow_rt) {
  const int64_t ow = OW > 0 ? OW : ow_rt;
  for (int64_t ki = 0; ki < w.kh; ++ki)
    for (int64_t kj = 0; kj < w.kw; ++kj) {
      T* row = rows + (ki * w.kw + kj) * ld;
      const T* src = plane + ki * Wp + kj;
      for (int64_t oy = 0; oy < oh; ++oy, src += Wp, row += ow) {
        if constexpr (OW > 0)
          std::memcpy(row, src, OW * sizeof(T));
        else
          std::copy(src, src + ow, row);
      }
    }
}
template <class T, int OW>
void unit_rows_add(const T* rows, int64_t ld, T* plane, int64_t Wp, const Window& w, int64_t oh, int64_t ow_rt) {
  const int64_t ow = OW > 0 ? OW : ow_rt;
  for (int64_t ki = 0; ki < w.kh; ++ki)
    for (int64_t kj = 0; kj < w.kw; ++kj) {
      const T* row = rows + (ki * w.kw + kj) * ld;
      T* dst = plane + ki * Wp + kj;
      for (int64_t oy = 0; oy < oh; ++oy, dst += Wp, row += ow)
        for (int64_t ox = 0; ox < ow; ++ox) dst[ox] += row[ox];
    }
}
template <class T, class F>
void by_width(int64_t ow, const F& f) {
  switch (ow) {
    case 4: f(std::integral_constant<int, 4>{}); break;
    case 8: f(std::integral_constant<int, 8>{}); break;
    case 16: f(std::integral_constant<int, 16>{}); break;
    case 24: f(std::integral_constant<int, 24>{}); break;
    case 32: f(std::integral_constant<int, 32>{}); break;
    default: f(std::integral_constant<int, 0>{});
  }
}
// The padded plane's size for a unit window (the plane itself when there is no padding).
int64_t padded_size(const ConvGeom& g) { return g.w.ph || g.w.pw ? (g.H + 2 * g.w.ph) * (g.W + 2 * g.w.pw) : 0; }
// im2col of sample n of x into cols (ckk rows at row stride ld); pad is scratch of
// padded_size(g) values.
template <class T>
void sample_cols(const ConvGeom& g, const T* px, int64_t n, T* cols, int64_t ld, T* pad) {
  if (!unit_window(g.w)) {
    for (int64_t c = 0; c < g.C; ++c)
      im2col_plane(px + (n * g.C + c) * g.H * g.W, cols + c * g.kk * ld, ld, g.w, g.H, g.W, g.oh, g.ow, T(0));
    return;
  }
  const int64_t Wp = g.W + 2 * g.w.pw, Hp = g.H + 2 * g.w.ph;
  by_width<T>(g.ow, [&](auto width) {
    constexpr int OW = decltype(width)::value;
    for (int64_t c = 0; c < g.C; ++c) {
      const T* plane = px + (n * g.C + c) * g.H * g.W;
      if (pad) {
        std::fill(pad, pad + Hp * Wp, T(0));
        for (int64_t y = 0; y < g.H; ++y)
          std::copy(plane + y * g.W, plane + (y + 1) * g.W, pad + (y + g.w.ph) * Wp + g.w.pw);
        plane = pad;
      }
      unit_rows<T, OW>(plane, Wp, cols + c * g.kk * ld, ld, g.w, g.oh, g.ow);
    }
  });
}
// col2im of one sample's columns (ckk rows at row stride ld) into its (C, H, W) gradient dx;
// each element gets its terms in (ki, kj, oy, ox) order, as col2im_plane adds them.
template <class T>
void sample_col2im(const ConvGeom& g, const T* cols, int64_t ld, T* dx, T* pad) {
  if (!unit_window(g.w)) {
    for (int64_t c = 0; c < g.C; ++c)
      col2im_plane(cols + c * g.kk * ld, ld, dx + c * g.H * g.W, g.w, g.H, g.W, g.oh, g.ow);
    return;
  }
  const int64_t Wp = g.W + 2 * g.w.pw, Hp = g.H + 2 * g.w.ph;
  by_width<T>(g.ow, [&](auto width) {
    constexpr int OW = decltype(width)::value;
    for (int64_t c = 0; c < g.C; ++c) {
      T* plane = dx + c * g.H * g.W;
      T* acc = pad ? pad : plane;
      std::fill(acc, acc + Hp * Wp, T(0));
      unit_rows_add<T, OW>(cols + c * g.kk * ld, ld, acc, Wp, g.w, g.oh, g.ow);
      if (pad)
        for (int64_t y = 0; y < g.H; ++y)
          std::copy(pad + (y + g.w.ph) * Wp + g.w.pw, pad + (y + g.w.ph) * Wp + g.w.pw + g.W, plane + y * g.W);
    }
  });
}
// Samples per GEMM in the forward and the input gradient: one where a sample has 64 output
// positions or more (LeNet's layers: 32x400x64 products run at OpenBLAS's best, ~105 GFLOP/s),
// else enough for ~64 columns (the digits CNN's 4x4 layer: 36 GFLOP/s one sample at a time).
// From the shapes alone, so every output element comes from the same GEMM at any thread count.
int64_t sample_chunk(const ConvGeom& g) {
  return std::max<int64_t>(1, std::min<int64_t>(g.N, 64 / std::max<int64_t>(1, g.L)));
}
std::vector<int64_t> window_ints(const Window& w) { return {w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, w.dh, w.dw}; }

Tensor conv2d_direct(const Tensor& x, const Tensor& w, const Tensor& b, const Window& win) {
  OpAttrs a;
  a.ints = window_ints(win);
  std::vector<Tensor> ins = {x, w};
  if (b.defined()) ins.push_back(b);
  const int64_t oh = win.out_h(x.shape()[2]), ow = win.out_w(x.shape()[3]);
  return make_op(OpKind::Conv2d, ins, {x.shape()[0], w.shape()[0], oh, ow}, x.dtype(), std::move(a));
}
// dx of shape (N, C, H, W) from g (N, O, oh, ow) and w (O, C, kh, kw).
Tensor conv2d_input_backward(const Tensor& g, const Tensor& w, const Window& win, int64_t H, int64_t W) {
  OpAttrs a;
  a.ints = window_ints(win);
  a.ints.push_back(H);
  a.ints.push_back(W);
  return make_op(OpKind::Conv2dInputBackward, {g, w}, {g.shape()[0], w.shape()[1], H, W}, g.dtype(), std::move(a));
}
// dW of shape (O, C, kh, kw) from g (N, O, oh, ow) and x (N, C, H, W).
Tensor conv2d_weight_backward(const Tensor& g, const Tensor& x, const Window& win) {
  OpAttrs a;
  a.ints = window_ints(win);
  return make_op(OpKind::Conv2dWeightBackward, {g, x}, {g.shape()[1], x.shape()[1], win.kh, win.kw}, g.dtype(),
                 std::move(a));
}
}  // namespace

void Conv2d_forward(Node& out) {
  alloc_output(out);
  const Node& x = in(out, 0);
  const Node& wt = in(out, 1);
  const ConvGeom g = conv_geom(out.attrs.ints, x.shape, wt.shape[0]);
  const int64_t B = sample_chunk(g);
  DAGRAD_DISPATCH_FLOAT(out.dtype, "conv2d", {
    const T* px = x.data<T>();
    const T* pw = wt.data<T>();
    const T* pb = out.inputs.size() > 2 ? in(out, 2).data<T>() : nullptr;
    T* po = out.data<T>();
    const int64_t chunks = (g.N + B - 1) / B;
    parallel_for(chunks, conv_grain(2.0 * double(g.O) * double(g.ckk) * double(g.L * B)), [&](int64_t c0, int64_t c1) {
      std::vector<T> buf(g.direct && B == 1 ? 0 : static_cast<size_t>(g.ckk * g.L * B));
      std::vector<T> ybuf(B == 1 ? 0 : static_cast<size_t>(g.O * g.L * B));
      std::vector<T> pad(static_cast<size_t>(padded_size(g)));
      for (int64_t ch = c0; ch < c1; ++ch) {
        const int64_t s0 = ch * B, s1 = std::min(g.N, s0 + B), K = (s1 - s0) * g.L;
        const T* cols = px + s0 * g.C * g.H * g.W;  // a 1x1 sample is its own (C, L) im2col
        if (!g.direct || B > 1) {
          for (int64_t s = s0; s < s1; ++s)
            sample_cols(g, px, s, buf.data() + (s - s0) * g.L, K, pad.empty() ? nullptr : pad.data());
          cols = buf.data();
        }
        // One sample: its (O, L) output directly. Several: (O, K), then each sample's columns
        // go to its own (O, L) block.
        T* y = B == 1 ? po + s0 * g.O * g.L : ybuf.data();
        kernels::gemm(false, false, g.O, K, g.ckk, pw, g.ckk, cols, K, y);
        for (int64_t s = s0; s < s1; ++s)
          for (int64_t o = 0; o < g.O; ++o) {
            const T bo = pb ? pb[o] : T(0);
            const T* src = y + o * K + (s - s0) * g.L;
            T* row = po + (s * g.O + o) * g.L;
            if (B == 1) {
              if (pb)
                for (int64_t l = 0; l < g.L; ++l) row[l] += bo;
            } else if (pb) {
              for (int64_t l = 0; l < g.L; ++l) row[l] = src[l] + bo;
            } else {
              for (int64_t l = 0; l < g.L; ++l) row[l] = src[l];
            }
          }
      }
    });
  });
}
std::vector<Tensor> Conv2d_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  const Tensor x = input(out, 0), w = input(out, 1);
  const Window win = window_of(out->attrs.ints);
  std::vector<Tensor> r(out->inputs.size());
  if (needs[0]) r[0] = conv2d_input_backward(g, w, win, x.shape()[2], x.shape()[3]);
  if (needs[1]) r[1] = conv2d_weight_backward(g, x, win);
  if (r.size() > 2 && needs[2]) r[2] = make_op(OpKind::Conv2dBiasBackward, {g}, {g.shape()[1]}, g.dtype());
  return r;
}

// db[o] = the sum of g[n, o, :, :] over n and the plane: per channel, the N planes are added
// element by element into one plane-sized accumulator (contiguous, vectorised), which is then
// summed in order. One thread per channel, one order: the same bits at any thread count. (A
// reduction over the contiguous last dims runs one scalar chain: 0.47 ms for LeNet's first
// layer where this takes ~0.06.)
void Conv2dBiasBackward_forward(Node& out) {
  alloc_output(out);
  const Node& gn = in(out, 0);
  const int64_t N = gn.shape[0], O = gn.shape[1], L = gn.shape[2] * gn.shape[3];
  DAGRAD_DISPATCH_FLOAT(out.dtype, "conv2d_bias_backward", {
    const T* pg = gn.data<T>();
    T* po = out.data<T>();
    parallel_for(O, plane_grain(double(N) * double(L)), [&](int64_t o0, int64_t o1) {
      std::vector<T> acc(static_cast<size_t>(L));
      for (int64_t o = o0; o < o1; ++o) {
        if (N == 0) {
          po[o] = T(0);
          continue;
        }
        T* __restrict a = acc.data();
        const T* first = pg + o * L;
        for (int64_t l = 0; l < L; ++l) a[l] = first[l];
        for (int64_t n = 1; n < N; ++n) {
          const T* __restrict row = pg + (n * O + o) * L;
          for (int64_t l = 0; l < L; ++l) a[l] += row[l];
        }
        T v = T(0);
        for (int64_t l = 0; l < L; ++l) v += a[l];
        po[o] = v;
      }
    });
  });
}
std::vector<Tensor> Conv2dBiasBackward_backward(const Tensor& out, const Tensor& gg, const std::vector<bool>&) {
  const Tensor g = input(out, 0);
  return {expand(reshape(gg, {1, g.shape()[1], 1, 1}), g.shape())};
}

void Conv2dInputBackward_forward(Node& out) {
  alloc_output(out);
  const Node& gn = in(out, 0);
  const Node& wt = in(out, 1);
  const ConvGeom g = conv_geom(out.attrs.ints, out.shape, wt.shape[0]);
  const int64_t B = sample_chunk(g);
  DAGRAD_DISPATCH_FLOAT(out.dtype, "conv2d_input_backward", {
    const T* pg = gn.data<T>();
    const T* pw = wt.data<T>();
    T* po = out.data<T>();
    const int64_t chunks = (g.N + B - 1) / B;
    parallel_for(chunks, conv_grain(2.0 * double(g.O) * double(g.ckk) * double(g.L * B)), [&](int64_t c0, int64_t c1) {
      std::vector<T> buf(g.direct && B == 1 ? 0 : static_cast<size_t>(g.ckk * g.L * B));
      std::vector<T> gp(B == 1 ? 0 : static_cast<size_t>(g.O * g.L * B));
      std::vector<T> pad(static_cast<size_t>(padded_size(g)));
      for (int64_t ch = c0; ch < c1; ++ch) {
        const int64_t s0 = ch * B, s1 = std::min(g.N, s0 + B), K = (s1 - s0) * g.L;
        const T* gk = pg + s0 * g.O * g.L;  // one sample's g is already (O, L)
        if (B > 1) {
          for (int64_t o = 0; o < g.O; ++o)
            for (int64_t s = s0; s < s1; ++s)
              std::copy(pg + (s * g.O + o) * g.L, pg + (s * g.O + o + 1) * g.L, gp.data() + o * K + (s - s0) * g.L);
          gk = gp.data();
        }
        T* dx0 = po + s0 * g.C * g.H * g.W;
        T* cols = g.direct && B == 1 ? dx0 : buf.data();
        kernels::gemm(true, false, g.ckk, K, g.O, pw, g.ckk, gk, K, cols);
        for (int64_t s = s0; s < s1; ++s) {
          T* dx = po + s * g.C * g.H * g.W;
          const T* sc = cols + (s - s0) * g.L;
          if (g.direct) {
            if (B > 1)
              for (int64_t c = 0; c < g.C; ++c) std::copy(sc + c * K, sc + c * K + g.L, dx + c * g.L);
          } else {
            sample_col2im(g, sc, K, dx, pad.empty() ? nullptr : pad.data());
          }
        }
      }
    });
  });
}
std::vector<Tensor> Conv2dInputBackward_backward(const Tensor& out, const Tensor& gg, const std::vector<bool>& needs) {
  const Tensor g = input(out, 0), w = input(out, 1);
  const Window win = window_of(out->attrs.ints);
  std::vector<Tensor> r(2);
  if (needs[0]) r[0] = conv2d_direct(gg, w, Tensor(), win);
  if (needs[1]) r[1] = conv2d_weight_backward(g, gg, win);
  return r;
}

void Conv2dWeightBackward_forward(Node& out) {
  alloc_output(out);
  const Node& gn = in(out, 0);
  const Node& x = in(out, 1);
  const ConvGeom g = conv_geom(out.attrs.ints, x.shape, out.shape[0]);
  // See Note [Direct convolution] for the fixed order of the sum over the batch. Each chunk's
  // product is computed transposed, dW^T (C*kh*kw, O) = cols (C*kh*kw, K) @ g^T (K, O): with
  // the long dimension C*kh*kw as the GEMM's rows OpenBLAS runs it at ~90 GFLOP/s where
  // g @ cols^T (O rows) ran at ~55 (LeNet's 32x400 weight, K = 64 to 1024).
  const int64_t B = std::min<int64_t>(std::max<int64_t>(1, kWeightColumns / std::max<int64_t>(1, g.L)), g.N);
  const int64_t chunks = B > 0 ? (g.N + B - 1) / B : 0;
  const int64_t groups = std::min(chunks, kWeightGroups);
  const int64_t size = g.O * g.ckk;
  DAGRAD_DISPATCH_FLOAT(out.dtype, "conv2d_weight_backward", {
    const T* pg = gn.data<T>();
    const T* px = x.data<T>();
    T* po = out.data<T>();
    if (groups == 0) {
      std::fill(po, po + size, T(0));
      return;
    }
    std::vector<T> partials(static_cast<size_t>(groups * size));  // group gi's dW^T at gi * size
    const double group_flops = 2.0 * double(size) * double(g.L) * double(g.N) / double(groups);
    parallel_for(groups, conv_grain(group_flops), [&](int64_t g0, int64_t g1) {
      std::vector<T> cols, gp, tmp, pad(static_cast<size_t>(padded_size(g)));
      for (int64_t gi = g0; gi < g1; ++gi) {
        T* part = partials.data() + gi * size;
        const int64_t c0 = chunks * gi / groups, c1 = chunks * (gi + 1) / groups;
        for (int64_t ch = c0; ch < c1; ++ch) {
          const int64_t s0 = ch * B, s1 = std::min(g.N, s0 + B), K = (s1 - s0) * g.L;
          const T* gk = pg + s0 * g.O * g.L;  // one sample's g is already (O, L)
          if (s1 - s0 > 1) {
            gp.resize(static_cast<size_t>(g.O * K));
            for (int64_t o = 0; o < g.O; ++o)
              for (int64_t s = s0; s < s1; ++s)
                std::copy(pg + (s * g.O + o) * g.L, pg + (s * g.O + o + 1) * g.L, gp.data() + o * K + (s - s0) * g.L);
            gk = gp.data();
          }
          const T* ck = px + s0 * g.C * g.H * g.W;  // a 1x1 sample is its own (C, L) im2col
          if (!g.direct || s1 - s0 > 1) {
            cols.resize(static_cast<size_t>(g.ckk * K));
            for (int64_t s = s0; s < s1; ++s) {
              if (g.direct)
                for (int64_t c = 0; c < g.C; ++c)
                  std::copy(px + (s * g.C + c) * g.L, px + (s * g.C + c + 1) * g.L,
                            cols.data() + c * K + (s - s0) * g.L);
              else
                sample_cols(g, px, s, cols.data() + (s - s0) * g.L, K, pad.empty() ? nullptr : pad.data());
            }
            ck = cols.data();
          }
          if (ch == c0) {
            kernels::gemm(false, true, g.ckk, g.O, K, ck, K, gk, K, part);
          } else {
            tmp.resize(static_cast<size_t>(size));
            kernels::gemm(false, true, g.ckk, g.O, K, ck, K, gk, K, tmp.data());
            for (int64_t i = 0; i < size; ++i) part[i] += tmp[i];
          }
        }
      }
    });
    // dW[o, r] = the groups' dW^T[r, o], added in group order.
    for (int64_t o = 0; o < g.O; ++o)
      for (int64_t r = 0; r < g.ckk; ++r) {
        T v = partials[static_cast<size_t>(r * g.O + o)];
        for (int64_t gi = 1; gi < groups; ++gi) v += partials[static_cast<size_t>(gi * size + r * g.O + o)];
        po[o * g.ckk + r] = v;
      }
  });
}
std::vector<Tensor> Conv2dWeightBackward_backward(const Tensor& out, const Tensor& gw, const std::vector<bool>& needs) {
  const Tensor g = input(out, 0), x = input(out, 1);
  const Window win = window_of(out->attrs.ints);
  std::vector<Tensor> r(2);
  if (needs[0]) r[0] = conv2d_direct(x, gw, Tensor(), win);
  if (needs[1]) r[1] = conv2d_input_backward(g, gw, win, x.shape()[2], x.shape()[3]);
  return r;
}

// ---- direct pooling (attrs.ints = {kh, kw, sh, sw, ph, pw, dh, dw[, count_include_pad, H, W]}) ----
// Note [Direct pooling]: max and average pooling read each window straight from the input
// plane; nothing is unfolded. Max pooling is two primitives that are each other's adjoint:
// select(v, x) takes v at the first maximum of each window of x (x's windows in row-major
// order, padding as -inf; a NaN is the maximum, the last NaN of a window where it has several,
// as in PyTorch), and route(g, x) adds g at those positions of an x-shaped zero tensor.
// max_pool2d(x) = select(x, x); its gradient
// is route(g, x); route's gradient is select(gg, x): exact gradients of every order, and the
// positions are found again from x where needed (a k*k scan per output) instead of being
// kept. Average pooling and its adjoint likewise. Every (n, c) plane is done by one thread,
// in a fixed order (route and the adjoint add overlapping windows in output order): the same
// bits at any thread count.
namespace {
// The kernel taps [k0, k1) whose input row (or column) start + k * dil falls inside [0, size):
// the window loops visit only those, so a huge kernel over a small input costs its overlap.
struct Taps {
  int64_t k0, k1;
};
Taps taps(int64_t start, int64_t dil, int64_t k, int64_t size) {
  const int64_t k0 = start >= 0 ? 0 : (-start + dil - 1) / dil;
  const int64_t k1 = start >= size ? 0 : std::min(k, (size - 1 - start) / dil + 1);
  return {std::min(k0, k1), k1};
}
// A pooling's geometry, with the taps of every output row and column worked out once per run
// (not per window: the divisions would cost more than the window).
struct PoolGeom {
  Window w;
  int64_t planes, H, W, oh, ow;
  std::vector<Taps> ty, tx;
  std::vector<ColumnRange> cols;  // per kernel column kj: the output columns it reaches
};
PoolGeom pool_geom(const Window& w, const Shape& input) {
  PoolGeom g{w, input[0] * input[1], input[2], input[3], w.out_h(input[2]), w.out_w(input[3]), {}, {}, {}};
  g.ty.resize(static_cast<size_t>(g.oh));
  g.tx.resize(static_cast<size_t>(g.ow));
  for (int64_t oy = 0; oy < g.oh; ++oy) g.ty[oy] = taps(oy * w.sh - w.ph, w.dh, w.kh, g.H);
  for (int64_t ox = 0; ox < g.ow; ++ox) g.tx[ox] = taps(ox * w.sw - w.pw, w.dw, w.kw, g.W);
  // Only the kernel columns that reach an input column for some output column: kj * dw in
  // [pw - (ow - 1) * sw, pw + W - 1] (a kernel far wider than the input reaches few).
  const int64_t lo = w.pw - (g.ow - 1) * w.sw, hi = w.pw + g.W - 1;
  const int64_t kj0 = lo <= 0 ? 0 : (lo + w.dw - 1) / w.dw, kj1 = std::min(w.kw - 1, hi / w.dw);
  for (int64_t kj = kj0; kj <= kj1; ++kj) {
    const ColumnRange cr = column_range(w, kj, g.W, g.ow);
    if (cr.ox1 > cr.ox0) g.cols.push_back(cr);
  }
  return g;
}
// take ? a : b on the bits, so that neither the vector loop nor its scalar tail branches on
// the data (GCC turns a plain select back into a branch in the tail).
template <class T>
T blend(bool take, T a, T b) {
  using U = std::conditional_t<sizeof(T) == 4, uint32_t, uint64_t>;
  U x, y;
  std::memcpy(&x, &a, sizeof x);
  std::memcpy(&y, &b, sizeof y);
  y ^= (y ^ x) & (U(0) - static_cast<U>(take));
  std::memcpy(&b, &y, sizeof b);
  return b;
}
// The flat index in its H x W plane of the first maximum of every window of planes [p0, p1)
// (planes of px), into best, and that maximum into bv (both (p1 - p0) * oh * ow). A row of
// windows is done tap by tap (kernel row ki, then column kj) over all its windows at once, so
// each window still sees its elements in row-major order, and the inner loop is a run of
// selects over contiguous outputs that vectorises: a data-dependent branch per element
// mispredicts on random data and costs 4x more. The whole chunk runs inside one ISA clone
// (Note [SIMD at run time]), the stride a constant for the usual 1 and 2.
template <class T, int S>
DAGRAD_SIMD_CLONES void argmax_planes(const T* __restrict px, int64_t p0, int64_t p1, const PoolGeom& g,
                                      int64_t* __restrict best, T* __restrict bv) {
  const Window& w = g.w;
  const int64_t st = S > 0 ? S : w.sw;
  // The common 2x2 pool with stride 2 and no padding, window by window: rows of a small layer
  // (8x8 digits: 4 windows) are too short for the tap-by-tap loop to pay.
  const bool two_by_two =
      w.kh == 2 && w.kw == 2 && w.sh == 2 && S == 2 && w.ph == 0 && w.pw == 0 && w.dh == 1 && w.dw == 1;
  for (int64_t p = p0; p < p1; ++p) {
    const T* plane = px + p * g.H * g.W;
    if (two_by_two) {
      for (int64_t oy = 0; oy < g.oh; ++oy, best += g.ow, bv += g.ow) {
        const int64_t r0 = 2 * oy * g.W, r1 = r0 + g.W;
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          const int64_t at[4] = {r0 + 2 * ox, r0 + 2 * ox + 1, r1 + 2 * ox, r1 + 2 * ox + 1};
          int64_t bi = at[0];
          T m = -std::numeric_limits<T>::infinity();
          for (int k = 0; k < 4; ++k) {
            const T v = plane[at[k]];
            const bool take = (v > m) | (v != v);  // as below
            bi ^= (bi ^ at[k]) & -static_cast<int64_t>(take);
            m = blend(take, v, m);
          }
          best[ox] = bi;
          bv[ox] = m;
        }
      }
      continue;
    }
    for (int64_t oy = 0; oy < g.oh; ++oy, best += g.ow, bv += g.ow) {
      const int64_t y0 = oy * w.sh - w.ph;
      const Taps ty = g.ty[oy];
      // Start from each window's first element (padding is at most half the kernel, so every
      // window holds one) and -inf: a window of -inf keeps its first element, as in PyTorch.
      for (int64_t ox = 0; ox < g.ow; ++ox) {
        best[ox] = (y0 + ty.k0 * w.dh) * g.W + ox * st - w.pw + g.tx[ox].k0 * w.dw;
        bv[ox] = -std::numeric_limits<T>::infinity();
      }
      for (int64_t ki = ty.k0; ki < ty.k1; ++ki) {
        const int64_t roff = (y0 + ki * w.dh) * g.W;
        for (const ColumnRange& cr : g.cols) {
          const T* src = plane + roff + cr.ix0;
          const int64_t at0 = roff + cr.ix0, n = cr.ox1 - cr.ox0;
          int64_t* bi = best + cr.ox0;
          T* bvv = bv + cr.ox0;
          for (int64_t i = 0; i < n; ++i) {
            const T v = src[i * st], old = bvv[i];
            const bool take = (v > old) | (v != v);  // PyTorch's rule: the last NaN of a window wins
            // Bit blends, not "take ? a : b": GCC turns that into a masked store (vpmaskmovq,
            // microcoded and ten times slower on AMD's cores) or, in the scalar tail, a branch.
            bi[i] ^= (bi[i] ^ (at0 + i * st)) & -static_cast<int64_t>(take);
            bvv[i] = blend(take, v, old);
          }
        }
      }
    }
  }
}
template <class T>
void argmax_planes(const T* px, int64_t p0, int64_t p1, const PoolGeom& g, int64_t* best, T* bv) {
  const auto f = g.w.sw == 1 ? argmax_planes<T, 1> : g.w.sw == 2 ? argmax_planes<T, 2> : argmax_planes<T, 0>;
  f(px, p0, p1, g, best, bv);
}
// The 2x2 pool with stride 2, no padding and no dilation (LeNet's and the digits CNN's), whose
// windows do not overlap: each output row reads two input rows, and the first maximum of a
// window (argmax_planes's rule: the first element, then each later one where it is greater or
// NaN) is found with bit blends. Values only for a plain max_pool2d (select(x, x):
// argmax_planes would also compute every window's index, 4x the work); the window's index
// (0..3 in row-major order) for the route. Same selections as argmax_planes, so the same bits.
bool two_by_two(const Window& w) {
  return w.kh == 2 && w.kw == 2 && w.sh == 2 && w.sw == 2 && w.ph == 0 && w.pw == 0 && w.dh == 1 && w.dw == 1;
}
// The window's four values reduce as a tree, (v0, v1) and (v2, v3) then the two: "take the
// later one where it is greater or NaN" at each step selects the same element as the
// sequential scan (the last NaN if there is one, else the first maximum), without its chain
// of dependent compares.
template <class T, bool Index>
DAGRAD_SIMD_CLONES void max2x2_row(const T* __restrict r0, const T* __restrict r1, int64_t ow, T* __restrict m_out,
                                   int32_t* __restrict k_out) {
  for (int64_t ox = 0; ox < ow; ++ox) {
    const T v0 = r0[2 * ox], v1 = r0[2 * ox + 1], v2 = r1[2 * ox], v3 = r1[2 * ox + 1];
    const bool t01 = (v1 > v0) | (v1 != v1), t23 = (v3 > v2) | (v3 != v3);
    const T m01 = blend(t01, v1, v0), m23 = blend(t23, v3, v2);
    const bool t = (m23 > m01) | (m23 != m23);
    m_out[ox] = blend(t, m23, m01);
    if constexpr (Index) k_out[ox] = t ? 2 + int32_t(t23) : int32_t(t01);
  }
}
// Planes per pass of argmax_planes: its scratch stays near 2k entries (16 KiB of indices), in
// cache and below malloc's mmap threshold, whatever the size of the tensor.
int64_t sub_planes(int64_t L) { return std::max<int64_t>(1, 2048 / std::max<int64_t>(1, L)); }
// Planes per chunk when a pooling splits over threads (plane_grain of a plane's window visits).
int64_t pool_grain(const PoolGeom& g) {
  return plane_grain(double(g.oh) * double(g.ow) * double(g.w.kh) * double(g.w.kw));
}
Shape pooled_shape(const Shape& x, int64_t oh, int64_t ow) { return {x[0], x[1], oh, ow}; }
void check_pool4(const char* op, const Tensor& t) {
  if (t.ndim() != 4)
    throw ShapeError(std::string(op) + ": expected a 4-d input (N, C, H, W), got shape " + shape_str(t.shape()));
}
OpAttrs window_attrs(const Window& w) {
  OpAttrs a;
  a.ints = {w.kh, w.kw, w.sh, w.sw, w.ph, w.pw, w.dh, w.dw};
  return a;
}
}  // namespace

Tensor max_pool2d_select(const Tensor& v, const Tensor& x, const std::vector<int64_t>& kernel,
                         const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                         const std::vector<int64_t>& dilation) {
  check_pool4("max_pool2d", x);
  if (v.shape() != x.shape() || v.dtype() != x.dtype())
    throw ShapeError("max_pool2d: values of shape " + shape_str(v.shape()) + " do not match the input of shape " +
                     shape_str(x.shape()));
  const auto [oh, ow] = window_output_size("max_pool2d", x.shape(), kernel, stride, padding, dilation);
  const Window w = check_window("max_pool2d", kernel, stride, padding, dilation);
  return make_op(OpKind::MaxPoolSelect, {v, x}, pooled_shape(x.shape(), oh, ow), x.dtype(), window_attrs(w));
}
void MaxPoolSelect_forward(Node& out) {
  alloc_output(out);
  const Node& v = in(out, 0);
  const Node& x = in(out, 1);
  const PoolGeom g = pool_geom(window_of(out.attrs.ints), x.shape);
  DAGRAD_DISPATCH_FLOAT(out.dtype, "max_pool2d", {
    const T* pv = v.data<T>();
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const bool same = pv == px;
    const int64_t L = g.oh * g.ow, sub = sub_planes(L);
    if (same && two_by_two(g.w)) {
      parallel_for(g.planes, pool_grain(g), [&](int64_t p0, int64_t p1) {
        for (int64_t p = p0; p < p1; ++p)
          for (int64_t oy = 0; oy < g.oh; ++oy) {
            const T* r0 = px + p * g.H * g.W + 2 * oy * g.W;
            max2x2_row<T, false>(r0, r0 + g.W, g.ow, po + p * L + oy * g.ow, nullptr);
          }
      });
      return;
    }
    parallel_for(g.planes, pool_grain(g), [&](int64_t p0, int64_t p1) {
      std::vector<int64_t> best(static_cast<size_t>(sub * L));
      std::vector<T> scratch(same ? 0 : static_cast<size_t>(sub * L));
      for (int64_t q0 = p0; q0 < p1; q0 += sub) {
        const int64_t q1 = std::min(p1, q0 + sub);
        // The maxima go straight to the output when it is x's own max pool.
        T* bv = same ? po + q0 * L : scratch.data();
        argmax_planes(px, q0, q1, g, best.data(), bv);
        if (!same)
          for (int64_t p = q0; p < q1; ++p) {
            const T* vp = pv + p * g.H * g.W;
            const int64_t* bp = best.data() + (p - q0) * L;
            T* op = po + p * L;
            for (int64_t i = 0; i < L; ++i) op[i] = vp[bp[i]];
          }
      }
    });
  });
}
std::vector<Tensor> MaxPoolSelect_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  const auto& a = out->attrs.ints;
  return {max_pool2d_route(g, input(out, 1), {a[0], a[1]}, {a[2], a[3]}, {a[4], a[5]}, {a[6], a[7]}), Tensor()};
}

Tensor max_pool2d_route(const Tensor& g, const Tensor& x, const std::vector<int64_t>& kernel,
                        const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                        const std::vector<int64_t>& dilation) {
  check_pool4("max_pool2d_backward", x);
  const auto [oh, ow] = window_output_size("max_pool2d_backward", x.shape(), kernel, stride, padding, dilation);
  if (g.shape() != pooled_shape(x.shape(), oh, ow) || g.dtype() != x.dtype())
    throw ShapeError("max_pool2d_backward: gradient of shape " + shape_str(g.shape()) +
                     " does not match the pooled shape " + shape_str(pooled_shape(x.shape(), oh, ow)));
  const Window w = check_window("max_pool2d_backward", kernel, stride, padding, dilation);
  return make_op(OpKind::MaxPoolRoute, {g, x}, x.shape(), x.dtype(), window_attrs(w));
}
void MaxPoolRoute_forward(Node& out) {
  alloc_output(out);
  const Node& gn = in(out, 0);
  const Node& x = in(out, 1);
  const PoolGeom g = pool_geom(window_of(out.attrs.ints), x.shape);
  DAGRAD_DISPATCH_FLOAT(out.dtype, "max_pool2d_backward", {
    const T* pg = gn.data<T>();
    const T* px = x.data<T>();
    T* po = out.data<T>();
    const int64_t L = g.oh * g.ow, sub = sub_planes(L);
    if (two_by_two(g.w)) {
      parallel_for(g.planes, pool_grain(g), [&](int64_t p0, int64_t p1) {
        std::vector<T> m(static_cast<size_t>(g.ow));
        std::vector<int32_t> k(static_cast<size_t>(g.ow));
        for (int64_t p = p0; p < p1; ++p) {
          const T* plane = px + p * g.H * g.W;
          T* op = po + p * g.H * g.W;
          std::fill(op, op + g.H * g.W, T(0));
          for (int64_t oy = 0; oy < g.oh; ++oy) {
            const int64_t r0 = 2 * oy * g.W;
            max2x2_row<T, true>(plane + r0, plane + r0 + g.W, g.ow, m.data(), k.data());
            const T* gp = pg + p * L + oy * g.ow;
            for (int64_t ox = 0; ox < g.ow; ++ox)  // 0 + g, as the general path adds it
              op[r0 + 2 * ox + (k[ox] >> 1) * g.W + (k[ox] & 1)] += gp[ox];
          }
        }
      });
      return;
    }
    parallel_for(g.planes, pool_grain(g), [&](int64_t p0, int64_t p1) {
      std::vector<int64_t> best(static_cast<size_t>(sub * L));
      std::vector<T> bv(static_cast<size_t>(sub * L));
      for (int64_t q0 = p0; q0 < p1; q0 += sub) {
        const int64_t q1 = std::min(p1, q0 + sub);
        argmax_planes(px, q0, q1, g, best.data(), bv.data());
        for (int64_t p = q0; p < q1; ++p) {
          const T* gp = pg + p * L;
          const int64_t* bp = best.data() + (p - q0) * L;
          T* op = po + p * g.H * g.W;
          std::fill(op, op + g.H * g.W, T(0));
          for (int64_t i = 0; i < L; ++i) op[bp[i]] += gp[i];  // in output order
        }
      }
    });
  });
}
std::vector<Tensor> MaxPoolRoute_backward(const Tensor& out, const Tensor& gg, const std::vector<bool>&) {
  const auto& a = out->attrs.ints;
  return {max_pool2d_select(gg, input(out, 1), {a[0], a[1]}, {a[2], a[3]}, {a[4], a[5]}, {a[6], a[7]}), Tensor()};
}

namespace {
// The divisor of window (oy, ox): the whole window with count_include_pad (padding is at most
// half the kernel and there is no ceil mode, so no window reaches past the padding), else the
// input elements it covers.
int64_t avg_divisor(const PoolGeom& g, bool include_pad, int64_t oy, int64_t ox) {
  const Window& w = g.w;
  if (include_pad) return w.kh * w.kw;
  return (g.ty[oy].k1 - g.ty[oy].k0) * (g.tx[ox].k1 - g.tx[ox].k0);
}
}  // namespace

Tensor avg_pool2d_direct(const Tensor& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                         const std::vector<int64_t>& padding, bool count_include_pad) {
  check_pool4("avg_pool2d", x);
  if (!is_floating(x.dtype())) throw TypeError("avg_pool2d: input must be floating point");
  const auto [oh, ow] = window_output_size("avg_pool2d", x.shape(), kernel, stride, padding, {1, 1});
  const Window w = check_window("avg_pool2d", kernel, stride, padding, {1, 1});
  checked_mul(w.kh, w.kw, "avg_pool2d");  // the divisor of a window
  OpAttrs a = window_attrs(w);
  a.ints.push_back(count_include_pad ? 1 : 0);
  return make_op(OpKind::AvgPool, {x}, pooled_shape(x.shape(), oh, ow), x.dtype(), std::move(a));
}
void AvgPool_forward(Node& out) {
  alloc_output(out);
  const Node& x = in(out, 0);
  const PoolGeom g = pool_geom(window_of(out.attrs.ints), x.shape);
  const bool include_pad = out.attrs.ints[8] != 0;
  DAGRAD_DISPATCH_FLOAT(out.dtype, "avg_pool2d", {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    parallel_for(g.planes, pool_grain(g), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const T* xp = px + p * g.H * g.W;
        T* op = po + p * g.oh * g.ow;
        for (int64_t oy = 0; oy < g.oh; ++oy)
          for (int64_t ox = 0; ox < g.ow; ++ox) {
            T s = 0;  // the window in row-major order
            const int64_t y0 = oy * g.w.sh - g.w.ph, x0 = ox * g.w.sw - g.w.pw;
            const Taps ty = g.ty[oy], tx = g.tx[ox];
            for (int64_t iy = y0 + ty.k0; iy < y0 + ty.k1; ++iy)
              for (int64_t ix = x0 + tx.k0; ix < x0 + tx.k1; ++ix) s += xp[iy * g.W + ix];
            op[oy * g.ow + ox] = s / static_cast<T>(avg_divisor(g, include_pad, oy, ox));
          }
      }
    });
  });
}
std::vector<Tensor> AvgPool_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  const auto& a = out->attrs.ints;
  const Tensor x = input(out, 0);
  return {avg_pool2d_adjoint(g, {x.shape()[2], x.shape()[3]}, {a[0], a[1]}, {a[2], a[3]}, {a[4], a[5]}, a[8] != 0)};
}

Tensor avg_pool2d_adjoint(const Tensor& g, const std::vector<int64_t>& size, const std::vector<int64_t>& kernel,
                          const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                          bool count_include_pad) {
  check_pool4("avg_pool2d_backward", g);
  if (size.size() != 2) throw ValueError("avg_pool2d_backward: size must have 2 values");
  const Shape in_shape = {g.shape()[0], g.shape()[1], size[0], size[1]};
  const auto [oh, ow] = window_output_size("avg_pool2d_backward", in_shape, kernel, stride, padding, {1, 1});
  if (g.shape()[2] != oh || g.shape()[3] != ow)
    throw ShapeError("avg_pool2d_backward: gradient of shape " + shape_str(g.shape()) + " does not match the input " +
                     shape_str(in_shape));
  const Window w = check_window("avg_pool2d_backward", kernel, stride, padding, {1, 1});
  checked_mul(w.kh, w.kw, "avg_pool2d_backward");
  OpAttrs a = window_attrs(w);
  a.ints.push_back(count_include_pad ? 1 : 0);
  return make_op(OpKind::AvgPoolBackward, {g}, in_shape, g.dtype(), std::move(a));
}
void AvgPoolBackward_forward(Node& out) {
  alloc_output(out);
  const Node& gn = in(out, 0);
  const PoolGeom g = pool_geom(window_of(out.attrs.ints), out.shape);
  const bool include_pad = out.attrs.ints[8] != 0;
  DAGRAD_DISPATCH_FLOAT(out.dtype, "avg_pool2d_backward", {
    const T* pg = gn.data<T>();
    T* po = out.data<T>();
    parallel_for(g.planes, pool_grain(g), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const T* gp = pg + p * g.oh * g.ow;
        T* op = po + p * g.H * g.W;
        std::fill(op, op + g.H * g.W, T(0));
        for (int64_t oy = 0; oy < g.oh; ++oy)
          for (int64_t ox = 0; ox < g.ow; ++ox) {
            const T share = gp[oy * g.ow + ox] / static_cast<T>(avg_divisor(g, include_pad, oy, ox));
            const int64_t y0 = oy * g.w.sh - g.w.ph, x0 = ox * g.w.sw - g.w.pw;
            const Taps ty = g.ty[oy], tx = g.tx[ox];
            for (int64_t iy = y0 + ty.k0; iy < y0 + ty.k1; ++iy)
              for (int64_t ix = x0 + tx.k0; ix < x0 + tx.k1; ++ix) op[iy * g.W + ix] += share;
          }
      }
    });
  });
}
std::vector<Tensor> AvgPoolBackward_backward(const Tensor& out, const Tensor& gg, const std::vector<bool>&) {
  const auto& a = out->attrs.ints;
  return {avg_pool2d_direct(gg, {a[0], a[1]}, {a[2], a[3]}, {a[4], a[5]}, a[8] != 0)};
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

// ---- convolution (direct primitives; unfold + matmul for groups > 1) and pooling ------------------
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
  // groups == 1: one node and its two gradient nodes (Note [Direct convolution]).
  if (groups == 1) return conv2d_direct(x, w, b, check_window("conv2d", {kh, kw}, stride, padding, dilation));
  Tensor cols = unfold(x, {kh, kw}, stride, padding, dilation);  // (N, C*kh*kw, L)
  const int64_t L = cols.shape()[2], ckk = cols.shape()[1];
  Tensor cg = reshape(cols, {N, groups, ckk / groups, L});
  Tensor wg = reshape(w, {groups, O / groups, ckk / groups});
  Tensor y = reshape(matmul(wg, cg), {N, O, oh, ow});  // (N, groups, O/groups, L) as (N, O, oh, ow)
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

// Direct primitives (Note [Direct pooling]): the gradient goes to the first maximum of each
// window; padding is -inf.
Tensor max_pool2d(const Tensor& x, const std::vector<int64_t>& k, const std::vector<int64_t>& s,
                  const std::vector<int64_t>& p, const std::vector<int64_t>& d) {
  check_pool_padding("max_pool2d", k, p);
  Tensor v = pool_input(x, "max_pool2d");
  Tensor y = max_pool2d_select(v, v, k, s, p, d);
  return x.ndim() == 3 ? squeeze(y, 0) : y;
}
Tensor avg_pool2d(const Tensor& x, const std::vector<int64_t>& k, const std::vector<int64_t>& s,
                  const std::vector<int64_t>& p, bool count_include_pad) {
  check_pool_padding("avg_pool2d", k, p);
  Tensor v = pool_input(x, "avg_pool2d");
  Tensor y = avg_pool2d_direct(v, k, s, p, count_include_pad);
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
