// Elementwise ops: shape and dtype inference, forward kernel call and backward rule, side by
// side. Binary ops broadcast like numpy; their backward rules return gradients of the output's
// shape, and autodiff sums them back to each input's shape (Note [Accumulation order]).
#include <cmath>

#include "dagrad/kernels/dispatch.h"
#include "dagrad/kernels/elementwise_fns.h"
#include "dagrad/kernels/parallel.h"
#include "dagrad/kernels/strided.h"
#include "dagrad/ops.h"
#include "dagrad/ops/composite.h"
#include "dagrad/ops/drivers.h"

namespace dagrad {

namespace {

// --- inference -------------------------------------------------------------------------

// Arithmetic on bool counts as int64; true division of integers gives float32, as PyTorch.
Tensor binary(OpKind op, const Tensor& a, const Tensor& b) {
  const char* name = op_name(op);
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  DType dt = result_type(a.dtype(), a.ndim() == 0, b.dtype(), b.ndim() == 0);
  // As PyTorch: subtracting with a bool operand is an error (is it - or xor?).
  if (op == OpKind::Sub && (a.dtype() == DType::Bool || b.dtype() == DType::Bool))
    throw TypeError(std::string("sub: subtraction with a bool tensor or number is not supported, got ") +
                    dtype_name(a.dtype()) + " and " + dtype_name(b.dtype()) + "; use logical_not or ~");
  if (dt == DType::Bool) {
    // As PyTorch: bool + bool is a logical or, bool * bool an and.
    if (op == OpKind::Add || op == OpKind::Mul)
      return cast(binary(op, cast(a, DType::Int64), cast(b, DType::Int64)), DType::Bool);
    dt = DType::Int64;
  }
  if (op == OpKind::Div && !is_floating(dt)) dt = DType::Float32;
  Tensor x = a.dtype() == dt ? a : cast(a, dt);
  Tensor y = b.dtype() == dt ? b : cast(b, dt);
  return make_op(op, {x, y}, std::move(shape), dt);
}

// Transcendental functions of integers are computed in float32, as PyTorch.
Tensor float_unary(OpKind op, const Tensor& x) {
  Tensor v = is_floating(x.dtype()) ? x : cast(x, DType::Float32);
  return make_op(op, {v}, v.shape(), v.dtype());
}

Tensor numeric_unary(OpKind op, const Tensor& x) {
  if (x.dtype() == DType::Bool) throw TypeError(std::string(op_name(op)) + ": not supported for bool tensors");
  return make_op(op, {x}, x.shape(), x.dtype());
}

template <class Src, class Dst>
void cast_loop(const Node& x, Node& out) {
  const Src* s = x.data<Src>();
  Dst* d = out.data<Dst>();
  parallel_for(out.numel(), kElementGrain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) d[i] = static_cast<Dst>(s[i]);
  });
}

}  // namespace

Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op) {
  const size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    if (da != db && da != 1 && db != 1)
      throw ShapeError(std::string(op) + ": shapes " + shape_str(a) + " and " + shape_str(b) +
                       " cannot be broadcast together (dimension " + std::to_string(i) + ": " + std::to_string(da) +
                       " vs " + std::to_string(db) + ")");
    out[i] = da == 1 ? db : da;
  }
  return out;
}

// ---- cast ------------------------------------------------------------------------------
Tensor cast(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  return make_op(OpKind::Cast, {x}, x.shape(), dtype);
}
void Cast_forward(Node& out) {
  alloc_output(out);
  const Node& x = in(out, 0);
  DAGRAD_DISPATCH_ALL(out.dtype, {
    using Dst = T;
    switch (x.dtype) {
      case DType::Float32: cast_loop<float, Dst>(x, out); break;
      case DType::Float64: cast_loop<double, Dst>(x, out); break;
      case DType::Int64: cast_loop<int64_t, Dst>(x, out); break;
      case DType::Bool: cast_loop<bool, Dst>(x, out); break;
    }
  });
}
// Autodiff casts the gradient back to the input's dtype.
std::vector<Tensor> Cast_backward(const Tensor&, const Tensor& g, const std::vector<bool>&) { return {g}; }

// ---- add, sub, mul, div ------------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b) { return binary(OpKind::Add, a, b); }
void Add_forward(Node& out) { DAGRAD_DISPATCH_NUMERIC(out.dtype, "add", binary_forward<T>(out, fn::Add{})); }
std::vector<Tensor> Add_backward(const Tensor&, const Tensor& g, const std::vector<bool>&) { return {g, g}; }

