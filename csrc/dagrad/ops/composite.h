// @brief Small helpers of the composite ops (each family file's "composites" section).
#pragma once

#include <vector>

#include "dagrad/ops.h"

namespace dagrad::composite {

/// A 0-d constant of like's dtype.
inline Tensor c(const Tensor& like, double v) { return scalar(v, like.dtype()); }
inline Tensor as_float(const Tensor& x) { return is_floating(x.dtype()) ? x : cast(x, DType::Float32); }
inline std::vector<int64_t> all_dims(const Tensor& x) {
  std::vector<int64_t> d(x.ndim());
  for (int64_t i = 0; i < x.ndim(); ++i) d[i] = i;
  return d;
}
/// Drops the reduced dims of a keepdim result.
inline Tensor drop_dims(const Tensor& r, const Tensor& x, std::vector<int64_t> dims) {
  if (dims.empty()) dims = all_dims(x);
  Shape s;
  for (int64_t d = 0; d < x.ndim(); ++d) {
    bool reduced = false;
    for (int64_t k : dims) reduced = reduced || wrap_dim(k, x.ndim(), "reduce") == d;
    if (!reduced) s.push_back(x.shape()[d]);
  }
  return reshape(r, s);
}

}  // namespace dagrad::composite
