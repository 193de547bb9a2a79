// @brief Loops over N operands that share one iteration shape with arbitrary strides
// (broadcast strides are 0). Dimensions are collapsed first, so the inner loop is as long
// as the memory layout allows and usually has unit or zero stride.
#pragma once

#include <array>
#include <vector>

#include "dagrad/common.h"

namespace dagrad {

template <size_t N>
class StridedLoop {
 public:
  using Offsets = std::array<int64_t, N>;

  StridedLoop(const Shape& shape, const std::array<Shape, N>& strides) {
    // Drop size-1 dims, then merge a dim into the next inner one wherever every operand
    // is contiguous across the pair.
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] == 1) continue;
      if (!shape_.empty()) {
        bool merge = true;
        for (size_t k = 0; k < N; ++k)
          if (strides_[k].back() != strides[k][d] * shape[d]) merge = false;
        if (merge) {
          shape_.back() *= shape[d];
          for (size_t k = 0; k < N; ++k) strides_[k].back() = strides[k][d];
          continue;
        }
      }
      shape_.push_back(shape[d]);
      for (size_t k = 0; k < N; ++k) strides_[k].push_back(strides[k][d]);
    }
    if (shape_.empty()) {
      shape_.push_back(1);
      for (size_t k = 0; k < N; ++k) strides_[k].push_back(0);
    }
    for (int64_t d : shape) empty_ = empty_ || d == 0;
  }

  /// Number of rows: the product of every collapsed dim but the innermost.
  int64_t rows() const {
    if (empty_) return 0;
    int64_t r = 1;
    for (size_t d = 0; d + 1 < shape_.size(); ++d) r *= shape_[d];
    return r;
  }
  int64_t row_length() const { return shape_.back(); }

  /// Calls f(len, offsets, inner_strides) for each row in [r0, r1).
  template <class F>
  void run_rows(int64_t r0, int64_t r1, const F& f) const {
    if (r0 >= r1) return;
    const size_t outer = shape_.size() - 1;
    std::vector<int64_t> idx(outer, 0);
    Offsets off{};
    int64_t rem = r0;
    for (size_t d = outer; d-- > 0;) {
      idx[d] = rem % shape_[d];
      rem /= shape_[d];
      for (size_t k = 0; k < N; ++k) off[k] += idx[d] * strides_[k][d];
    }
    Offsets inner;
    for (size_t k = 0; k < N; ++k) inner[k] = strides_[k][outer];
    const int64_t len = shape_[outer];
    for (int64_t r = r0; r < r1; ++r) {
      f(len, off, inner);
      for (size_t d = outer; d-- > 0;) {
        for (size_t k = 0; k < N; ++k) off[k] += strides_[k][d];
        if (++idx[d] < shape_[d]) break;
        for (size_t k = 0; k < N; ++k) off[k] -= shape_[d] * strides_[k][d];
        idx[d] = 0;
      }
    }
  }

 private:
  std::vector<int64_t> shape_;
  std::array<std::vector<int64_t>, N> strides_;
  bool empty_ = false;
};

/// Strides of `in` broadcast to `out` (0 where `in` has size 1 or lacks the dim).
inline Shape broadcast_strides(const Shape& in, const Shape& out) {
  Shape st(out.size(), 0);
  Shape cs = contiguous_strides(in);
  size_t lead = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) st[lead + i] = in[i] == 1 ? 0 : cs[i];
  return st;
}

}  // namespace dagrad