Tensor add_n(const std::vector<Tensor>& xs) {
  if (xs.empty()) throw ValueError("add_n: expected at least one tensor");
  for (const Tensor& t : xs)
    if (t.shape() != xs[0].shape() || t.dtype() != xs[0].dtype())
      throw ShapeError("add_n: tensors must share one shape and dtype, got " + shape_str(xs[0].shape()) + " " +
                       dtype_name(xs[0].dtype()) + " and " + shape_str(t.shape()) + " " + dtype_name(t.dtype()));
  if (xs.size() == 1) return xs[0];
  if (xs.size() == 2) return add(xs[0], xs[1]);
  return make_op(OpKind::AddN, xs, xs[0].shape(), xs[0].dtype());
}
void AddN_forward(Node& out) {
  alloc_output(out);
  const size_t k = out.inputs.size();
  DAGRAD_DISPATCH_NUMERIC(out.dtype, "add_n", {
    T* po = out.data<T>();
    parallel_for(out.numel(), kElementGrain, [&](int64_t b, int64_t e) {
      const T* p0 = in(out, 0).data<T>();
      const T* p1 = in(out, 1).data<T>();
      map2<T, T>(p0 + b, p1 + b, po + b, e - b, fn::Add{});
      for (size_t i = 2; i < k; ++i) {
        const T* pi = in(out, i).data<T>();
        map2_inplace<T>(po + b, pi + b, e - b, fn::Add{});
      }
    });
  });
}
std::vector<Tensor> AddN_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return std::vector<Tensor>(out->inputs.size(), g);
}

Tensor sub(const Tensor& a, const Tensor& b) { return binary(OpKind::Sub, a, b); }
void Sub_forward(Node& out) { DAGRAD_DISPATCH_NUMERIC(out.dtype, "sub", binary_forward<T>(out, fn::Sub{})); }
std::vector<Tensor> Sub_backward(const Tensor&, const Tensor& g, const std::vector<bool>& needs) {
  return {g, needs[1] ? neg(g) : Tensor()};
}

Tensor mul(const Tensor& a, const Tensor& b) { return binary(OpKind::Mul, a, b); }
void Mul_forward(Node& out) { DAGRAD_DISPATCH_NUMERIC(out.dtype, "mul", binary_forward<T>(out, fn::Mul{})); }
std::vector<Tensor> Mul_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  return {needs[0] ? mul(g, input(out, 1)) : Tensor(), needs[1] ? mul(g, input(out, 0)) : Tensor()};
}

Tensor div(const Tensor& a, const Tensor& b) { return binary(OpKind::Div, a, b); }
void Div_forward(Node& out) { DAGRAD_DISPATCH_FLOAT(out.dtype, "div", binary_forward<T>(out, fn::Div{})); }
// d(a/b)/db = -a/b^2 = -out/b.
std::vector<Tensor> Div_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  Tensor b = input(out, 1);
  return {needs[0] ? div(g, b) : Tensor(), needs[1] ? neg(div(mul(g, out), b)) : Tensor()};
}

// ---- neg, pow ------------------------------------------------------------------------------
Tensor neg(const Tensor& x) { return numeric_unary(OpKind::Neg, x); }
void Neg_forward(Node& out) { DAGRAD_DISPATCH_NUMERIC(out.dtype, "neg", unary_forward<T>(out, fn::Neg{})); }
std::vector<Tensor> Neg_backward(const Tensor&, const Tensor& g, const std::vector<bool>&) { return {neg(g)}; }

// attrs.scalar: the exponent.
Tensor pow(const Tensor& x, Scalar exponent) {
  const DType dt = result_type(x.dtype(), exponent.kind());
  if (!is_floating(dt) && exponent.as<int64_t>() < 0)
    throw RuntimeError("pow: integers to negative integer powers are not allowed (exponent " + exponent.str() + ")");
  // As PyTorch: bool ** bool stays bool, bool ** int is int64; both are computed on int64.
  if (dt == DType::Bool) return cast(pow(cast(x, DType::Int64), exponent), DType::Bool);
  Tensor v = x.dtype() == dt ? x : cast(x, dt);
  OpAttrs attrs;
  attrs.scalar = exponent;
  return make_op(OpKind::PowScalar, {v}, v.shape(), v.dtype(), std::move(attrs));
}
void PowScalar_forward(Node& out) {
  if (out.dtype == DType::Int64) {  // exact, wrapping on overflow as PyTorch's integer pow
    const uint64_t e = static_cast<uint64_t>(out.attrs.scalar.as<int64_t>());
    unary_forward<int64_t>(out, [e](int64_t b) {
      uint64_t r = 1, base = static_cast<uint64_t>(b);
      for (uint64_t k = e; k; k >>= 1, base *= base)
        if (k & 1) r *= base;
      return static_cast<int64_t>(r);
    });
    return;
  }
  const double p = out.attrs.scalar;
  DAGRAD_DISPATCH_FLOAT(out.dtype, "pow", fn::with_pow<T>(p, [&](const auto& f) { unary_forward<T>(out, f); }));
}
std::vector<Tensor> PowScalar_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  const double p = out->attrs.scalar;
  if (p == 0.0) return {mul(g, scalar_like(g, 0.0))};
  Tensor x = input(out, 0);
  Tensor local = p == 2.0 ? mul(x, scalar_like(x, 2.0)) : mul(pow(x, p - 1.0), scalar_like(x, p));
  return {mul(g, local)};
}

