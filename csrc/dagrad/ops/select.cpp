// Selection and comparison ops: comparisons (bool results, no gradient), where, maximum,
// minimum and clamp. Their gradients are routed with masks built from the same comparisons.
#include <cmath>
#include <limits>
#include <optional>

#include "dagrad/kernels/dispatch.h"
#include "dagrad/ops.h"
#include "dagrad/ops/drivers.h"

namespace dagrad {

namespace {

Tensor compare(OpKind op, const Tensor& a, const Tensor& b) {
  Shape shape = broadcast_shapes(a.shape(), b.shape(), op_name(op));
  DType dt = result_type(a.dtype(), a.ndim() == 0, b.dtype(), b.ndim() == 0);
  Tensor x = a.dtype() == dt ? a : cast(a, dt);
  Tensor y = b.dtype() == dt ? b : cast(b, dt);
  Tensor t = make_op(op, {x, y}, std::move(shape), DType::Bool);
  t->requires_grad = false;
  return t;
}

template <class F>
void compare_forward(Node& out, const F& f) {
  DAGRAD_DISPATCH_ALL(kin(out, 0).dtype, (binary_forward<T, bool>(out, [&](T x, T y) { return f(x, y); })));
}

std::vector<Tensor> no_grad_rule(const Tensor&, const Tensor&, const std::vector<bool>&) {
  return {Tensor(), Tensor()};
}

// A 0/1 mask of the gradient's dtype.
Tensor mask(const Tensor& cond, DType dt) { return cast(cond, dt); }

}  // namespace

// ---- comparisons ----------------------------------------------------------------------------
Tensor eq(const Tensor& a, const Tensor& b) { return compare(OpKind::Eq, a, b); }
Tensor ne(const Tensor& a, const Tensor& b) { return compare(OpKind::Ne, a, b); }
Tensor lt(const Tensor& a, const Tensor& b) { return compare(OpKind::Lt, a, b); }
Tensor le(const Tensor& a, const Tensor& b) { return compare(OpKind::Le, a, b); }
Tensor gt(const Tensor& a, const Tensor& b) { return compare(OpKind::Gt, a, b); }
Tensor ge(const Tensor& a, const Tensor& b) { return compare(OpKind::Ge, a, b); }
void Eq_forward(Node& out) {
  compare_forward(out, [](auto x, auto y) { return x == y; });
}
void Ne_forward(Node& out) {
  compare_forward(out, [](auto x, auto y) { return x != y; });
}
void Lt_forward(Node& out) {
  compare_forward(out, [](auto x, auto y) { return x < y; });
}
void Le_forward(Node& out) {
  compare_forward(out, [](auto x, auto y) { return x <= y; });
}
void Gt_forward(Node& out) {
  compare_forward(out, [](auto x, auto y) { return x > y; });
}
void Ge_forward(Node& out) {
  compare_forward(out, [](auto x, auto y) { return x >= y; });
}
std::vector<Tensor> Eq_backward(const Tensor& o, const Tensor& g, const std::vector<bool>& n) {
  return no_grad_rule(o, g, n);
}
std::vector<Tensor> Ne_backward(const Tensor& o, const Tensor& g, const std::vector<bool>& n) {
  return no_grad_rule(o, g, n);
}
std::vector<Tensor> Lt_backward(const Tensor& o, const Tensor& g, const std::vector<bool>& n) {
  return no_grad_rule(o, g, n);
}
std::vector<Tensor> Le_backward(const Tensor& o, const Tensor& g, const std::vector<bool>& n) {
  return no_grad_rule(o, g, n);
}
std::vector<Tensor> Gt_backward(const Tensor& o, const Tensor& g, const std::vector<bool>& n) {
  return no_grad_rule(o, g, n);
}
std::vector<Tensor> Ge_backward(const Tensor& o, const Tensor& g, const std::vector<bool>& n) {
  return no_grad_rule(o, g, n);
}

// ---- where ------------------------------------------------------------------------------------
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b) {
  Shape shape = broadcast_shapes(broadcast_shapes(cond.shape(), a.shape(), "where"), b.shape(), "where");
  DType dt = result_type(a.dtype(), a.ndim() == 0, b.dtype(), b.ndim() == 0);
  Tensor c = cond.dtype() == DType::Bool ? cond : cast(cond, DType::Bool);
  Tensor x = a.dtype() == dt ? a : cast(a, dt);
  Tensor y = b.dtype() == dt ? b : cast(b, dt);
  return make_op(OpKind::Where, {c, x, y}, std::move(shape), dt);
}
void Where_forward(Node& out) { DAGRAD_DISPATCH_ALL(out.dtype, where_forward<T>(out)); }
// NOTE: the branch not taken gets an exact zero, but a zero times an infinite local
// derivative is still NaN; composites that rely on where keep both branches finite.
std::vector<Tensor> Where_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  Tensor c = input(out, 0), zero = scalar_like(g, 0.0);
  return {Tensor(), needs[1] ? where(c, g, zero) : Tensor(), needs[2] ? where(c, zero, g) : Tensor()};
}

