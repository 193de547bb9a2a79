// Neural-network primitives: linear (x @ W^T + b in one node), unfold / fold (im2col and its
// adjoint), from which conv1d and conv2d are composed, and direct max / average pooling
// (Note [Direct pooling]).
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
      for (int64_t p = p0; p < p1; ++p) {
        const T* plane = px + p * H * W;
        for (int64_t ki = 0; ki < w.kh; ++ki)
          for (int64_t kj = 0; kj < w.kw; ++kj) {
            T* row = po + (p * w.kh * w.kw + ki * w.kw + kj) * L;
            const ColumnRange cr = column_range(w, kj, W, ow);
            for (int64_t oy = 0; oy < oh; ++oy) {
              T* dst = row + oy * ow;
              const int64_t iy = oy * w.sh - w.ph + ki * w.dh;
              if (iy < 0 || iy >= H) {
                std::fill(dst, dst + ow, pad);
                continue;
              }
              const T* src = plane + iy * W + cr.ix0;  // the input under output column cr.ox0
              std::fill(dst, dst + cr.ox0, pad);
              if (w.sw == 1)
                std::copy(src, src + (cr.ox1 - cr.ox0), dst + cr.ox0);
              else
                for (int64_t ox = cr.ox0; ox < cr.ox1; ++ox) dst[ox] = src[(ox - cr.ox0) * w.sw];
              std::fill(dst + cr.ox1, dst + ow, pad);
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
    parallel_for(N * C, plane_grain(double(w.kh) * double(w.kw) * double(L)), [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        T* plane = po + p * H * W;
        std::fill(plane, plane + H * W, T(0));
        for (int64_t ki = 0; ki < w.kh; ++ki)
          for (int64_t kj = 0; kj < w.kw; ++kj) {
            const T* row = pc + (p * w.kh * w.kw + ki * w.kw + kj) * L;
            const ColumnRange cr = column_range(w, kj, W, ow);
            for (int64_t oy = 0; oy < oh; ++oy) {
              const int64_t iy = oy * w.sh - w.ph + ki * w.dh;
              if (iy < 0 || iy >= H) continue;
              const T* src = row + oy * ow;
              T* dst = plane + iy * W + cr.ix0;
              // Each plane element gets its terms in the same (ki, kj, oy, ox) order as before.
              if (w.sw == 1)
                for (int64_t ox = cr.ox0; ox < cr.ox1; ++ox) dst[ox - cr.ox0] += src[ox];
              else
                for (int64_t ox = cr.ox0; ox < cr.ox1; ++ox) dst[(ox - cr.ox0) * w.sw] += src[ox];
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

// ---- convolution (unfold + matmul) and pooling (direct primitives) ---------------------------------
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
