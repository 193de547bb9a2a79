// Recurrent cells: the fused Elman, LSTM (Note [Fused LSTM cell]) and GRU (Note [Fused GRU cell])
// steps, each with the kernels of its gradient.
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "dagrad/kernels/dispatch.h"
#include "dagrad/kernels/elementwise.h"
#include "dagrad/kernels/elementwise_fns.h"
#include "dagrad/kernels/gemm.h"
#include "dagrad/kernels/parallel.h"
#include "dagrad/ops.h"

namespace dagrad {

// ---- rnn_cell (attrs.ints = {gi_row, relu}) -------------------------------------------------
// One Elman step, act(gi[gi_row:gi_row + N] + h @ w_hh^T) with act tanh or relu, in one node: the
// hidden product, the step's rows of the input projection (which carries both biases) and the
// nonlinearity. Its gradient is the activation's (from the output alone: tanh' = 1 - y^2, and
// relu's y > 0 exactly where its input was), then the same products as linear's.
Tensor rnn_cell(const Tensor& gi, const Tensor& h, const Tensor& w_hh, int64_t gi_row, bool relu) {
  if (w_hh.ndim() != 2)
    throw ShapeError("rnn_cell: w_hh must be 2-d (hidden_size, features), got shape " + shape_str(w_hh.shape()));
  const int64_t H = w_hh.shape()[0], K = w_hh.shape()[1];
  if (h.ndim() != 2 || h.shape()[1] != K)
    throw ShapeError("rnn_cell: h of shape " + shape_str(h.shape()) + " does not fit w_hh of shape " +
                     shape_str(w_hh.shape()) + " (expected (N, " + std::to_string(K) + "))");
  const int64_t N = h.shape()[0];
  if (gi.ndim() != 2 || gi_row < 0 || gi.shape()[0] - N < gi_row || gi.shape()[1] != H)
    throw ShapeError("rnn_cell: gi of shape " + shape_str(gi.shape()) + " has no rows [" + std::to_string(gi_row) +
                     ", " + std::to_string(gi_row + N) + ") of " + std::to_string(H) + " columns for h of shape " +
                     shape_str(h.shape()));
  const DType dt = gi.dtype();
  if (!is_floating(dt) || h.dtype() != dt || w_hh.dtype() != dt)
    throw TypeError(std::string("rnn_cell: expected gi, h and w_hh of one floating dtype, got ") + dtype_name(dt) +
                    ", " + dtype_name(h.dtype()) + ", " + dtype_name(w_hh.dtype()));
  OpAttrs a;
  a.ints = {gi_row, relu ? 1 : 0};
  return make_op(OpKind::RnnCell, {gi, h, w_hh}, {N, H}, dt, std::move(a));
}
void RnnCell_forward(Node& out) {
  alloc_output(out);
  const Node& w = in(out, 2);
  const int64_t N = out.shape[0], H = w.shape[0], K = w.shape[1];
  DAGRAD_DISPATCH_FLOAT(out.dtype, "rnn_cell", {
    T* po = out.data<T>();
    kernels::gemm(false, true, N, H, K, in(out, 1).data<T>(), K, w.data<T>(), K, po);
    const T* gi = in(out, 0).data<T>() + out.attrs.ints[0] * H;
    const bool relu = out.attrs.ints[1];
    parallel_for(N * H, kElementGrain, [&](int64_t i0, int64_t i1) {
      if (relu)
        map2_inplace(po + i0, gi + i0, i1 - i0, [](T x, T y) { return fn::Relu()(x + y); });
      else
        map2_inplace(po + i0, gi + i0, i1 - i0, [](T x, T y) { return fn::Tanh()(x + y); });
    });
  });
}
std::vector<Tensor> RnnCell_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  const Tensor gi = input(out, 0), h = input(out, 1), w = input(out, 2);
  const Tensor pre = out->attrs.ints[1] ? relu_backward(g, out) : tanh_backward(g, out);
  std::vector<Tensor> r(3);
  if (needs[0])
    r[0] = gi.shape()[0] == pre.shape()[0] ? pre : embed(pre, gi.shape(), {out->attrs.ints[0], 0}, {1, 1}, 0.0);
  if (needs[1]) r[1] = matmul(pre, w);
  if (needs[2]) r[2] = matmul_t(pre, h, true, false);
  return r;
}

