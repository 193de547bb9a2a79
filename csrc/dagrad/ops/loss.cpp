// Fused losses: cross-entropy of (N, C) logits against N class indices as one forward node and
// one backward node (the general cross_entropy in composite.cpp, with weights, label smoothing,
// probability targets and K-dimensional inputs, is a composite of ordinary ops).
#include <algorithm>
#include <cmath>
#include <vector>

#include "dagrad/kernels/dispatch.h"
#include "dagrad/kernels/elementwise_fns.h"
#include "dagrad/kernels/parallel.h"
#include "dagrad/ops.h"
#include "dagrad/ops/composite.h"

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

// Note [Cross-entropy exps]: each logit's exp(x - max) is computed once, into e (the backward's
// output row, or a row of scratch in forward), and summed in double. float32 goes through
// fn::exp_f32, whose loop vectorises (no libm call; within 1 ulp), float64 through std::exp.
// A row's result depends on that row alone, so the bits do not depend on the thread count.
// Returns sum(e); m is the row's maximum.
// The maximum and the sum run four independent chains in a fixed order (k mod 4), so they
// pipeline; the order depends on C alone.
template <class T>
inline double row_exps(const T* row, int64_t C, T& m, T* e) {
  T m4[4] = {row[0], row[0], row[0], row[0]};
  int64_t k = 0;
  for (; k + 4 <= C; k += 4)
    for (int j = 0; j < 4; ++j) m4[j] = row[k + j] > m4[j] ? row[k + j] : m4[j];
  for (; k < C; ++k) m4[0] = row[k] > m4[0] ? row[k] : m4[0];
  m = m4[0];
  for (int j = 1; j < 4; ++j) m = m4[j] > m ? m4[j] : m;
  const T mm = m;
  for (k = 0; k < C; ++k) e[k] = fn::Exp{}(row[k] - mm);
  double s4[4] = {0, 0, 0, 0};
  for (k = 0; k + 4 <= C; k += 4)
    for (int j = 0; j < 4; ++j) s4[j] += static_cast<double>(e[k + j]);
  for (; k < C; ++k) s4[0] += static_cast<double>(e[k]);
  return (s4[0] + s4[1]) + (s4[2] + s4[3]);
}

// Targets are range-checked when the op is recorded (composite.cpp, check_targets); a run
// checks again, since a target tensor may be written in place in between (and is read here
// as an index).
void check_target(int64_t t, int64_t C, int64_t i) {
  if (t < 0 || t >= C)
    throw IndexError("cross_entropy: target " + std::to_string(t) + " is out of bounds for " + std::to_string(C) +
                     " classes (at position " + std::to_string(i) + ")");
}

// Calls f(i, row, m, s, e) for each row i of x whose target counts, in parallel over rows: row
// points at the row's logits, m is its maximum, e its exps (Note [Cross-entropy exps]) and
// s = sum(e) in double. e is row i of exps when given (the caller's buffer of x's shape),
// else a row of scratch.
template <class T, class F>
void for_counted_rows(const Node& x, const int64_t* pt, int64_t ignore, T* exps, const F& f) {
  const int64_t N = x.shape[0], C = x.shape[1];
  const T* px = x.data<T>();
  parallel_for(N, std::max<int64_t>(1, (1 << 15) / std::max<int64_t>(1, C)), [&](int64_t r0, int64_t r1) {
    std::vector<T> scratch(exps ? 0 : static_cast<size_t>(C));
    for (int64_t i = r0; i < r1; ++i) {
      if (pt[i] == ignore) continue;
      check_target(pt[i], C, i);
      const T* row = px + i * C;
      T* e = exps ? exps + i * C : scratch.data();
      T m;
      const double s = row_exps(row, C, m, e);
      f(i, row, m, s, e);
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
  for_counted_rows<T>(x, pt, a.ignore, nullptr, [&](int64_t i, const T* row, T m, double s, const T*) {
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
  for_counted_rows<T>(x, pt, a.ignore, po, [&](int64_t i, const T*, T, double s, T* e) {
    // e is row i of the output, holding the row's exps: overwritten in place.
    const double inv = 1.0 / s, p_target = static_cast<double>(e[pt[i]]) * inv;
    for (int64_t k = 0; k < C; ++k) e[k] = static_cast<T>(scale * (static_cast<double>(e[k]) * inv));
    e[pt[i]] = static_cast<T>(scale * (p_target - 1.0));
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

// =============================================================================================
// Composites: no backward of their own. Built only from the primitives above, so their
// gradients (of any order) follow from the primitives' backward rules. Where a composition
// decides the gradient at a kink, or keeps a branch finite so that a zero gradient times an
// infinite local derivative cannot make NaN, a NOTE says so.
// =============================================================================================

namespace dagrad {
using namespace composite;

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
void check_pair(const char* op, const Tensor& a, const Tensor& t) { broadcast_shapes(a.shape(), t.shape(), op); }
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
                          ? " (batch size mismatch)"
                          : ""));
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
