// @brief Public op API (graph-building functions) and the per-op dispatch table.
#pragma once

#include <vector>

#include "dagrad/graph.h"

namespace dagrad {

// Elementwise (ops/elementwise.cpp). Binary ops broadcast like numpy and promote dtypes.
Tensor cast(const Tensor& x, DType dtype);
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& x);
Tensor pow(const Tensor& x, double exponent);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor sigmoid(const Tensor& x);
Tensor relu(const Tensor& x);
/// @brief 1 where x > 0, else 0 (same dtype); has no gradient.
Tensor step(const Tensor& x);

// Linear algebra (ops/linalg.cpp).
/// @brief Matrix product; 1-d operands as numpy, batch dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);

// Reductions (ops/reduce.cpp). Empty `dims` reduces over all dimensions.
Tensor sum(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);

// Movement (ops/movement.cpp).
Tensor reshape(const Tensor& x, Shape shape);  // one -1 allowed
Tensor permute(const Tensor& x, std::vector<int64_t> perm);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor detach(const Tensor& x);

/// @brief Sums a broadcast gradient back to `shape`: the one place broadcasting is undone.
Tensor sum_to(const Tensor& g, const Shape& shape);
/// @brief numpy broadcasting of two shapes; ShapeError naming `op` and both shapes.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);

inline Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
inline Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
inline Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
inline Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
inline Tensor operator-(const Tensor& x) { return neg(x); }

// ---------------------------------------------------------------------------
// Dispatch table, generated from DAGRAD_OPS.
// ---------------------------------------------------------------------------

/// Gradients of an op's inputs, given the output node and the gradient flowing into it.
/// `needs[i]` says whether input i needs one; entries not needed stay undefined.
using BackwardFn = std::vector<Tensor> (*)(const Tensor& out, const Tensor& grad,
                                           const std::vector<bool>& needs);
using ForwardFn = void (*)(Node& out);

struct OpInfo {
  const char* name;
  ForwardFn forward;
  BackwardFn backward;
};

const OpInfo& op_info(OpKind op);

#define DAGRAD_X(name, str, family)      \
  void name##_forward(Node& out);        \
  std::vector<Tensor> name##_backward(const Tensor& out, const Tensor& grad, \
                                      const std::vector<bool>& needs);
DAGRAD_OPS(DAGRAD_X)
#undef DAGRAD_X

// Helpers for op definitions.
inline const Node& in(const Node& n, size_t i) { return *n.inputs[i].node; }
inline Tensor input(const Tensor& out, size_t i) { return Tensor(out->inputs[i].node); }
/// A 0-d constant with t's dtype.
inline Tensor scalar_like(const Tensor& t, double v) { return scalar(v, t.dtype()); }

}  // namespace dagrad
