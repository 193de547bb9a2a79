// matmul: 2-d, batched with numpy broadcasting of the batch dims, and 1-d operands as numpy.
#include "dagrad/kernels/dispatch.h"
#include "dagrad/kernels/gemm.h"
#include "dagrad/kernels/parallel.h"
#include "dagrad/kernels/strided.h"
#include "dagrad/ops.h"

namespace dagrad {

// The node itself always sees operands of at least 2 dims; 1-d operands are reshaped
// around it here, so the kernel and the backward rule have one case.
Tensor matmul(const Tensor& a, const Tensor& b) {
  if (a.ndim() == 0 || b.ndim() == 0)
    throw ShapeError("matmul: both arguments need at least 1 dimension, got shapes " + shape_str(a.shape()) + " and " +
                     shape_str(b.shape()));
  if (!is_floating(a.dtype()) || !is_floating(b.dtype()))
    throw TypeError(std::string("matmul: expected floating point operands, got ") + dtype_name(a.dtype()) + " and " +
                    dtype_name(b.dtype()));
  if (a.dtype() != b.dtype())
    throw TypeError(std::string("matmul: expected both operands to have the same dtype, got ") + dtype_name(a.dtype()) +
                    " and " + dtype_name(b.dtype()));
  const int64_t ka = a.shape().back();
  const int64_t kb = b.ndim() == 1 ? b.shape()[0] : b.shape()[b.ndim() - 2];
  if (ka != kb)
    throw ShapeError("matmul: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                     " cannot be multiplied (" + std::to_string(ka) + " != " + std::to_string(kb) + ")");
  Tensor x = a.ndim() == 1 ? reshape(a, {1, ka}) : a;
  Tensor y = b.ndim() == 1 ? reshape(b, {kb, 1}) : b;
  Tensor r = matmul_t(x, y, false, false);
  if (a.ndim() == 1 || b.ndim() == 1) {
    Shape s(r.shape().begin(), r.shape().end() - 2);
    if (a.ndim() != 1) s.push_back(r.shape()[r.ndim() - 2]);
    if (b.ndim() != 1) s.push_back(r.shape().back());
    r = reshape(r, s);
  }
  return r;
}

// attrs.ints = {transpose a, transpose b}: the node reads its operands transposed (BLAS
// flags), so backward products need no transposed copies.
Tensor matmul_t(const Tensor& a, const Tensor& b, bool ta, bool tb) {
  if (a.ndim() < 2 || b.ndim() < 2)
    throw ShapeError("matmul: operands need at least 2 dimensions, got shapes " + shape_str(a.shape()) + " and " +
                     shape_str(b.shape()));
  if (a.dtype() != b.dtype() || !is_floating(a.dtype()))
    throw TypeError(std::string("matmul: expected floating point operands of one dtype, got ") + dtype_name(a.dtype()) +
                    " and " + dtype_name(b.dtype()));
  const int64_t ra = a.shape()[a.ndim() - 2], ca = a.shape().back();
  const int64_t rb = b.shape()[b.ndim() - 2], cb = b.shape().back();
  const int64_t m = ta ? ca : ra, ka = ta ? ra : ca, kb = tb ? cb : rb, n = tb ? rb : cb;
  if (ka != kb)
    throw ShapeError("matmul: shapes " + shape_str(a.shape()) + (ta ? "^T" : "") + " and " + shape_str(b.shape()) +
                     (tb ? "^T" : "") + " cannot be multiplied (" + std::to_string(ka) + " != " + std::to_string(kb) +
                     ")");
  Shape xb(a.shape().begin(), a.shape().end() - 2), yb(b.shape().begin(), b.shape().end() - 2);
  Shape out;
  try {
    out = broadcast_shapes(xb, yb, "matmul");
  } catch (const ShapeError&) {
    throw ShapeError("matmul: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                     " cannot be multiplied: batch dimensions " + shape_str(xb) + " and " + shape_str(yb) +
                     " cannot be broadcast together");
  }
  out.push_back(m);
  out.push_back(n);
  OpAttrs attrs;
  attrs.ints = {ta ? 1 : 0, tb ? 1 : 0};
  return make_op(OpKind::Matmul, {a, b}, out, a.dtype(), std::move(attrs));
}

void Matmul_forward(Node& out) {
  alloc_output(out);
  const Node& a = in(out, 0);
  const Node& b = in(out, 1);
  const int64_t k = out.attrs.ints[0] ? a.shape[a.ndim() - 2] : a.shape.back();
  Shape batch(out.shape.begin(), out.shape.end() - 2);
  Shape ab(a.shape.begin(), a.shape.end() - 2), bb(b.shape.begin(), b.shape.end() - 2);
  const int64_t nbatch = numel(batch);
  // Matrix offsets (in matrices) of each operand for every output batch index.
  std::vector<int64_t> aoff(nbatch), boff(nbatch);
  {
    Shape sa = broadcast_strides(ab, batch), sb = broadcast_strides(bb, batch);
    Shape idx(batch.size(), 0);
    for (int64_t t = 0; t < nbatch; ++t) {
      int64_t oa = 0, ob = 0;
      for (size_t d = 0; d < batch.size(); ++d) {
        oa += idx[d] * sa[d];
        ob += idx[d] * sb[d];
      }
      aoff[t] = oa;
      boff[t] = ob;
      for (size_t d = batch.size(); d-- > 0;) {
        if (++idx[d] < batch[d]) break;
        idx[d] = 0;
      }
    }
  }
  const bool ta = out.attrs.ints[0], tb = out.attrs.ints[1];
  const int64_t n = out.shape.back();
  const int64_t lda = a.shape.back(), ldb = b.shape.back();
  const int64_t asz = numel(Shape(a.shape.end() - 2, a.shape.end())),
                bsz = numel(Shape(b.shape.end() - 2, b.shape.end()));
  DAGRAD_DISPATCH_FLOAT(out.dtype, "matmul", {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* pc = out.data<T>();
    const int64_t m_ = out.shape[out.ndim() - 2];
    // Independent matrices of a batch split over the budget; a single one uses the whole
    // budget inside the GEMM (Note [Thread budget]).
    parallel_for(nbatch, nbatch > 1 ? 1 : 2, [&](int64_t t0, int64_t t1) {
      for (int64_t t = t0; t < t1; ++t)
        kernels::gemm(ta, tb, m_, n, k, pa + aoff[t] * asz, lda, pb + boff[t] * bsz, ldb, pc + t * m_ * n);
    });
  });
}

// With C = op(A) op(B): dA = G op(B)^T (or its transpose when A is read transposed) and
// dB = op(A)^T G (likewise), all as flagged products; autodiff sums over broadcast batch dims.
std::vector<Tensor> Matmul_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  Tensor a = input(out, 0), b = input(out, 1);
  const bool ta = out->attrs.ints[0], tb = out->attrs.ints[1];
  Tensor da, db;
  if (needs[0]) da = ta ? matmul_t(b, g, tb, true) : matmul_t(g, b, false, !tb);
  if (needs[1]) db = tb ? matmul_t(g, a, true, ta) : matmul_t(a, g, !ta, false);
  return {da, db};
}

}  // namespace dagrad
