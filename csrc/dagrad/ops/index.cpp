// Indexing ops: strided slices and their adjoint (embed), integer-array indexing and its
// adjoint (index_put with accumulation), gather / scatter_add, and cat. Each op's adjoint is
// its backward rule, and vice versa, so gradients of any order are ordinary graphs.
#include <algorithm>
#include <cstring>

#include "dagrad/kernels/dispatch.h"
#include "dagrad/kernels/elementwise.h"
#include "dagrad/kernels/elementwise_fns.h"
#include "dagrad/ops.h"

namespace dagrad {

namespace {

// attrs.ints of Slice and Embed: [start_0..start_{n-1}, step_0..step_{n-1}] over the larger
// tensor's dims (the input of a slice, the output of an embed).
OpAttrs slice_attrs(const std::vector<int64_t>& starts, const std::vector<int64_t>& steps) {
  OpAttrs a;
  a.ints = starts;
  a.ints.insert(a.ints.end(), steps.begin(), steps.end());
  return a;
}

// Strides and base offset of the strided view that a slice reads (or an embed writes).
void view_of(const Shape& big, const std::vector<int64_t>& ints, Shape& strides, int64_t& base) {
  const size_t n = big.size();
  Shape cs = contiguous_strides(big);
  strides.assign(n, 0);
  base = 0;
  for (size_t d = 0; d < n; ++d) {
    base += ints[d] * cs[d];
    strides[d] = cs[d] * ints[n + d];
  }
}

void check_index(int64_t v, int64_t size, int64_t dim, const char* op, bool allow_negative = true) {
  if (v < (allow_negative ? -size : 0) || v >= size)
    throw IndexError(std::string(op) + ": index " + std::to_string(v) + " is out of bounds for dimension " +
                     std::to_string(dim) + " with size " + std::to_string(size));
}

}  // namespace

// ---- strided slice --------------------------------------------------------------------------
Tensor strided_slice(const Tensor& x, const std::vector<int64_t>& starts, const std::vector<int64_t>& steps,
                     const Shape& shape) {
  const int64_t nd = x.ndim();
  if (static_cast<int64_t>(starts.size()) != nd || static_cast<int64_t>(steps.size()) != nd ||
      static_cast<int64_t>(shape.size()) != nd)
    throw ValueError("slice: expected one start, step and length per dimension of " + shape_str(x.shape()));
  for (int64_t d = 0; d < nd; ++d) {
    if (steps[d] <= 0) throw ValueError("slice: step must be greater than zero, got " + std::to_string(steps[d]));
    if (shape[d] < 0 || starts[d] < 0 || (shape[d] > 0 && starts[d] + (shape[d] - 1) * steps[d] >= x.shape()[d]))
      throw IndexError("slice: the slice starting at " + std::to_string(starts[d]) + " with step " +
                       std::to_string(steps[d]) + " and length " + std::to_string(shape[d]) +
                       " does not fit dimension " + std::to_string(d) + " of size " + std::to_string(x.shape()[d]));
  }
  if (shape == x.shape()) return x;
  return make_op(OpKind::Slice, {x}, shape, x.dtype(), slice_attrs(starts, steps));
}

Tensor slice(const Tensor& x, int64_t dim, std::optional<int64_t> start, std::optional<int64_t> end, int64_t step) {
  const int64_t d = wrap_dim(dim, x.ndim(), "slice");
  if (step <= 0) throw ValueError("slice: step must be greater than zero, got " + std::to_string(step));
  const int64_t size = x.shape()[d];
  auto clampi = [size](int64_t v) {
    if (v < 0) v += size;
    return std::min(std::max<int64_t>(v, 0), size);
  };
  const int64_t s = start ? clampi(*start) : 0, e = end ? clampi(*end) : size;
  const int64_t len = e > s ? (e - s + step - 1) / step : 0;
  std::vector<int64_t> starts(x.ndim(), 0), steps(x.ndim(), 1);
  Shape shape = x.shape();
  starts[d] = len > 0 ? s : 0;
  steps[d] = step;
  shape[d] = len;
  return strided_slice(x, starts, steps, shape);
}

void Slice_forward(Node& out) {
  alloc_output(out);
  const Node& x = in(out, 0);
  Shape vs;
  int64_t base;
  view_of(x.shape, out.attrs.ints, vs, base);
  StridedLoop<2> loop(out.shape, {contiguous_strides(out.shape), vs});
  DAGRAD_DISPATCH_ALL(out.dtype, {
    const T* px = x.data<T>() + base;
    T* po = out.data<T>();
    loop.run_rows(0, loop.rows(), [&](int64_t n, const auto& off, const auto& st) {
      for (int64_t i = 0; i < n; ++i) po[off[0] + i * st[0]] = px[off[1] + i * st[1]];
    });
  });
}
std::vector<Tensor> Slice_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  const auto& ints = out->attrs.ints;
  const size_t n = ints.size() / 2;
  std::vector<int64_t> starts(ints.begin(), ints.begin() + n), steps(ints.begin() + n, ints.end());
  return {embed(g, input(out, 0).shape(), starts, steps, 0.0)};
}