// Note [Fused LSTM cell]
// ~~~~~~~~~~~~~~~~~~~~~~
// One LSTM time step is one node: lstm_cell(gi, h, state, w_hh) computes the hidden product
// h @ w_hh^T (one GEMM), adds the step's input projection (rows [gi_row, gi_row + N) of gi, which
// carries both biases: the layer computes every step's gi in one GEMM and each step reads its
// rows in place, Note [RNNs are unrolled into the graph]), applies
// the four gates' nonlinearities and updates the cell, all in one pass over the rows. Its
// output packs what the next step and backward need, side by side in one (N, 7H) row:
//   [h' | c' | i | f | g | o | tanh(c')],  c' = f * c + i * g,  h' = o * tanh(c').
// The next step reads c from that packed row (the `state` input with c at column c_offset; the
// first step reads an (N, H) initial c at offset 0), and h' through a slice (it is the layer's
// output and the next GEMM's operand). Backward reads the saved activations instead of
// computing them again, and emits ordinary nodes: lstm_cell_backward (the gates' gradient, the
// gradient of gi), a product for h and for w_hh, and lstm_cell_state_backward (c's gradient,
// placed at c's columns of the state). Every column of the output is differentiable, so the op
// is a function like any other (gradcheck tests it on all seven blocks), not only an LSTM step.
// Every row is computed by one thread with the same instructions, so results do not depend on
// the thread count.
namespace {

struct LstmDims {
  int64_t n, h, k, s, off;  // batch, hidden, h's features (hidden or proj size), state width, c offset
};

LstmDims lstm_dims(const Node& out) {
  const Node& w = in(out, 3);
  const Node& st = in(out, 2);
  return {out.shape[0], w.shape[0] / 4, w.shape[1], st.shape[1], out.attrs.ints[0]};
}

// Rows per chunk: about 32k elements of work, so a small batch runs inline.
int64_t row_grain(int64_t h) { return std::max<int64_t>(1, kElementGrain / std::max<int64_t>(1, 7 * h)); }

// The loops below are each simple enough for GCC to vectorise (Note [SIMD at run time]); one
// loop doing the whole row is not (its selects do not if-convert). Every pointer is a block of
// one row: the blocks of a packed row never overlap.

// c' = f * c + i * g
template <class T>
DAGRAD_SIMD_CLONES void lstm_c_update(const T* __restrict f, const T* __restrict c, const T* __restrict i,
                                      const T* __restrict g, T* __restrict cn, int64_t H) {
  for (int64_t j = 0; j < H; ++j) cn[j] = f[j] * c[j] + i[j] * g[j];
}

// One row: a = the hidden product's row (4H), gi = the input projection's row, c = the previous c,
// o = the packed output row (7H).
template <class T>
void lstm_row(const T* a, const T* gi, const T* c, T* o, int64_t H) {
  T* act = o + 2 * H;  // i, f, g, o: the gates' order in gi
  const auto sig = [](T x, T y) { return fn::Sigmoid()(x + y); };
  const auto th = [](T x, T y) { return fn::Tanh()(x + y); };
  map2(gi, a, act, 2 * H, sig);
  map2(gi + 2 * H, a + 2 * H, act + 2 * H, H, th);
  map2(gi + 3 * H, a + 3 * H, act + 3 * H, H, sig);
  lstm_c_update(act + H, c, act, act + 2 * H, o + H, H);
  map1(o + H, o + 6 * H, H, fn::Tanh());                               // tanh(c')
  map2(act + 3 * H, o + 6 * H, o, H, [](T x, T y) { return x * y; });  // h' = o tanh(c')
}

// The gradient of c' through every output block that depends on it: with tc = tanh(c'),
// dtc = d tc + dh' * o and dc = dc' + dtc * (1 - tc^2).
template <class T>
inline T lstm_dc(T dh, T dc, T dtc, T og, T tc) {
  return dc + (dtc + dh * og) * (T(1) - tc * tc);
}

// d = the output's gradient row (7H), o = the output row, c = the previous c; writes the gates'
// pre-activation gradient (4H), blocks gi, gf, gg, go.
template <class T>
DAGRAD_SIMD_CLONES void lstm_backward_row(const T* __restrict d, const T* __restrict o, const T* __restrict c,
                                          T* __restrict gi, T* __restrict gf, T* __restrict gg, T* __restrict go,
                                          int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    const T dh = d[j], tc = o[6 * H + j];
    const T i = o[2 * H + j], f = o[3 * H + j], g = o[4 * H + j], og = o[5 * H + j];
    const T dc = lstm_dc(dh, d[H + j], d[6 * H + j], og, tc);
    const T di = d[2 * H + j] + dc * g;  // c' = f c + i g
    const T df = d[3 * H + j] + dc * c[j];
    const T dg = d[4 * H + j] + dc * i;
    const T dog = d[5 * H + j] + dh * tc;  // h' = o tanh(c')
    gi[j] = di * (i * (T(1) - i));         // sigmoid' = y (1 - y)
    gf[j] = df * (f * (T(1) - f));
    gg[j] = dg * (T(1) - g * g);  // tanh' = 1 - y^2
    go[j] = dog * (og * (T(1) - og));
  }
}