// ---- exp, log, sqrt, tanh, sigmoid -----------------------------------------------------------
Tensor exp(const Tensor& x) { return float_unary(OpKind::Exp, x); }
void Exp_forward(Node& out) { DAGRAD_DISPATCH_FLOAT(out.dtype, "exp", unary_forward<T>(out, fn::Exp{})); }
std::vector<Tensor> Exp_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) { return {mul(g, out)}; }

Tensor log(const Tensor& x) { return float_unary(OpKind::Log, x); }
void Log_forward(Node& out) { DAGRAD_DISPATCH_FLOAT(out.dtype, "log", unary_forward<T>(out, fn::Log{})); }
std::vector<Tensor> Log_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return {div(g, input(out, 0))};
}

Tensor sqrt(const Tensor& x) { return float_unary(OpKind::Sqrt, x); }
void Sqrt_forward(Node& out) { DAGRAD_DISPATCH_FLOAT(out.dtype, "sqrt", unary_forward<T>(out, fn::Sqrt{})); }
std::vector<Tensor> Sqrt_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return {div(g, mul(out, scalar_like(out, 2.0)))};
}

Tensor tanh(const Tensor& x) { return float_unary(OpKind::Tanh, x); }
void Tanh_forward(Node& out) { DAGRAD_DISPATCH_FLOAT(out.dtype, "tanh", unary_forward<T>(out, fn::Tanh{})); }
std::vector<Tensor> Tanh_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return {tanh_backward(g, out)};
}

Tensor sigmoid(const Tensor& x) { return float_unary(OpKind::Sigmoid, x); }
void Sigmoid_forward(Node& out) { DAGRAD_DISPATCH_FLOAT(out.dtype, "sigmoid", unary_forward<T>(out, fn::Sigmoid{})); }
std::vector<Tensor> Sigmoid_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return {sigmoid_backward(g, out)};
}

// ---- relu, step --------------------------------------------------------------------------------
Tensor relu(const Tensor& x) { return numeric_unary(OpKind::Relu, x); }
void Relu_forward(Node& out) { DAGRAD_DISPATCH_NUMERIC(out.dtype, "relu", unary_forward<T>(out, fn::Relu{})); }
// NOTE: at the kink x = 0 the gradient is 0 (step(0) = 0), as in PyTorch.
std::vector<Tensor> Relu_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return {relu_backward(g, input(out, 0))};
}

// ---- fused local gradients (same shape and dtype as their inputs, which the rules above
// guarantee; broadcasting stays with the ordinary ops) ---------------------------------------
namespace {
Tensor fused_grad(OpKind op, const Tensor& g, const Tensor& v) {
  if (g.shape() != v.shape() || g.dtype() != v.dtype())
    throw ShapeError(std::string(op_name(op)) + ": gradient " + shape_str(g.shape()) + " and value " +
                     shape_str(v.shape()) + " must match");
  return make_op(op, {g, v}, g.shape(), g.dtype());
}
}  // namespace

Tensor relu_backward(const Tensor& g, const Tensor& x) { return fused_grad(OpKind::ReluBackward, g, x); }
void ReluBackward_forward(Node& out) {
  DAGRAD_DISPATCH_NUMERIC(out.dtype, "relu_backward", binary_forward<T>(out, fn::ReluBackward{}));
}
// The mask is piecewise constant: only g gets a gradient.
std::vector<Tensor> ReluBackward_backward(const Tensor& out, const Tensor& h, const std::vector<bool>& needs) {
  return {needs[0] ? relu_backward(h, input(out, 1)) : Tensor(), Tensor()};
}

Tensor tanh_backward(const Tensor& g, const Tensor& y) { return fused_grad(OpKind::TanhBackward, g, y); }
void TanhBackward_forward(Node& out) {
  DAGRAD_DISPATCH_FLOAT(out.dtype, "tanh_backward", binary_forward<T>(out, fn::TanhBackward{}));
}
// d/dg = 1 - y^2; d/dy = -2 g y.
std::vector<Tensor> TanhBackward_backward(const Tensor& out, const Tensor& h, const std::vector<bool>& needs) {
  Tensor g = input(out, 0), y = input(out, 1);
  return {needs[0] ? tanh_backward(h, y) : Tensor(),
          needs[1] ? mul(h, mul(mul(g, y), scalar_like(y, -2.0))) : Tensor()};
}