// ---- embed: x placed at a strided view of a tensor of `shape` filled with `fill` -------------
Tensor embed(const Tensor& x, const Shape& shape, const std::vector<int64_t>& starts, const std::vector<int64_t>& steps,
             Scalar fill) {
  OpAttrs a = slice_attrs(starts, steps);
  a.scalar = check_scalar_fits(fill, x.dtype(), "pad");
  checked_numel(shape, "embed");
  return make_op(OpKind::Embed, {x}, shape, x.dtype(), std::move(a));
}
void Embed_forward(Node& out) {
  alloc_output(out);
  const Node& x = in(out, 0);
  Shape vs;
  int64_t base;
  view_of(out.shape, out.attrs.ints, vs, base);
  StridedLoop<2> loop(x.shape, {vs, contiguous_strides(x.shape)});
  DAGRAD_DISPATCH_ALL(out.dtype, {
    T* po = out.data<T>();
    std::fill(po, po + out.numel(), out.attrs.scalar.as<T>());
    const T* px = x.data<T>();
    T* pb = po + base;
    loop.run_rows(0, loop.rows(), [&](int64_t n, const auto& off, const auto& st) {
      for (int64_t i = 0; i < n; ++i) pb[off[0] + i * st[0]] = px[off[1] + i * st[1]];
    });
  });
}
std::vector<Tensor> Embed_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  const auto& ints = out->attrs.ints;
  const size_t n = ints.size() / 2;
  std::vector<int64_t> starts(ints.begin(), ints.begin() + n), steps(ints.begin() + n, ints.end());
  return {strided_slice(g, starts, steps, input(out, 0).shape())};
}

// ---- embed_sum (attrs.ints: each piece's starts then steps, piece after piece) -----------------
Tensor embed_sum(const std::vector<Tensor>& pieces, const Shape& shape,
                 const std::vector<std::vector<int64_t>>& regions) {
  if (pieces.empty() || pieces.size() != regions.size()) throw ValueError("embed_sum: expected one region per piece");
  OpAttrs a;
  DType dt = pieces[0].dtype();
  for (size_t i = 0; i < pieces.size(); ++i) {
    if (regions[i].size() != 2 * shape.size() || pieces[i].ndim() != static_cast<int64_t>(shape.size()) ||
        pieces[i].dtype() != dt)
      throw ValueError("embed_sum: piece " + std::to_string(i) + " of shape " + shape_str(pieces[i].shape()) +
                       " does not fit a tensor of shape " + shape_str(shape));
    a.ints.insert(a.ints.end(), regions[i].begin(), regions[i].end());
  }
  checked_numel(shape, "embed_sum");
  return make_op(OpKind::EmbedSum, pieces, shape, dt, std::move(a));
}
void EmbedSum_forward(Node& out) {
  alloc_output(out);
  const size_t nd = out.shape.size();
  DAGRAD_DISPATCH_NUMERIC(out.dtype, "embed_sum", {
    T* po = out.data<T>();
    std::fill(po, po + out.numel(), T(0));
    for (size_t i = 0; i < out.inputs.size(); ++i) {
      const Node& x = in(out, i);
      std::vector<int64_t> region(out.attrs.ints.begin() + 2 * nd * i, out.attrs.ints.begin() + 2 * nd * (i + 1));
      Shape vs;
      int64_t base;
      view_of(out.shape, region, vs, base);
      StridedLoop<2> loop(x.shape, {vs, contiguous_strides(x.shape)});
      const T* px = x.data<T>();
      T* pb = po + base;
      loop.run_rows(0, loop.rows(), [&](int64_t n, const auto& off, const auto& st) {
        for (int64_t k = 0; k < n; ++k) {
          T& d = pb[off[0] + k * st[0]];
          d = fn::add(d, px[off[1] + k * st[1]]);  // Note [Integer overflow wraps]
        }
      });
    }
  });
}
std::vector<Tensor> EmbedSum_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  const size_t nd = out.shape().size();
  std::vector<Tensor> r(out->inputs.size());
  for (size_t i = 0; i < r.size(); ++i) {
    if (!needs[i]) continue;
    const auto& a = out->attrs.ints;
    std::vector<int64_t> starts(a.begin() + 2 * nd * i, a.begin() + 2 * nd * i + nd),
        steps(a.begin() + 2 * nd * i + nd, a.begin() + 2 * nd * (i + 1));
    r[i] = strided_slice(g, starts, steps, input(out, i).shape());
  }
  return r;
}