// dc_prev = dc * f
template <class T>
DAGRAD_SIMD_CLONES void lstm_state_row(const T* __restrict d, const T* __restrict o, T* __restrict dc, int64_t H) {
  for (int64_t j = 0; j < H; ++j)
    dc[j] = lstm_dc(d[j], d[H + j], d[6 * H + j], o[5 * H + j], o[6 * H + j]) * o[3 * H + j];
}

void check_lstm_grad_inputs(const char* op, const Tensor& dout, const Tensor& out) {
  if (out.ndim() != 2 || out.shape()[1] % 7 != 0 || dout.shape() != out.shape() || dout.dtype() != out.dtype() ||
      !is_floating(out.dtype()))
    throw ShapeError(std::string(op) +
                     ": expected a gradient and an lstm_cell output of one floating dtype and one "
                     "shape (N, 7H), got shapes " +
                     shape_str(dout.shape()) + " and " + shape_str(out.shape()));
}

}  // namespace

// ---- lstm_cell (attrs.ints = {c_offset, gi_row}) -----------------------------------------------------
Tensor lstm_cell(const Tensor& gi, const Tensor& h, const Tensor& state, const Tensor& w_hh, int64_t c_offset,
                 int64_t gi_row) {
  if (w_hh.ndim() != 2 || w_hh.shape()[0] % 4 != 0 || w_hh.shape()[0] == 0)
    throw ShapeError("lstm_cell: w_hh must be 2-d (4 * hidden_size, features), got shape " + shape_str(w_hh.shape()));
  const int64_t H = w_hh.shape()[0] / 4, K = w_hh.shape()[1];
  if (h.ndim() != 2 || h.shape()[1] != K)
    throw ShapeError("lstm_cell: h of shape " + shape_str(h.shape()) + " does not fit w_hh of shape " +
                     shape_str(w_hh.shape()) + " (expected (N, " + std::to_string(K) + "))");
  const int64_t N = h.shape()[0];
  if (gi.ndim() != 2 || gi_row < 0 || gi.shape()[0] - N < gi_row || gi.shape()[1] != 4 * H)
    throw ShapeError("lstm_cell: gi of shape " + shape_str(gi.shape()) + " has no rows [" + std::to_string(gi_row) +
                     ", " + std::to_string(gi_row + N) + ") of " + std::to_string(4 * H) + " columns for h of shape " +
                     shape_str(h.shape()) + " and w_hh of shape " + shape_str(w_hh.shape()));
  if (state.ndim() != 2 || state.shape()[0] != N || c_offset < 0 || c_offset > state.shape()[1] - H)
    throw ShapeError("lstm_cell: state of shape " + shape_str(state.shape()) + " has no cell state of " +
                     std::to_string(H) + " columns at column " + std::to_string(c_offset) + " for a batch of " +
                     std::to_string(N));
  const DType dt = gi.dtype();
  if (!is_floating(dt) || h.dtype() != dt || state.dtype() != dt || w_hh.dtype() != dt)
    throw TypeError(std::string("lstm_cell: expected gi, h, state and w_hh of one floating dtype, got ") +
                    dtype_name(dt) + ", " + dtype_name(h.dtype()) + ", " + dtype_name(state.dtype()) + ", " +
                    dtype_name(w_hh.dtype()));
  OpAttrs a;
  a.ints = {c_offset, gi_row};
  return make_op(OpKind::LstmCell, {gi, h, state, w_hh}, {N, 7 * H}, dt, std::move(a));
}
void LstmCell_forward(Node& out) {
  alloc_output(out);
  const LstmDims d = lstm_dims(out);
  DAGRAD_DISPATCH_FLOAT(out.dtype, "lstm_cell", {
    std::vector<T> a(static_cast<size_t>(d.n * 4 * d.h));
    kernels::gemm(false, true, d.n, 4 * d.h, d.k, in(out, 1).data<T>(), d.k, in(out, 3).data<T>(), d.k, a.data());
    const T* gi = in(out, 0).data<T>() + out.attrs.ints[1] * 4 * d.h;
    const T* c = in(out, 2).data<T>() + d.off;
    T* po = out.data<T>();
    parallel_for(d.n, row_grain(d.h), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        lstm_row<T>(a.data() + r * 4 * d.h, gi + r * 4 * d.h, c + r * d.s, po + r * 7 * d.h, d.h);
    });
  });
}
// Note [Fused cells under create_graph]: the gradient kernels (lstm_cell_backward and its
// kin) are first-order only. Under create_graph (grad mode on while backward builds its graph)
// a cell's rule emits the same formulas as ordinary differentiable ops on the blocks of the
// packed output instead; every block is differentiable, so gradients of gradients are exact.
namespace {
Tensor block(const Tensor& t, int64_t k, int64_t H) { return slice(t, 1, k * H, (k + 1) * H); }

// The gates' pre-activation gradient and dc (before the factor f), as ordinary ops.
std::pair<Tensor, Tensor> lstm_gates_composite(const Tensor& d, const Tensor& o, const Tensor& c, int64_t H) {
  auto b = [&](const Tensor& t, int64_t k) { return block(t, k, H); };
  const Tensor one = scalar_like(o, 1.0);
  const Tensor i = b(o, 2), f = b(o, 3), g = b(o, 4), og = b(o, 5), tc = b(o, 6), dh = b(d, 0);
  const Tensor dc = b(d, 1) + (b(d, 6) + dh * og) * (one - tc * tc);
  const Tensor gates = cat({(b(d, 2) + dc * g) * (i * (one - i)), (b(d, 3) + dc * c) * (f * (one - f)),
                            (b(d, 4) + dc * i) * (one - g * g), (b(d, 5) + dh * tc) * (og * (one - og))},
                           1);
  return {gates, dc};
}
}  // namespace