Tensor sigmoid_backward(const Tensor& g, const Tensor& y) { return fused_grad(OpKind::SigmoidBackward, g, y); }
void SigmoidBackward_forward(Node& out) {
  DAGRAD_DISPATCH_FLOAT(out.dtype, "sigmoid_backward", binary_forward<T>(out, fn::SigmoidBackward{}));
}
// d/dg = y (1 - y); d/dy = g (1 - 2y).
std::vector<Tensor> SigmoidBackward_backward(const Tensor& out, const Tensor& h, const std::vector<bool>& needs) {
  Tensor g = input(out, 0), y = input(out, 1);
  return {needs[0] ? sigmoid_backward(h, y) : Tensor(),
          needs[1] ? mul(h, mul(g, sub(scalar_like(y, 1.0), mul(y, scalar_like(y, 2.0))))) : Tensor()};
}

Tensor step(const Tensor& x) {
  Tensor t = numeric_unary(OpKind::Step, x);
  t->requires_grad = false;  // piecewise constant: zero gradient everywhere it has one
  return t;
}
void Step_forward(Node& out) { DAGRAD_DISPATCH_NUMERIC(out.dtype, "step", unary_forward<T>(out, fn::Step{})); }
std::vector<Tensor> Step_backward(const Tensor&, const Tensor&, const std::vector<bool>&) { return {Tensor()}; }

// ---- abs, sign ------------------------------------------------------------------------------
Tensor abs(const Tensor& x) { return numeric_unary(OpKind::Abs, x); }
void Abs_forward(Node& out) { DAGRAD_DISPATCH_NUMERIC(out.dtype, "abs", unary_forward<T>(out, fn::Abs{})); }
// NOTE: at the kink x = 0 the gradient is 0 (sign(0) = 0), as in PyTorch.
std::vector<Tensor> Abs_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return {mul(g, sign(input(out, 0)))};
}

Tensor sign(const Tensor& x) {
  if (x.dtype() == DType::Bool) return x;  // as PyTorch: the sign of a bool is itself
  Tensor t = numeric_unary(OpKind::Sign, x);
  t->requires_grad = false;  // piecewise constant
  return t;
}
void Sign_forward(Node& out) { DAGRAD_DISPATCH_NUMERIC(out.dtype, "sign", unary_forward<T>(out, fn::Sign{})); }
std::vector<Tensor> Sign_backward(const Tensor&, const Tensor&, const std::vector<bool>&) { return {Tensor()}; }

// ---- sin, cos -------------------------------------------------------------------------------
Tensor sin(const Tensor& x) { return float_unary(OpKind::Sin, x); }
void Sin_forward(Node& out) { DAGRAD_DISPATCH_FLOAT(out.dtype, "sin", unary_forward<T>(out, fn::Sin{})); }
std::vector<Tensor> Sin_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return {mul(g, cos(input(out, 0)))};
}

Tensor cos(const Tensor& x) { return float_unary(OpKind::Cos, x); }
void Cos_forward(Node& out) { DAGRAD_DISPATCH_FLOAT(out.dtype, "cos", unary_forward<T>(out, fn::Cos{})); }
std::vector<Tensor> Cos_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return {neg(mul(g, sin(input(out, 0))))};
}

// ---- log1p, expm1, erf ---------------------------------------------------------------------
Tensor log1p(const Tensor& x) { return float_unary(OpKind::Log1p, x); }
void Log1p_forward(Node& out) { DAGRAD_DISPATCH_FLOAT(out.dtype, "log1p", unary_forward<T>(out, fn::Log1p{})); }
std::vector<Tensor> Log1p_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  Tensor x = input(out, 0);
  return {div(g, add(x, scalar_like(x, 1.0)))};
}

Tensor expm1(const Tensor& x) { return float_unary(OpKind::Expm1, x); }
void Expm1_forward(Node& out) { DAGRAD_DISPATCH_FLOAT(out.dtype, "expm1", unary_forward<T>(out, fn::Expm1{})); }
// d expm1(x) = exp(x) = out + 1.
std::vector<Tensor> Expm1_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return {mul(g, add(out, scalar_like(out, 1.0)))};
}

Tensor erf(const Tensor& x) { return float_unary(OpKind::Erf, x); }
void Erf_forward(Node& out) { DAGRAD_DISPATCH_FLOAT(out.dtype, "erf", unary_forward<T>(out, fn::Erf{})); }
// d erf(x) = 2/sqrt(pi) exp(-x^2).
std::vector<Tensor> Erf_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  Tensor x = input(out, 0);
  return {mul(g, mul(exp(neg(mul(x, x))), scalar_like(x, 1.1283791670955126)))};
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

}  // namespace dagrad