// ---- integer-array indexing (attrs.ints = {first indexed dim}) -------------------------------
namespace {
Shape index_result_shape(const Shape& xs, int64_t d0, size_t k, const Shape& b) {
  Shape out(xs.begin(), xs.begin() + d0);
  out.insert(out.end(), b.begin(), b.end());
  out.insert(out.end(), xs.begin() + d0 + k, xs.end());
  return out;
}

// Element offsets (into the indexed block) for every broadcast index position, bounds-checked
// before any data of the indexed tensor is read.
std::vector<int64_t> index_offsets(const Node& n, size_t first_index_input, const Shape& xs, int64_t d0,
                                   const Shape& bshape, const char* op, bool allow_negative) {
  const size_t k = n.inputs.size() - first_index_input;
  const int64_t nb = numel(bshape);
  std::vector<int64_t> off(static_cast<size_t>(nb), 0);
  Shape cs = contiguous_strides(Shape(xs.begin() + d0, xs.end()));
  for (size_t j = 0; j < k; ++j) {
    const Node& idx = in(n, first_index_input + j);
    const int64_t* pi = idx.data<int64_t>();
    const int64_t size = xs[d0 + j];
    StridedLoop<2> loop(bshape, {contiguous_strides(bshape), broadcast_strides(idx.shape, bshape)});
    loop.run_rows(0, loop.rows(), [&](int64_t len, const auto& o, const auto& st) {
      for (int64_t i = 0; i < len; ++i) {
        int64_t v = pi[o[1] + i * st[1]];
        check_index(v, size, d0 + static_cast<int64_t>(j), op, allow_negative);
        if (v < 0) v += size;
        off[o[0] + i * st[0]] += v * cs[j];
      }
    });
  }
  return off;
}

// The layout shared by index and its adjoint: `big` is the indexed tensor (index's input,
// index_put's output) and `small` the gathered one; k index tensors cover dims [d0, d0 + k).
struct IndexLayout {
  std::vector<int64_t> off;  // element offset within a block of big, per broadcast index
  int64_t outer = 1, inner = 1, block = 1, nb = 0;
};
IndexLayout index_layout(const Node& n, const Shape& big, const Shape& small, const char* op) {
  const int64_t d0 = n.attrs.ints[0];
  const int64_t k = static_cast<int64_t>(n.inputs.size()) - 1;
  const int64_t nd = static_cast<int64_t>(big.size());
  Shape b(small.begin() + d0, small.end() - (nd - d0 - k));
  IndexLayout l;
  l.off = index_offsets(n, 1, big, d0, b, op, n.attrs.ints[1] != 0);
  for (int64_t d = 0; d < d0; ++d) l.outer *= big[d];
  for (int64_t d = d0 + k; d < nd; ++d) l.inner *= big[d];
  for (int64_t d = d0; d < nd; ++d) l.block *= big[d];
  l.nb = static_cast<int64_t>(l.off.size());
  return l;
}
}  // namespace