// d gi = the gates' gradient G at the step's rows (as a slice's gradient, so a layer's steps
// are gathered into one embed_sum); d h = G @ w_hh; d w_hh = G^T h; d state = dc * f at c's columns.
std::vector<Tensor> LstmCell_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  const Tensor h = input(out, 1), state = input(out, 2), w = input(out, 3);
  const int64_t off = out->attrs.ints[0];
  std::vector<Tensor> r(4);
  const int64_t H = out.shape()[1] / 7;
  std::pair<Tensor, Tensor> composite;  // Note [Fused cells under create_graph]
  if (GradMode::is_enabled()) composite = lstm_gates_composite(g, out, slice(state, 1, off, off + H), H);
  if (needs[0] || needs[1] || needs[3]) {
    const Tensor gates = composite.first.defined() ? composite.first : lstm_cell_backward(g, out, state, off);
    const Tensor gi = input(out, 0);
    if (needs[0])
      r[0] = gi.shape()[0] == gates.shape()[0] ? gates : embed(gates, gi.shape(), {out->attrs.ints[1], 0}, {1, 1}, 0.0);
    if (needs[1]) r[1] = matmul(gates, w);
    if (needs[3]) r[3] = matmul_t(gates, h, true, false);
  }
  if (needs[2])
    r[2] = composite.second.defined() ? embed(composite.second * block(out, 3, H), state.shape(), {0, off}, {1, 1}, 0.0)
                                      : lstm_cell_state_backward(g, out, state.shape()[1], off);
  return r;
}

