// @brief Drivers that run the elementwise kernels for a graph Node: flat unary loops and
// broadcasting binary and ternary loops, split over the thread budget (Note [Thread budget]).
#pragma once

#include <algorithm>

#include "dagrad/graph.h"
#include "dagrad/kernels/elementwise.h"
#include "dagrad/kernels/parallel.h"
#include "dagrad/kernels/strided.h"

namespace dagrad {

inline const Node& kin(const Node& n, size_t i) { return *n.inputs[i].node; }

/// out[i] = f(x[i]); inputs of type T, output of type O.
template <class T, class O = T, class F>
void unary_forward(Node& out, const F& f) {
  alloc_output(out);
  const T* x = kin(out, 0).data<T>();
  O* y = out.data<O>();
  parallel_for(out.numel(), kElementGrain, [&](int64_t b, int64_t e) { map1<T, O>(x + b, y + b, e - b, f); });
}

/// out = f(a, b) with numpy broadcasting; inputs of type T, output of type O.
template <class T, class O = T, class F>
void binary_forward(Node& out, const F& f) {
  alloc_output(out);
  const Node& a = kin(out, 0);
  const Node& b = kin(out, 1);
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  O* po = out.data<O>();
  if (a.shape == out.shape && b.shape == out.shape) {
    parallel_for(out.numel(), kElementGrain,
                 [&](int64_t s, int64_t e) { map2<T, O>(pa + s, pb + s, po + s, e - s, f); });
    return;
  }
  StridedLoop<3> loop(out.shape, {contiguous_strides(out.shape), broadcast_strides(a.shape, out.shape),
                                  broadcast_strides(b.shape, out.shape)});
  const int64_t grain = std::max<int64_t>(1, kElementGrain / std::max<int64_t>(1, loop.row_length()));
  parallel_for(loop.rows(), grain, [&](int64_t r0, int64_t r1) {
    loop.run_rows(r0, r1, [&](int64_t n, const auto& off, const auto& st) {
      O* o = po + off[0];
      const T* x = pa + off[1];
      const T* y = pb + off[2];
      if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
        map2<T, O>(x, y, o, n, f);
      } else if (st[0] == 1 && st[1] == 1 && st[2] == 0) {
        map2_scalar_b<T, O>(x, *y, o, n, f);
      } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
        map2_scalar_a<T, O>(*x, y, o, n, f);
      } else {
        for (int64_t i = 0; i < n; ++i) o[i * st[0]] = f(x[i * st[1]], y[i * st[2]]);
      }
    });
  });
}

/// out = cond ? a : b with numpy broadcasting of all three.
template <class T>
void where_forward(Node& out) {
  alloc_output(out);
  const Node& c = kin(out, 0);
  const Node& a = kin(out, 1);
  const Node& b = kin(out, 2);
  const bool* pc = c.data<bool>();
  const T* pa = a.data<T>();
  const T* pb = b.data<T>();
  T* po = out.data<T>();
  StridedLoop<4> loop(out.shape, {contiguous_strides(out.shape), broadcast_strides(c.shape, out.shape),
                                  broadcast_strides(a.shape, out.shape), broadcast_strides(b.shape, out.shape)});
  const int64_t grain = std::max<int64_t>(1, kElementGrain / std::max<int64_t>(1, loop.row_length()));
  parallel_for(loop.rows(), grain, [&](int64_t r0, int64_t r1) {
    loop.run_rows(r0, r1, [&](int64_t n, const auto& off, const auto& st) {
      for (int64_t i = 0; i < n; ++i)
        po[off[0] + i * st[0]] = pc[off[1] + i * st[1]] ? pa[off[2] + i * st[2]] : pb[off[3] + i * st[3]];
    });
  });
}

}  // namespace dagrad