// attrs.ints = {first indexed dim, negative indices allowed}
Tensor index(const Tensor& x, const std::vector<Tensor>& indices, int64_t first_dim, bool allow_negative) {
  if (indices.empty()) return x;
  const int64_t d0 = x.ndim() == 0 ? 0 : wrap_dim(first_dim, x.ndim(), "index");
  if (d0 + static_cast<int64_t>(indices.size()) > x.ndim())
    throw IndexError("index: too many indices for a tensor of shape " + shape_str(x.shape()));
  Shape b;
  for (const Tensor& i : indices) b = broadcast_shapes(b, i.shape(), "index");
  // Indices that broadcast to no position select nothing, and are not checked (numpy, torch).
  const bool selects = numel(b) > 0;
  std::vector<Tensor> ins = {x};
  for (const Tensor& i : indices) {
    if (i.dtype() != DType::Int64)
      throw TypeError(std::string("index: indices must be int64 tensors, got ") + dtype_name(i.dtype()));
    ins.push_back(i);
    if (selects && i->realized()) {  // indices from the user are checked now, on the line that used them
      const int64_t* p = i->data<int64_t>();
      const int64_t size = x.shape()[d0 + ins.size() - 2];
      for (int64_t e = 0; e < i.numel(); ++e)
        check_index(p[e], size, d0 + static_cast<int64_t>(ins.size()) - 2, "index", allow_negative);
    }
  }
  OpAttrs a;
  a.ints = {d0, allow_negative ? 1 : 0};
  return make_op(OpKind::Index, ins, index_result_shape(x.shape(), d0, indices.size(), b), x.dtype(), std::move(a));
}
void Index_forward(Node& out) {
  const Node& x = in(out, 0);
  const IndexLayout l = index_layout(out, x.shape, out.shape, "index");
  alloc_output(out);
  DAGRAD_DISPATCH_ALL(out.dtype, {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for (int64_t p = 0; p < l.outer; ++p)
      for (int64_t j = 0; j < l.nb; ++j) {
        const T* src = px + p * l.block + l.off[j];
        std::copy(src, src + l.inner, po + (p * l.nb + j) * l.inner);
      }
  });
}
std::vector<Tensor> Index_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  std::vector<Tensor> idx;
  for (size_t i = 1; i < out->inputs.size(); ++i) idx.push_back(input(out, i));
  std::vector<Tensor> r(out->inputs.size());
  r[0] = index_put_add(g, idx, input(out, 0).shape(), out->attrs.ints[0], out->attrs.ints[1] != 0);
  return r;
}

// A tensor of `shape`, zero but for the rows of `src` added at `indices` (repeated indices
// accumulate, in index order: deterministic).
Tensor index_put_add(const Tensor& src, const std::vector<Tensor>& indices, const Shape& shape, int64_t first_dim,
                     bool allow_negative) {
  std::vector<Tensor> ins = {src};
  ins.insert(ins.end(), indices.begin(), indices.end());
  OpAttrs a;
  a.ints = {first_dim, allow_negative ? 1 : 0};
  return make_op(OpKind::IndexPut, ins, shape, src.dtype(), std::move(a));
}
void IndexPut_forward(Node& out) {
  const Node& src = in(out, 0);
  const IndexLayout l = index_layout(out, out.shape, src.shape, "index_put");
  alloc_output(out);
  DAGRAD_DISPATCH_NUMERIC(out.dtype, "index_put", {
    const T* ps = src.data<T>();
    T* po = out.data<T>();
    std::fill(po, po + out.numel(), T(0));
    for (int64_t p = 0; p < l.outer; ++p)
      for (int64_t j = 0; j < l.nb; ++j) {
        T* dst = po + p * l.block + l.off[j];
        const T* s = ps + (p * l.nb + j) * l.inner;
        for (int64_t i = 0; i < l.inner; ++i) dst[i] = fn::add(dst[i], s[i]);
      }
  });
}
std::vector<Tensor> IndexPut_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  std::vector<Tensor> idx;
  for (size_t i = 1; i < out->inputs.size(); ++i) idx.push_back(input(out, i));
  std::vector<Tensor> r(out->inputs.size());
  r[0] = index(g, idx, out->attrs.ints[0], out->attrs.ints[1] != 0);
  return r;
}