// ---- lstm_cell_backward (attrs.ints = {c_offset}): the gates' pre-activation gradient ---------
Tensor lstm_cell_backward(const Tensor& dout, const Tensor& out, const Tensor& state, int64_t c_offset) {
  check_lstm_grad_inputs("lstm_cell_backward", dout, out);
  const int64_t N = out.shape()[0], H = out.shape()[1] / 7;
  if (state.ndim() != 2 || state.shape()[0] != N || c_offset < 0 || c_offset > state.shape()[1] - H ||
      state.dtype() != out.dtype())
    throw ShapeError("lstm_cell_backward: state of shape " + shape_str(state.shape()) + " has no cell state of " +
                     std::to_string(H) + " columns at column " + std::to_string(c_offset));
  OpAttrs a;
  a.ints = {c_offset};
  return make_op(OpKind::LstmCellBackward, {dout, out, state}, {N, 4 * H}, out.dtype(), std::move(a));
}
void LstmCellBackward_forward(Node& out) {
  alloc_output(out);
  const Node& o = in(out, 1);
  const int64_t N = o.shape[0], H = o.shape[1] / 7, S = in(out, 2).shape[1], off = out.attrs.ints[0];
  DAGRAD_DISPATCH_FLOAT(out.dtype, "lstm_cell_backward", {
    const T* pd = in(out, 0).data<T>();
    const T* po = o.data<T>();
    const T* pc = in(out, 2).data<T>() + off;
    T* pg = out.data<T>();
    parallel_for(N, row_grain(H), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        T* g = pg + r * 4 * H;
        lstm_backward_row<T>(pd + r * 7 * H, po + r * 7 * H, pc + r * S, g, g + H, g + 2 * H, g + 3 * H, H);
      }
    });
  });
}
std::vector<Tensor> LstmCellBackward_backward(const Tensor&, const Tensor&, const std::vector<bool>&) {
  throw RuntimeError(
      "lstm_cell_backward: this kernel is first-order only; a gradient built under create_graph=True uses "
      "differentiable ops instead (Note [Fused cells under create_graph])");
}

// ---- lstm_cell_state_backward (attrs.ints = {c_offset, state width}): dc_prev at c's columns --
Tensor lstm_cell_state_backward(const Tensor& dout, const Tensor& out, int64_t state_width, int64_t c_offset) {
  check_lstm_grad_inputs("lstm_cell_state_backward", dout, out);
  const int64_t N = out.shape()[0], H = out.shape()[1] / 7;
  if (c_offset < 0 || c_offset > state_width - H)
    throw ShapeError("lstm_cell_state_backward: a state of width " + std::to_string(state_width) +
                     " has no cell state of " + std::to_string(H) + " columns at column " + std::to_string(c_offset));
  OpAttrs a;
  a.ints = {c_offset, state_width};
  return make_op(OpKind::LstmCellStateBackward, {dout, out}, {N, state_width}, out.dtype(), std::move(a));
}
void LstmCellStateBackward_forward(Node& out) {
  alloc_output(out);
  const Node& o = in(out, 1);
  const int64_t N = o.shape[0], H = o.shape[1] / 7, S = out.shape[1], off = out.attrs.ints[0];
  DAGRAD_DISPATCH_FLOAT(out.dtype, "lstm_cell_state_backward", {
    const T* pd = in(out, 0).data<T>();
    const T* po = o.data<T>();
    T* ps = out.data<T>();
    parallel_for(N, row_grain(H), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        T* row = ps + r * S;
        std::fill(row, row + off, T(0));
        lstm_state_row<T>(pd + r * 7 * H, po + r * 7 * H, row + off, H);
        std::fill(row + off + H, row + S, T(0));
      }
    });
  });
}
std::vector<Tensor> LstmCellStateBackward_backward(const Tensor&, const Tensor&, const std::vector<bool>&) {
  throw RuntimeError(
      "lstm_cell_state_backward: this kernel is first-order only; a gradient built under create_graph=True "
      "uses differentiable ops instead (Note [Fused cells under create_graph])");
}

