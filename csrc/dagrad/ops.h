// @brief Public op API (graph-building functions) and the per-op dispatch table.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dagrad/graph.h"

namespace dagrad {

// Elementwise (ops/elementwise.cpp). Binary ops broadcast like numpy and promote dtypes.
// The functions of DAGRAD_ELEMENTWISE_OPS (op_list.h) are declared from the list:
//   add, sub, mul, div (a, b); neg, exp, log, sqrt, tanh, sigmoid, relu, abs, sin, cos, log1p,
//   expm1, erf (x); step(x): 1 where x > 0, else 0, no gradient; sign(x): no gradient;
//   relu_backward(g, x), tanh_backward(g, y), sigmoid_backward(g, y): fused local gradients
//   (one pass instead of two or three nodes), each itself differentiable: g * (x > 0),
//   g * (1 - y^2), g * y * (1 - y).
#define DAGRAD_DECLARE_1(f) Tensor f(const Tensor& x);
#define DAGRAD_DECLARE_2(f) Tensor f(const Tensor& a, const Tensor& b);
#define DAGRAD_X(E, f, arity) DAGRAD_DECLARE_##arity(f)
DAGRAD_ELEMENTWISE_OPS(DAGRAD_X)
#undef DAGRAD_X
#undef DAGRAD_DECLARE_1
#undef DAGRAD_DECLARE_2
Tensor cast(const Tensor& x, DType dtype);
/// @brief xs[0] + xs[1] + ... left to right in one node (same shapes and dtype): the fan-in sum
/// of gradients, bitwise equal to the chain of adds it replaces.
Tensor add_n(const std::vector<Tensor>& xs);
/// @brief x ** exponent; an integer tensor to an integer power stays int64 (exact, wrapping).
Tensor pow(const Tensor& x, Scalar exponent);

// Selection and comparison (ops/select.cpp). Comparisons return bool tensors with no gradient.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor ne(const Tensor& a, const Tensor& b);
Tensor lt(const Tensor& a, const Tensor& b);
Tensor le(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);
Tensor ge(const Tensor& a, const Tensor& b);
Tensor where(const Tensor& cond, const Tensor& a, const Tensor& b);
Tensor maximum(const Tensor& a, const Tensor& b);
Tensor minimum(const Tensor& a, const Tensor& b);
/// @brief min(max(x, min), max); a float bound makes an integer tensor's result float32.
Tensor clamp(const Tensor& x, std::optional<Scalar> min, std::optional<Scalar> max);

// Linear algebra (ops/linalg.cpp).
/// @brief Matrix product; 1-d operands as numpy, batch dims broadcast.
Tensor matmul(const Tensor& a, const Tensor& b);
/// @brief op(a) @ op(b) for operands of >= 2 dims, op = transpose of the last two dims when
/// the flag is set; one node, no transposed copy.
Tensor matmul_t(const Tensor& a, const Tensor& b, bool transpose_a, bool transpose_b);

// Reductions (ops/reduce.cpp). Empty `dims` reduces over all dimensions.
Tensor sum(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor prod(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
/// @brief Max / min values over dims; the gradient is shared evenly among ties.
Tensor amax(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
Tensor amin(const Tensor& x, std::vector<int64_t> dims = {}, bool keepdim = false);
/// @brief Index of the first max / min along dim (over the flattened tensor without dim).
Tensor argmax(const Tensor& x, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);
Tensor argmin(const Tensor& x, std::optional<int64_t> dim = std::nullopt, bool keepdim = false);

// Movement (ops/movement.cpp).
Tensor reshape(const Tensor& x, Shape shape);  // one -1 allowed
Tensor permute(const Tensor& x, std::vector<int64_t> perm);
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor detach(const Tensor& x);

// Indexing (ops/index.cpp).
/// @brief x[start:end:step] along one dim, Python's clamping rules; step > 0.
Tensor slice(const Tensor& x, int64_t dim, std::optional<int64_t> start, std::optional<int64_t> end, int64_t step = 1);
/// @brief One strided view per dim (starts, steps, lengths), in one node.
Tensor strided_slice(const Tensor& x, const std::vector<int64_t>& starts, const std::vector<int64_t>& steps,
                     const Shape& shape);
/// @brief The adjoint of strided_slice: x placed in a tensor of `shape` filled with `fill`.
Tensor embed(const Tensor& x, const Shape& shape, const std::vector<int64_t>& starts, const std::vector<int64_t>& steps,
             Scalar fill);
/// @brief Zeros of `shape` plus each piece added at its strided view (regions[i] = starts then
/// steps, one per dim): the gradient of many slices of one tensor in one pass, not one
/// full-size embed per slice.
Tensor embed_sum(const std::vector<Tensor>& pieces, const Shape& shape,
                 const std::vector<std::vector<int64_t>>& regions);
/// @brief numpy integer-array indexing of consecutive dims starting at first_dim.
/// Negative indices count from the end unless allow_negative is false (embedding: IndexError).
Tensor index(const Tensor& x, const std::vector<Tensor>& indices, int64_t first_dim = 0, bool allow_negative = true);
/// @brief The adjoint of index: zeros of `shape` with src added at the indices.
Tensor index_put_add(const Tensor& src, const std::vector<Tensor>& indices, const Shape& shape, int64_t first_dim = 0,
                     bool allow_negative = true);
Tensor gather(const Tensor& x, int64_t dim, const Tensor& index);
Tensor scatter_add(const Tensor& src, int64_t dim, const Tensor& index, const Shape& shape);
Tensor cat(const std::vector<Tensor>& xs, int64_t dim = 0);

// Neural-network primitives (ops/nn.cpp).
/// @brief x @ W^T + b in one node; b may be undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b = Tensor());
/// @brief im2col: (N, C, H, W) -> (N, C*kh*kw, L), padding filled with pad_value.
Tensor unfold(const Tensor& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
              const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, double pad_value = 0.0);
/// @brief (oh, ow) of a 2-d window sliding over the last two dims (H, W) of `input`, each product overflow-checked;
/// ValueError or ShapeError naming `op` when a value is out of range or the window does not fit.
std::pair<int64_t, int64_t> window_output_size(const char* op, const Shape& input, const std::vector<int64_t>& kernel,
                                               const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                                               const std::vector<int64_t>& dilation);
/// @brief col2im, the adjoint of unfold (overlaps are summed).
Tensor fold(const Tensor& cols, const std::vector<int64_t>& output_size, const std::vector<int64_t>& kernel,
            const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
            const std::vector<int64_t>& dilation);

/// @brief Direct 2-d pooling primitives on (N, C, H, W) (Note [Direct pooling]). select: v at
/// the first maximum of each window of x (v has x's shape); route: its adjoint, g sent back to
/// those positions of an x-shaped zero tensor.
Tensor max_pool2d_select(const Tensor& v, const Tensor& x, const std::vector<int64_t>& kernel,
                         const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                         const std::vector<int64_t>& dilation);
Tensor max_pool2d_route(const Tensor& g, const Tensor& x, const std::vector<int64_t>& kernel,
                        const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                        const std::vector<int64_t>& dilation);
/// @brief Average pooling and its adjoint (g spread evenly over each window; `size` is the
/// input's (H, W)).
Tensor avg_pool2d_direct(const Tensor& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                         const std::vector<int64_t>& padding, bool count_include_pad);
Tensor avg_pool2d_adjoint(const Tensor& g, const std::vector<int64_t>& size, const std::vector<int64_t>& kernel,
                          const std::vector<int64_t>& stride, const std::vector<int64_t>& padding,
                          bool count_include_pad);

// Recurrent cells (ops/rnn.cpp, Note [Fused LSTM cell]).
/// @brief One Elman step: act(rows [gi_row, gi_row + N) of gi (M, H) + h (N, K) @ w_hh^T), act
/// tanh, or relu when `relu`.
Tensor rnn_cell(const Tensor& gi, const Tensor& h, const Tensor& w_hh, int64_t gi_row = 0, bool relu = false);
/// @brief One LSTM step: rows [gi_row, gi_row + N) of gi (M, 4H) the step's input projection with
/// both biases, h (N, K), the cell state c at columns [c_offset, c_offset + H) of state (N, S),
/// w_hh (4H, K). Returns (N, 7H) = [h' | c' | i | f | g | o | tanh(c')].
Tensor lstm_cell(const Tensor& gi, const Tensor& h, const Tensor& state, const Tensor& w_hh, int64_t c_offset,
                 int64_t gi_row = 0);
/// @brief The gradient of lstm_cell's gates before their nonlinearities (N, 4H), from the
/// output's gradient dout, the output and the state it read.
Tensor lstm_cell_backward(const Tensor& dout, const Tensor& out, const Tensor& state, int64_t c_offset);
/// @brief The gradient of lstm_cell's state input (N, state_width): zero but at c's columns.
Tensor lstm_cell_state_backward(const Tensor& dout, const Tensor& out, int64_t state_width, int64_t c_offset);

/// @brief One GRU step (PyTorch's formula): rows [gi_row, gi_row + N) of gi (M, 3H) the step's
/// input projection, h (N, H), w_hh (3H, H), b_hn (H) or undefined. Returns (N, 5H) =
/// [h' | r | z | n | h @ w_hn^T + b_hn] (Note [Fused GRU cell]).
Tensor gru_cell(const Tensor& gi, const Tensor& h, const Tensor& w_hh, const Tensor& b_hn, int64_t gi_row = 0);
/// @brief gru_cell's gradients from the output's gradient dout, the output and h: mode 0 that
/// of gi's pre-activations (N, 3H), 1 that of the hidden product's (N, 3H), 2 h's direct term.
Tensor gru_cell_backward(const Tensor& dout, const Tensor& out, const Tensor& h, int64_t mode);

// User-defined ops (ops/custom.cpp).
/// @brief An op defined outside the op list: its forward computes `out` (allocate with
/// alloc_output, or share an input's storage) from its inputs; its backward, if any, returns
/// input gradients built from ordinary ops (it may be empty for an op with no gradient).
struct CustomOp {
  std::string name;
  std::function<void(Node& out)> forward;
  std::function<std::vector<Tensor>(const Tensor& out, const Tensor& grad, const std::vector<bool>& needs)> backward;
  /// Rough work of one call, in the scheduler's cost unit (about one element touched, a few
  /// nanoseconds); see Note [Serial or parallel run].
  double cost = 1000.0;
};
Tensor custom(const std::shared_ptr<const CustomOp>& op, const std::vector<Tensor>& inputs, Shape shape, DType dtype);

// Composites, each in its family's file under "Composites: no backward of their own": built
// from the primitives above, so their gradients follow.
Tensor square(const Tensor& x);
Tensor rsqrt(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
/// @brief min(max(x, min_val), max_val) with PyTorch's zero gradient at the kinks.
Tensor hardtanh(const Tensor& x, double min_val = -1.0, double max_val = 1.0);
Tensor elu(const Tensor& x, double alpha = 1.0);
Tensor gelu(const Tensor& x, bool tanh_approximation = false);
Tensor softplus(const Tensor& x, double beta = 1.0, double threshold = 20.0);
Tensor silu(const Tensor& x);
Tensor var(const Tensor& x, std::vector<int64_t> dims = {}, double correction = 1.0, bool keepdim = false);
Tensor stddev(const Tensor& x, std::vector<int64_t> dims = {}, double correction = 1.0, bool keepdim = false);
Tensor logsumexp(const Tensor& x, std::vector<int64_t> dims, bool keepdim = false);
Tensor softmax(const Tensor& x, int64_t dim);
Tensor log_softmax(const Tensor& x, int64_t dim);
/// @brief Max / min along dim with the index; the gradient goes to that (first) element.
std::pair<Tensor, Tensor> max_dim(const Tensor& x, int64_t dim, bool keepdim = false);
std::pair<Tensor, Tensor> min_dim(const Tensor& x, int64_t dim, bool keepdim = false);
Tensor squeeze(const Tensor& x, std::optional<int64_t> dim = std::nullopt);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor flatten(const Tensor& x, int64_t start_dim = 0, int64_t end_dim = -1);
Tensor stack(const std::vector<Tensor>& xs, int64_t dim = 0);
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim = 0);
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim = 0);
/// @brief Constant padding; `pad` lists (before, after) pairs from the last dim backwards, as
/// PyTorch's F.pad. Negative amounts crop.
Tensor pad(const Tensor& x, const std::vector<int64_t>& pad, Scalar value = 0.0);
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, const std::vector<int64_t>& stride,
              const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation, int64_t groups);
Tensor conv1d(const Tensor& x, const Tensor& w, const Tensor& b, int64_t stride, int64_t padding, int64_t dilation,
              int64_t groups);
Tensor max_pool2d(const Tensor& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                  const std::vector<int64_t>& padding, const std::vector<int64_t>& dilation = {1, 1});
Tensor avg_pool2d(const Tensor& x, const std::vector<int64_t>& kernel, const std::vector<int64_t>& stride,
                  const std::vector<int64_t>& padding, bool count_include_pad = true);
Tensor embedding(const Tensor& indices, const Tensor& weight);
Tensor layer_norm(const Tensor& x, const Shape& normalized_shape, const Tensor& weight, const Tensor& bias,
                  double eps = 1e-5);
/// @brief Normalises over every dim but 1 with the given mean and variance (per channel).
Tensor batch_norm_apply(const Tensor& x, const Tensor& mean, const Tensor& var, const Tensor& weight,
                        const Tensor& bias, double eps);

enum class Reduction { None, Mean, Sum };
Reduction reduction_from(const std::string& name);
Tensor mse_loss(const Tensor& input, const Tensor& target, Reduction r = Reduction::Mean);
Tensor l1_loss(const Tensor& input, const Tensor& target, Reduction r = Reduction::Mean);
Tensor smooth_l1_loss(const Tensor& input, const Tensor& target, Reduction r = Reduction::Mean, double beta = 1.0);
Tensor nll_loss(const Tensor& logp, const Tensor& target, const Tensor& weight = Tensor(),
                Reduction r = Reduction::Mean, int64_t ignore_index = -100);
/// @brief Mean (or sum) cross-entropy of float (N, C) logits against int64 (N,) class indices
/// over the rows whose target is not ignore_index: one fused node (ops/loss.cpp).
Tensor cross_entropy_rows(const Tensor& logits, const Tensor& target, int64_t ignore_index, bool sum);
Tensor cross_entropy(const Tensor& logits, const Tensor& target, const Tensor& weight = Tensor(),
                     Reduction r = Reduction::Mean, int64_t ignore_index = -100, double label_smoothing = 0.0);
Tensor binary_cross_entropy(const Tensor& p, const Tensor& target, const Tensor& weight = Tensor(),
                            Reduction r = Reduction::Mean);
Tensor binary_cross_entropy_with_logits(const Tensor& x, const Tensor& target, const Tensor& weight = Tensor(),
                                        Reduction r = Reduction::Mean, const Tensor& pos_weight = Tensor());

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
using BackwardFn = std::vector<Tensor> (*)(const Tensor& out, const Tensor& grad, const std::vector<bool>& needs);
using ForwardFn = void (*)(Node& out);

struct OpInfo {
  const char* name;
  ForwardFn forward;
  BackwardFn backward;
};

const OpInfo& op_info(OpKind op);

#define DAGRAD_X(name, str, family) \
  void name##_forward(Node& out);   \
  std::vector<Tensor> name##_backward(const Tensor& out, const Tensor& grad, const std::vector<bool>& needs);
DAGRAD_OPS(DAGRAD_X)
#undef DAGRAD_X

// Helpers for op definitions.
inline const Node& in(const Node& n, size_t i) { return *n.inputs[i].node; }
inline Tensor input(const Tensor& out, size_t i) { return Tensor(out->inputs[i].node); }
/// A 0-d constant with t's dtype.
inline Tensor scalar_like(const Tensor& t, double v) { return scalar(v, t.dtype()); }

}  // namespace dagrad
