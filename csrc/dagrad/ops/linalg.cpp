// matmul: 2-d, batched with numpy broadcasting of the batch dims, and 1-d operands as numpy.
#include "dagrad/kernels/dispatch.h"
#include "dagrad/kernels/matmul.h"
#include "dagrad/kernels/parallel.h"
#include "dagrad/kernels/strided.h"
#include "dagrad/ops.h"

namespace dagrad {

// The node itself always sees operands of at least 2 dims; 1-d operands are reshaped
// around it here, so the kernel and the backward rule have one case.
Tensor matmul(const Tensor& a, const Tensor& b) {
  if (a.ndim() == 0 || b.ndim() == 0)
    throw ShapeError("matmul: both arguments need at least 1 dimension, got shapes " +
                     shape_str(a.shape()) + " and " + shape_str(b.shape()));
  if (!is_floating(a.dtype()) || !is_floating(b.dtype()))
    throw TypeError(std::string("matmul: expected floating point operands, got ") +
                    dtype_name(a.dtype()) + " and " + dtype_name(b.dtype()));
  if (a.dtype() != b.dtype())
    throw TypeError(std::string("matmul: expected both operands to have the same dtype, got ") +
                    dtype_name(a.dtype()) + " and " + dtype_name(b.dtype()));
  const int64_t ka = a.shape().back();
  const int64_t kb = b.ndim() == 1 ? b.shape()[0] : b.shape()[b.ndim() - 2];
  if (ka != kb)
    throw ShapeError("matmul: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                     " cannot be multiplied (" + std::to_string(ka) + " != " + std::to_string(kb) + ")");
  Tensor x = a.ndim() == 1 ? reshape(a, {1, ka}) : a;
  Tensor y = b.ndim() == 1 ? reshape(b, {kb, 1}) : b;
  Shape xb(x.shape().begin(), x.shape().end() - 2), yb(y.shape().begin(), y.shape().end() - 2);
  Shape out;
  try {
    out = broadcast_shapes(xb, yb, "matmul");
  } catch (const ShapeError&) {
    throw ShapeError("matmul: shapes " + shape_str(a.shape()) + " and " + shape_str(b.shape()) +
                     " cannot be multiplied: batch dimensions " + shape_str(xb) + " and " +
                     shape_str(yb) + " cannot be broadcast together");
  }
  const int64_t m = x.shape()[x.ndim() - 2], n = y.shape().back();
  out.push_back(m);
  out.push_back(n);
  Tensor r = make_op(OpKind::Matmul, {x, y}, out, a.dtype());
  if (a.ndim() == 1 || b.ndim() == 1) {
    Shape s(out.begin(), out.end() - 2);
    if (a.ndim() != 1) s.push_back(m);
    if (b.ndim() != 1) s.push_back(n);
    r = reshape(r, s);
  }
  return r;
}

void Matmul_forward(Node& out) {
  alloc_output(out);
  const Node& a = in(out, 0);
  const Node& b = in(out, 1);
  const int64_t m = a.shape[a.ndim() - 2], k = a.shape.back(), n = b.shape.back();
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
  DAGRAD_DISPATCH_FLOAT(out.dtype, "matmul", {
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    T* pc = out.data<T>();
    // Split the (batch, row) space; see Note [Thread budget].
    const int64_t grain = std::max<int64_t>(1, (1 << 16) / std::max<int64_t>(1, n * k));
    parallel_for(nbatch * m, grain, [&](int64_t r0, int64_t r1) {
      while (r0 < r1) {
        const int64_t t = r0 / m, i0 = r0 % m;
        const int64_t i1 = std::min(m, i0 + (r1 - r0));
        kernels::gemm_rows<T>(i0, i1, n, k, pa + aoff[t] * m * k, pb + boff[t] * k * n,
                              pc + t * m * n);
        r0 += i1 - i0;
      }
    });
  });
}

// dA = G @ B^T and dB = A^T @ G; autodiff sums over broadcast batch dims.
std::vector<Tensor> Matmul_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  Tensor a = input(out, 0), b = input(out, 1);
  return {needs[0] ? matmul(g, transpose(b, -1, -2)) : Tensor(),
          needs[1] ? matmul(transpose(a, -1, -2), g) : Tensor()};
}

}  // namespace dagrad