// Note [Fused GRU cell]
// ~~~~~~~~~~~~~~~~~~~~~
// gru_cell(gi, h, w_hh, b_hn) is one GRU step in PyTorch's formula: with gh = h @ w_hh^T and the
// step's rows of gi carrying b_ih (and b_hh's r and z parts, which the layer folds in),
//   r = sigmoid(gi_r + gh_r), z = sigmoid(gi_z + gh_z),
//   n = tanh(gi_n + r * (gh_n + b_hn)),  h' = n + z * (h - n)  (= (1 - z) n + z h, ATen's order).
// b_hn stays inside the cell because r multiplies it. The output packs
//   [h' | r | z | n | gh_n + b_hn]  (N, 5H),
// what backward needs (Note [Fused LSTM cell] for the layout's reasons). Backward is one kernel,
// gru_cell_backward, with three modes: the gradient of gi's pre-activations, that of the hidden
// product's (they differ in the n block by the factor r), and h's direct term dh' * z, to
// which the product (d gh) @ w_hh is added.
namespace {
template <class T>
DAGRAD_SIMD_CLONES void gru_tail(const T* __restrict gin, const T* __restrict ghn, const T* __restrict r,
                                 const T* __restrict z, const T* __restrict h, T* __restrict n, T* __restrict hn,
                                 int64_t H) {
  for (int64_t j = 0; j < H; ++j) {
    n[j] = fn::Tanh()(gin[j] + r[j] * ghn[j]);
    hn[j] = n[j] + z[j] * (h[j] - n[j]);
  }
}

// a = the hidden product's row (3H), gi = the input projection's row, b = b_hn or null, h = the
// previous h, o = the packed output row (5H).
template <class T>
void gru_row(T* a, const T* gi, const T* b, const T* h, T* o, int64_t H) {
  const auto sig = [](T x, T y) { return fn::Sigmoid()(x + y); };
  map2(gi, a, o + H, 2 * H, sig);  // r, z
  T* ghn = o + 4 * H;
  if (b)
    map2(a + 2 * H, b, ghn, H, [](T x, T y) { return x + y; });
  else
    std::copy(a + 2 * H, a + 3 * H, ghn);
  gru_tail(gi + 2 * H, ghn, o + H, o + 2 * H, h, o + 3 * H, o, H);
}

// The gradients of the pre-activations: dr, dz, dn (of gi_n; that of gh_n is dn * r).
template <class T>
DAGRAD_SIMD_CLONES void gru_backward_row(const T* __restrict d, const T* __restrict o, const T* __restrict h,
                                         T* __restrict gr, T* __restrict gz, T* __restrict gn, int64_t H, bool hidden) {
  for (int64_t j = 0; j < H; ++j) {
    const T dh = d[j], r = o[H + j], z = o[2 * H + j], n = o[3 * H + j], ghn = o[4 * H + j];
    const T dn = d[3 * H + j] + dh * (T(1) - z);  // h' = n + z (h - n)
    const T dz = d[2 * H + j] + dh * (h[j] - n);
    const T an = dn * (T(1) - n * n);  // tanh' = 1 - y^2
    const T dr = d[H + j] + an * ghn;  // n = tanh(gi_n + r * ghn)
    gr[j] = dr * (r * (T(1) - r));     // sigmoid' = y (1 - y)
    gz[j] = dz * (z * (T(1) - z));
    gn[j] = hidden ? d[4 * H + j] + an * r : an;
  }
}

template <class T>
DAGRAD_SIMD_CLONES void gru_direct_row(const T* __restrict d, const T* __restrict o, T* __restrict dh, int64_t H) {
  for (int64_t j = 0; j < H; ++j) dh[j] = d[j] * o[2 * H + j];  // d h'/d h, directly: z
}
}  // namespace