// ---- gather and scatter_add along one dim (attrs.ints = {dim}) -------------------------------
namespace {
void check_gather_shapes(const Shape& xs, const Shape& is, int64_t d, const char* op) {
  if (xs.size() != is.size())
    throw ValueError(std::string(op) + ": index of shape " + shape_str(is) +
                     " must have as many dims as the tensor of shape " + shape_str(xs));
  for (size_t i = 0; i < xs.size(); ++i)
    if (static_cast<int64_t>(i) != d && is[i] > xs[i])
      throw ValueError(std::string(op) + ": index of shape " + shape_str(is) + " is larger than the tensor of shape " +
                       shape_str(xs) + " at dimension " + std::to_string(i));
}
// Calls f(index position, element offset in the big tensor) for each index element.
template <class F>
void for_each_gathered(const Node& idx, const Shape& big, int64_t d, const char* op, const F& f) {
  Shape cs = contiguous_strides(big), st = cs;
  st[d] = 0;
  const int64_t* pi = idx.data<int64_t>();
  StridedLoop<2> loop(idx.shape, {contiguous_strides(idx.shape), st});
  // Check every index first: nothing is read or written before all are known to be valid.
  for (int64_t e = 0; e < idx.numel(); ++e) check_index(pi[e], big[d], d, op, /*allow_negative=*/false);
  loop.run_rows(0, loop.rows(), [&](int64_t n, const auto& off, const auto& s) {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t pos = off[0] + i * s[0];
      int64_t v = pi[pos];
      if (v < 0) v += big[d];
      f(pos, off[1] + i * s[1] + v * cs[d]);
    }
  });
}
}  // namespace

Tensor gather(const Tensor& x, int64_t dim, const Tensor& idx) {
  if (idx.dtype() != DType::Int64)
    throw TypeError(std::string("gather: index must be int64, got ") + dtype_name(idx.dtype()));
  // PyTorch treats 0-d and 1-d alike here (Note [Dims of 0-d tensors]): run on 1-d views.
  if (x.ndim() <= 1 && idx.ndim() <= 1 && (x.ndim() == 0 || idx.ndim() == 0)) {
    wrap_dim_or_scalar(dim, x.ndim(), "gather");
    return reshape(gather(reshape(x, {x.numel()}), 0, reshape(idx, {idx.numel()})), idx.shape());
  }
  const int64_t d = wrap_dim(dim, x.ndim(), "gather");
  check_gather_shapes(x.shape(), idx.shape(), d, "gather");
  OpAttrs a;
  a.ints = {d};
  return make_op(OpKind::Gather, {x, idx}, idx.shape(), x.dtype(), std::move(a));
}
void Gather_forward(Node& out) {
  const Node& x = in(out, 0);
  const Node& idx = in(out, 1);
  alloc_output(out);
  DAGRAD_DISPATCH_ALL(out.dtype, {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    for_each_gathered(idx, x.shape, out.attrs.ints[0], "gather", [&](int64_t pos, int64_t src) { po[pos] = px[src]; });
  });
}
std::vector<Tensor> Gather_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return {scatter_add(g, out->attrs.ints[0], input(out, 1), input(out, 0).shape()), Tensor()};
}

