// Fused losses: cross-entropy of (N, C) logits against N class indices as one forward node and
// one backward node (the general cross_entropy in composite.cpp, with weights, label smoothing,
// probability targets and K-dimensional inputs, is a composite of ordinary ops).
#include <algorithm>
#include <cmath>

#include "dagrad/kernels/dispatch.h"
#include "dagrad/kernels/parallel.h"
#include "dagrad/ops.h"

namespace dagrad {

namespace {

// attrs.ints = {ignore_index, 1 for a sum and 0 for a mean over the rows that count}.
struct CeAttrs {
  int64_t ignore;
  bool sum;
};
CeAttrs ce_attrs(const Node& n) { return {n.attrs.ints[0], n.attrs.ints[1] != 0}; }

int64_t counted_rows(const int64_t* t, int64_t n, int64_t ignore) {
  int64_t c = 0;
  for (int64_t i = 0; i < n; ++i) c += t[i] != ignore;
  return c;
}

// Row maximum and sum of exp(x - max), accumulated in double.
template <class T>
inline double row_sumexp(const T* row, int64_t C, T& m) {
  m = row[0];
  for (int64_t k = 1; k < C; ++k) m = row[k] > m ? row[k] : m;
  double s = 0;
  for (int64_t k = 0; k < C; ++k) s += std::exp(static_cast<double>(row[k] - m));
  return s;
}

// Targets are range-checked when the op is recorded (composite.cpp, check_targets); a run
// checks again, since a target tensor may be written in place in between (and is read here
// as an index).
void check_target(int64_t t, int64_t C, int64_t i) {
  if (t < 0 || t >= C)
    throw IndexError("cross_entropy: target " + std::to_string(t) + " is out of bounds for " +
                     std::to_string(C) + " classes (at position " + std::to_string(i) + ")");
}

// Calls f(i, row, m, s) for each row i of x whose target counts, in parallel over rows: row
// points at the row's logits, m is its maximum and s = sum(exp(row - m)) in double.
template <class T, class F>
void for_counted_rows(const Node& x, const int64_t* pt, int64_t ignore, const F& f) {
  const int64_t N = x.shape[0], C = x.shape[1];
  const T* px = x.data<T>();
  parallel_for(N, std::max<int64_t>(1, 4096 / std::max<int64_t>(1, C)), [&](int64_t r0, int64_t r1) {
    for (int64_t i = r0; i < r1; ++i) {
      if (pt[i] == ignore) continue;
      check_target(pt[i], C, i);
      const T* row = px + i * C;
      T m;
      const double s = row_sumexp(row, C, m);
      f(i, row, m, s);
    }
  });
}

template <class T>
void ce_forward(Node& out) {
  const Node& x = in(out, 0);
  const Node& tn = in(out, 1);
  const CeAttrs a = ce_attrs(out);
  const int64_t N = x.shape[0];
  const int64_t* pt = tn.data<int64_t>();
  std::vector<double> row_loss(static_cast<size_t>(N), 0.0);
  for_counted_rows<T>(x, pt, a.ignore, [&](int64_t i, const T* row, T m, double s) {
    row_loss[static_cast<size_t>(i)] = std::log(s) - static_cast<double>(row[pt[i]] - m);
  });
  double total = 0;  // in row order: the same bits at any thread count
  for (double l : row_loss) total += l;
  if (!a.sum) total /= static_cast<double>(counted_rows(pt, N, a.ignore));
  alloc_output(out);
  out.data<T>()[0] = static_cast<T>(total);
}

// d loss / d x[i, j] = g * scale * (softmax(x)[i, j] - [j == t_i]) on the rows that count.
template <class T>
void ce_backward(Node& out) {
  const Node& x = in(out, 0);
  const Node& tn = in(out, 1);
  const Node& gn = in(out, 2);
  const CeAttrs a = ce_attrs(out);
  const int64_t N = x.shape[0], C = x.shape[1];
  const int64_t* pt = tn.data<int64_t>();
  double scale = static_cast<double>(gn.data<T>()[0]);
  if (!a.sum) scale /= static_cast<double>(counted_rows(pt, N, a.ignore));
  alloc_output(out);
  T* po = out.data<T>();
  for (int64_t i = 0; i < N; ++i)  // ignored rows get no gradient
    if (pt[i] == a.ignore) std::fill(po + i * C, po + (i + 1) * C, T(0));
  for_counted_rows<T>(x, pt, a.ignore, [&](int64_t i, const T* row, T m, double s) {
    T* orow = po + i * C;
    const double inv = 1.0 / s;
    for (int64_t k = 0; k < C; ++k)
      orow[k] = static_cast<T>(scale * (std::exp(static_cast<double>(row[k] - m)) * inv - (k == pt[i] ? 1.0 : 0.0)));
  });
}

}  // namespace

Tensor cross_entropy_rows(const Tensor& logits, const Tensor& target, int64_t ignore_index, bool sum) {
  if (logits.ndim() != 2 || target.ndim() != 1 || target.shape()[0] != logits.shape()[0] ||
      target.dtype() != DType::Int64 || !is_floating(logits.dtype()))
    throw ShapeError("cross_entropy_rows: expected float (N, C) logits and int64 (N,) targets, got " +
                     shape_str(logits.shape()) + " and " + shape_str(target.shape()));
  OpAttrs attrs;
  attrs.ints = {ignore_index, sum ? 1 : 0};
  return make_op(OpKind::CrossEntropy, {logits, target}, {}, logits.dtype(), std::move(attrs));
}
void CrossEntropy_forward(Node& out) { DAGRAD_DISPATCH_FLOAT(out.dtype, "cross_entropy", ce_forward<T>(out)); }
// One fused node, unless the backward graph is itself differentiated (create_graph): then the
// same gradient from differentiable ops, with the one-hot targets and row weights as constants.
std::vector<Tensor> CrossEntropy_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  Tensor x = input(out, 0), t = input(out, 1);
  if (!GradMode::is_enabled()) {
    OpAttrs attrs;
    attrs.ints = out->attrs.ints;
    return {make_op(OpKind::CrossEntropyBackward, {x, t, g}, x.shape(), x.dtype(), std::move(attrs)), Tensor()};
  }
  const CeAttrs a = ce_attrs(*out.node());
  const int64_t N = x.shape()[0], C = x.shape()[1];
  realize_now({t});  // Note [Values while recording]
  const int64_t* pt = t->data<int64_t>();
  const double count = a.sum ? 1.0 : static_cast<double>(counted_rows(pt, N, a.ignore));
  std::vector<double> onehot(static_cast<size_t>(N * C), 0.0), weight(static_cast<size_t>(N), 0.0);
  for (int64_t i = 0; i < N; ++i) {
    if (pt[i] == a.ignore) continue;
    check_target(pt[i], C, i);
    onehot[static_cast<size_t>(i * C + pt[i])] = 1.0;
    weight[static_cast<size_t>(i)] = 1.0 / count;
  }
  Tensor oh = cast(from_data(onehot.data(), {N, C}, DType::Float64), x.dtype());
  Tensor w = cast(from_data(weight.data(), {N, 1}, DType::Float64), x.dtype());
  return {mul(mul(sub(softmax(x, 1), oh), w), g), Tensor()};
}

void CrossEntropyBackward_forward(Node& out) {
  DAGRAD_DISPATCH_FLOAT(out.dtype, "cross_entropy_backward", ce_backward<T>(out));
}
// Only made with grad recording off (see CrossEntropy_backward), so never differentiated.
std::vector<Tensor> CrossEntropyBackward_backward(const Tensor&, const Tensor&, const std::vector<bool>&) {
  throw RuntimeError("internal: cross_entropy_backward is not differentiable; use create_graph=True");
}

}  // namespace dagrad