// ---- gru_cell (attrs.ints = {gi_row}) --------------------------------------------------------
Tensor gru_cell(const Tensor& gi, const Tensor& h, const Tensor& w_hh, const Tensor& b_hn, int64_t gi_row) {
  if (w_hh.ndim() != 2 || w_hh.shape()[0] != 3 * w_hh.shape()[1] || w_hh.shape()[1] == 0)
    throw ShapeError("gru_cell: w_hh must be 2-d (3 * hidden_size, hidden_size), got shape " + shape_str(w_hh.shape()));
  const int64_t H = w_hh.shape()[1];
  if (h.ndim() != 2 || h.shape()[1] != H)
    throw ShapeError("gru_cell: h of shape " + shape_str(h.shape()) + " does not fit w_hh of shape " +
                     shape_str(w_hh.shape()) + " (expected (N, " + std::to_string(H) + "))");
  const int64_t N = h.shape()[0];
  if (gi.ndim() != 2 || gi_row < 0 || gi.shape()[0] - N < gi_row || gi.shape()[1] != 3 * H)
    throw ShapeError("gru_cell: gi of shape " + shape_str(gi.shape()) + " has no rows [" + std::to_string(gi_row) +
                     ", " + std::to_string(gi_row + N) + ") of " + std::to_string(3 * H) + " columns for h of shape " +
                     shape_str(h.shape()));
  if (b_hn.defined() && (b_hn.ndim() != 1 || b_hn.shape()[0] != H))
    throw ShapeError("gru_cell: b_hn of shape " + shape_str(b_hn.shape()) + " is not (" + std::to_string(H) + ",)");
  const DType dt = gi.dtype();
  if (!is_floating(dt) || h.dtype() != dt || w_hh.dtype() != dt || (b_hn.defined() && b_hn.dtype() != dt))
    throw TypeError(std::string("gru_cell: expected gi, h, w_hh and b_hn of one floating dtype, got ") +
                    dtype_name(dt) + ", " + dtype_name(h.dtype()) + ", " + dtype_name(w_hh.dtype()) +
                    (b_hn.defined() ? std::string(", ") + dtype_name(b_hn.dtype()) : std::string()));
  OpAttrs a;
  a.ints = {gi_row};
  std::vector<Tensor> ins = {gi, h, w_hh};
  if (b_hn.defined()) ins.push_back(b_hn);
  return make_op(OpKind::GruCell, ins, {N, 5 * H}, dt, std::move(a));
}
void GruCell_forward(Node& out) {
  alloc_output(out);
  const int64_t N = out.shape[0], H = out.shape[1] / 5;
  DAGRAD_DISPATCH_FLOAT(out.dtype, "gru_cell", {
    std::vector<T> a(static_cast<size_t>(N * 3 * H));
    const T* h = in(out, 1).data<T>();
    kernels::gemm(false, true, N, 3 * H, H, h, H, in(out, 2).data<T>(), H, a.data());
    const T* gi = in(out, 0).data<T>() + out.attrs.ints[0] * 3 * H;
    const T* b = out.inputs.size() > 3 ? in(out, 3).data<T>() : nullptr;
    T* po = out.data<T>();
    parallel_for(N, std::max<int64_t>(1, kElementGrain / std::max<int64_t>(1, 5 * H)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r)
        gru_row<T>(a.data() + r * 3 * H, gi + r * 3 * H, b, h + r * H, po + r * 5 * H, H);
    });
  });
}
// d gi = the pre-activations' gradient at the step's rows; with G = that of the hidden product:
// d h = G @ w_hh + dh' * z, d w_hh = G^T h, d b_hn = G_n summed over the batch.
std::vector<Tensor> GruCell_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  const Tensor gi = input(out, 0), h = input(out, 1), w = input(out, 2);
  const int64_t H = out.shape()[1] / 5;
  std::vector<Tensor> r(out->inputs.size());
  // The three kernels' formulas as ordinary ops under create_graph (Note [Fused cells under create_graph]).
  Tensor c_dgi, c_dgh, c_direct;
  if (GradMode::is_enabled()) {
    auto b = [&](const Tensor& t, int64_t k) { return block(t, k, H); };
    const Tensor one = scalar_like(out, 1.0);
    const Tensor dh = b(g, 0), rr = b(out, 1), z = b(out, 2), n = b(out, 3), ghn = b(out, 4);
    const Tensor an = (b(g, 3) + dh * (one - z)) * (one - n * n);
    const Tensor ar = (b(g, 1) + an * ghn) * (rr * (one - rr));
    const Tensor az = (b(g, 2) + dh * (h - n)) * (z * (one - z));
    c_dgi = cat({ar, az, an}, 1);
    c_dgh = cat({ar, az, b(g, 4) + an * rr}, 1);
    c_direct = dh * z;
  }
  if (needs[0]) {
    const Tensor dgi = c_dgi.defined() ? c_dgi : gru_cell_backward(g, out, h, 0);
    r[0] = gi.shape()[0] == dgi.shape()[0] ? dgi : embed(dgi, gi.shape(), {out->attrs.ints[0], 0}, {1, 1}, 0.0);
  }
  const bool bias = r.size() > 3 && needs[3];
  if (needs[1] || needs[2] || bias) {
    const Tensor dgh = c_dgh.defined() ? c_dgh : gru_cell_backward(g, out, h, 1);
    if (needs[1]) r[1] = add(matmul(dgh, w), c_direct.defined() ? c_direct : gru_cell_backward(g, out, h, 2));
    if (needs[2]) r[2] = matmul_t(dgh, h, true, false);
    if (bias) r[3] = sum(slice(dgh, 1, 2 * H, 3 * H), {0});
  }
  return r;
}