// ---- maximum, minimum -------------------------------------------------------------------------
namespace {
Tensor extremum(OpKind op, const Tensor& a, const Tensor& b) {
  Shape shape = broadcast_shapes(a.shape(), b.shape(), op_name(op));
  DType dt = result_type(a.dtype(), a.ndim() == 0, b.dtype(), b.ndim() == 0);
  // bool: computed on int64 and cast back (max is or, min is and), as PyTorch keeps bool.
  if (dt == DType::Bool) return cast(extremum(op, cast(a, DType::Int64), cast(b, DType::Int64)), DType::Bool);
  Tensor x = a.dtype() == dt ? a : cast(a, dt);
  Tensor y = b.dtype() == dt ? b : cast(b, dt);
  return make_op(op, {x, y}, std::move(shape), dt);
}
// NOTE: where a == b the gradient is split evenly between the two, as in PyTorch.
std::vector<Tensor> extremum_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs, bool is_max) {
  Tensor a = input(out, 0), b = input(out, 1);
  Tensor wins = is_max ? gt(a, b) : lt(a, b), loses = is_max ? lt(a, b) : gt(a, b);
  Tensor half = mul(mask(eq(a, b), g.dtype()), scalar_like(g, 0.5));
  return {needs[0] ? mul(g, add(mask(wins, g.dtype()), half)) : Tensor(),
          needs[1] ? mul(g, add(mask(loses, g.dtype()), half)) : Tensor()};
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return extremum(OpKind::Maximum, a, b); }
void Maximum_forward(Node& out) {
  // NaN propagates, as in numpy and PyTorch.
  DAGRAD_DISPATCH_NUMERIC(out.dtype, "maximum",
                          binary_forward<T>(out, [](T x, T y) { return (x > y || x != x) ? x : y; }));
}
std::vector<Tensor> Maximum_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  return extremum_backward(out, g, needs, true);
}

Tensor minimum(const Tensor& a, const Tensor& b) { return extremum(OpKind::Minimum, a, b); }
void Minimum_forward(Node& out) {
  DAGRAD_DISPATCH_NUMERIC(out.dtype, "minimum",
                          binary_forward<T>(out, [](T x, T y) { return (x < y || x != x) ? x : y; }));
}
std::vector<Tensor> Minimum_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  return extremum_backward(out, g, needs, false);
}

// ---- clamp (attrs.ints = {has_min, has_max}; attrs.scalar = min, attrs.scalar2 = max) ----------
Tensor clamp(const Tensor& x, std::optional<Scalar> lo, std::optional<Scalar> hi) {
  if (!lo && !hi) throw ValueError("clamp: at least one of min and max must be given");
  DType dt = x.dtype();
  if (lo) dt = result_type(dt, lo->kind());
  if (hi) dt = promote_types(dt, result_type(x.dtype(), hi->kind()));
  if (dt == DType::Bool) return cast(clamp(cast(x, DType::Int64), lo, hi), DType::Bool);
  OpAttrs attrs;
  attrs.ints = {lo ? 1 : 0, hi ? 1 : 0};
  attrs.scalar = lo.value_or(Scalar());
  attrs.scalar2 = hi.value_or(Scalar());
  return make_op(OpKind::Clamp, {dt == x.dtype() ? x : cast(x, dt)}, x.shape(), dt, std::move(attrs));
}
void Clamp_forward(Node& out) {
  const bool has_lo = out.attrs.ints[0], has_hi = out.attrs.ints[1];
  DAGRAD_DISPATCH_NUMERIC(out.dtype, "clamp", {
    // Exact for int64 (a float bound made the result float, so integer outputs have integer bounds).
    // A missing bound is -inf or +inf for floats (lowest()/max() would clamp an infinity).
    constexpr T kLow =
        std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity() : std::numeric_limits<T>::lowest();
    constexpr T kHigh =
        std::numeric_limits<T>::has_infinity ? std::numeric_limits<T>::infinity() : std::numeric_limits<T>::max();
    const T lo = has_lo ? out.attrs.scalar.as<T>() : kLow;
    const T hi = has_hi ? out.attrs.scalar2.as<T>() : kHigh;
    if (lo != lo || hi != hi) {  // a NaN bound makes every element NaN, as in PyTorch
      const T nan = lo != lo ? lo : hi;
      unary_forward<T>(out, [nan](T) { return nan; });
      return;
    }
    // min(max(x, lo), hi): with lo > hi everything becomes hi, as in PyTorch.
    unary_forward<T>(out, [lo, hi](T v) {
      if (v != v) return v;
      T r = v < lo ? lo : v;
      return r > hi ? hi : r;
    });
  });
}
// NOTE: the gradient passes where lo <= x <= hi, boundaries included, as in PyTorch.
std::vector<Tensor> Clamp_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  Tensor x = input(out, 0);
  Tensor m = scalar_like(g, 1.0);
  if (out->attrs.ints[0]) m = mul(m, mask(ge(x, scalar_like(x, out->attrs.scalar)), g.dtype()));
  if (out->attrs.ints[1]) m = mul(m, mask(le(x, scalar_like(x, out->attrs.scalar2)), g.dtype()));
  return {mul(g, m)};
}

}  // namespace dagrad