Tensor scatter_add(const Tensor& src, int64_t dim, const Tensor& idx, const Shape& shape) {
  if (idx.dtype() != DType::Int64)
    throw TypeError(std::string("scatter_add: index must be int64, got ") + dtype_name(idx.dtype()));
  if (shape.size() <= 1 && idx.ndim() <= 1 && (shape.empty() || idx.ndim() == 0)) {
    wrap_dim_or_scalar(dim, static_cast<int64_t>(shape.size()), "scatter_add");
    if (src.shape() != idx.shape())
      throw ShapeError("scatter_add: src of shape " + shape_str(src.shape()) + " must match the index of shape " +
                       shape_str(idx.shape()));
    const Shape flat = {idx.numel()};
    return reshape(scatter_add(reshape(src, flat), 0, reshape(idx, flat), {numel(shape)}), shape);
  }
  const int64_t d = wrap_dim(dim, static_cast<int64_t>(shape.size()), "scatter_add");
  check_gather_shapes(shape, idx.shape(), d, "scatter_add");
  if (src.shape() != idx.shape())
    throw ShapeError("scatter_add: src of shape " + shape_str(src.shape()) + " must match the index of shape " +
                     shape_str(idx.shape()));
  OpAttrs a;
  a.ints = {d};
  return make_op(OpKind::ScatterAdd, {src, idx}, shape, src.dtype(), std::move(a));
}
void ScatterAdd_forward(Node& out) {
  const Node& src = in(out, 0);
  const Node& idx = in(out, 1);
  alloc_output(out);
  DAGRAD_DISPATCH_NUMERIC(out.dtype, "scatter_add", {
    const T* ps = src.data<T>();
    T* po = out.data<T>();
    std::fill(po, po + out.numel(), T(0));
    for_each_gathered(idx, out.shape, out.attrs.ints[0], "scatter_add",
                      [&](int64_t pos, int64_t dst) { po[dst] = fn::add(po[dst], ps[pos]); });
  });
}
std::vector<Tensor> ScatterAdd_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return {gather(g, out->attrs.ints[0], input(out, 1)), Tensor()};
}

// ---- cat (attrs.ints = {dim}) ------------------------------------------------------------------
Tensor cat(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.empty()) throw ValueError("cat: expected a non-empty list of tensors");
  const Tensor& first = xs[0];
  if (first.ndim() == 0) throw ValueError("cat: zero-dimensional tensors cannot be concatenated");
  const int64_t d = wrap_dim(dim, first.ndim(), "cat");
  DType dt = first.dtype();
  for (const Tensor& t : xs) dt = promote_types(dt, t.dtype());
  Shape out = first.shape();
  out[d] = 0;
  std::vector<Tensor> ins;
  for (size_t i = 0; i < xs.size(); ++i) {
    const Tensor& t = xs[i];
    bool ok = t.ndim() == first.ndim();
    for (int64_t k = 0; ok && k < t.ndim(); ++k) ok = k == d || t.shape()[k] == first.shape()[k];
    if (!ok)
      throw ShapeError("cat: tensor " + std::to_string(i) + " of shape " + shape_str(t.shape()) +
                       " does not match tensor 0 of shape " + shape_str(first.shape()) + " outside dimension " +
                       std::to_string(d));
    out[d] += t.shape()[d];
    ins.push_back(t.dtype() == dt ? t : cast(t, dt));
  }
  if (ins.size() == 1) return ins[0];
  OpAttrs a;
  a.ints = {d};
  return make_op(OpKind::Cat, ins, std::move(out), dt, std::move(a));
}
void Cat_forward(Node& out) {
  alloc_output(out);
  const int64_t d = out.attrs.ints[0];
  int64_t outer = 1, inner = 1;
  for (int64_t k = 0; k < d; ++k) outer *= out.shape[k];
  for (int64_t k = d + 1; k < out.ndim(); ++k) inner *= out.shape[k];
  const int64_t row = out.shape[d] * inner;
  const size_t isz = itemsize(out.dtype);
  char* po = static_cast<char*>(out.storage->data());
  int64_t at = 0;
  for (size_t i = 0; i < out.inputs.size(); ++i) {
    const Node& x = in(out, i);
    const int64_t chunk = x.shape[d] * inner;
    const char* px = static_cast<const char*>(x.storage->data());
    for (int64_t o = 0; o < outer; ++o)
      std::memcpy(po + (o * row + at) * isz, px + o * chunk * isz, static_cast<size_t>(chunk) * isz);
    at += chunk;
  }
}
std::vector<Tensor> Cat_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  const int64_t d = out->attrs.ints[0];
  std::vector<Tensor> r(out->inputs.size());
  int64_t at = 0;
  for (size_t i = 0; i < r.size(); ++i) {
    const int64_t len = out->inputs[i].node->shape[d];
    if (needs[i]) r[i] = slice(g, d, at, at + len, 1);
    at += len;
  }
  return r;
}

}  // namespace dagrad