// ---- gru_cell_backward (attrs.ints = {mode}: 0 d gi, 1 d gh, 2 h's direct term) -------------
Tensor gru_cell_backward(const Tensor& dout, const Tensor& out, const Tensor& h, int64_t mode) {
  if (out.ndim() != 2 || out.shape()[1] % 5 != 0 || dout.shape() != out.shape() || dout.dtype() != out.dtype() ||
      !is_floating(out.dtype()) || h.ndim() != 2 || h.shape()[0] != out.shape()[0] ||
      h.shape()[1] * 5 != out.shape()[1] || h.dtype() != out.dtype())
    throw ShapeError(
        "gru_cell_backward: expected a gradient and a gru_cell output of one floating dtype and one "
        "shape (N, 5H) and h (N, H), got shapes " +
        shape_str(dout.shape()) + ", " + shape_str(out.shape()) + " and " + shape_str(h.shape()));
  if (mode < 0 || mode > 2) throw ValueError("gru_cell_backward: mode must be 0, 1 or 2, got " + std::to_string(mode));
  OpAttrs a;
  a.ints = {mode};
  const int64_t N = out.shape()[0], H = h.shape()[1];
  return make_op(OpKind::GruCellBackward, {dout, out, h}, {N, mode == 2 ? H : 3 * H}, out.dtype(), std::move(a));
}
void GruCellBackward_forward(Node& out) {
  alloc_output(out);
  const Node& o = in(out, 1);
  const int64_t N = o.shape[0], H = o.shape[1] / 5, mode = out.attrs.ints[0];
  DAGRAD_DISPATCH_FLOAT(out.dtype, "gru_cell_backward", {
    const T* pd = in(out, 0).data<T>();
    const T* po = o.data<T>();
    const T* ph = in(out, 2).data<T>();
    T* pg = out.data<T>();
    parallel_for(N, std::max<int64_t>(1, kElementGrain / std::max<int64_t>(1, 5 * H)), [&](int64_t r0, int64_t r1) {
      for (int64_t r = r0; r < r1; ++r) {
        if (mode == 2) {
          gru_direct_row<T>(pd + r * 5 * H, po + r * 5 * H, pg + r * H, H);
        } else {
          T* g = pg + r * 3 * H;
          gru_backward_row<T>(pd + r * 5 * H, po + r * 5 * H, ph + r * H, g, g + H, g + 2 * H, H, mode == 1);
        }
      }
    });
  });
}
std::vector<Tensor> GruCellBackward_backward(const Tensor&, const Tensor&, const std::vector<bool>&) {
  throw RuntimeError(
      "gru_cell_backward: this kernel is first-order only; a gradient built under create_graph=True uses "
      "differentiable ops instead (Note [Fused cells under create_graph])");
}

}  // namespace dagrad
