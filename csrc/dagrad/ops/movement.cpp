// Movement ops: reshape, permute (transpose), expand, detach. Reshape and detach share
// their input's storage; permute and expand copy into a contiguous output.
#include <algorithm>
#include <limits>
#include <optional>

#include "dagrad/kernels/dispatch.h"
#include "dagrad/kernels/elementwise.h"
#include "dagrad/kernels/parallel.h"
#include "dagrad/kernels/strided.h"
#include "dagrad/ops.h"
#include "dagrad/ops/composite.h"

namespace dagrad {

namespace {
// out[i] = x[strided index i], for an output of x's dtype.
void strided_copy(Node& out, const Shape& in_strides) {
  alloc_output(out);
  const Node& x = in(out, 0);
  StridedLoop<2> loop(out.shape, {contiguous_strides(out.shape), in_strides});
  const int64_t grain = std::max<int64_t>(1, kElementGrain / std::max<int64_t>(1, loop.row_length()));
  DAGRAD_DISPATCH_ALL(out.dtype, {
    const T* px = x.data<T>();
    T* po = out.data<T>();
    parallel_for(loop.rows(), grain, [&](int64_t r0, int64_t r1) {
      loop.run_rows(r0, r1, [&](int64_t n, const auto& off, const auto& st) {
        T* o = po + off[0];
        const T* s = px + off[1];
        if (st[1] == 1)
          std::copy(s, s + n, o);
        else
          for (int64_t i = 0; i < n; ++i) o[i] = s[i * st[1]];
      });
    });
  });
}
}  // namespace

// ---- reshape (attrs.ints: the new shape) ------------------------------------------------
Tensor reshape(const Tensor& x, Shape shape) {
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == -1) {
      if (infer >= 0) throw ValueError("reshape: only one dimension can be inferred (-1)");
      infer = static_cast<int64_t>(i);
    } else if (shape[i] < 0) {
      throw ValueError("reshape: invalid shape dimension " + std::to_string(shape[i]) + " in " + shape_str(shape));
    } else {
      known = shape[i] == 0 ? 0 : (known > INT64_MAX / shape[i] ? -1 : known * shape[i]);
      if (known < 0) throw ValueError("reshape: shape " + shape_str(shape) + " is too large");
    }
  }
  const int64_t n = x.numel();
  if (infer >= 0) {
    if (known == 0 || n % known != 0)
      throw ShapeError("reshape: cannot reshape tensor of shape " + shape_str(x.shape()) + " (" + std::to_string(n) +
                       " elements) into shape " + shape_str(shape));
    shape[infer] = n / known;
  } else if (known != n) {
    throw ShapeError("reshape: cannot reshape tensor of shape " + shape_str(x.shape()) + " (" + std::to_string(n) +
                     " elements) into shape " + shape_str(shape) + " (" + std::to_string(known) + " elements)");
  }
  if (shape == x.shape()) return x;
  return make_op(OpKind::Reshape, {x}, std::move(shape), x.dtype());
}
void Reshape_forward(Node& out) { out.storage = in(out, 0).storage; }
std::vector<Tensor> Reshape_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  return {reshape(g, input(out, 0).shape())};
}

// ---- permute (attrs.ints: the permutation) -----------------------------------------------
Tensor permute(const Tensor& x, std::vector<int64_t> perm) {
  const int64_t nd = x.ndim();
  if (static_cast<int64_t>(perm.size()) != nd)
    throw ValueError("permute: the permutation has " + std::to_string(perm.size()) + " dims but the tensor of shape " +
                     shape_str(x.shape()) + " has " + std::to_string(nd));
  std::vector<char> seen(nd, 0);
  Shape out(nd);
  bool identity = true;
  for (int64_t i = 0; i < nd; ++i) {
    perm[i] = wrap_dim(perm[i], nd, "permute");
    if (seen[perm[i]]) throw ValueError("permute: repeated dim " + std::to_string(perm[i]));
    seen[perm[i]] = 1;
    out[i] = x.shape()[perm[i]];
    identity = identity && perm[i] == i;
  }
  if (identity) return x;
  OpAttrs attrs;
  attrs.ints = std::move(perm);
  return make_op(OpKind::Permute, {x}, std::move(out), x.dtype(), std::move(attrs));
}
Tensor transpose(const Tensor& x, int64_t dim0, int64_t dim1) {
  const int64_t nd = x.ndim();
  if (nd == 0) {
    wrap_dim_or_scalar(dim0, 0, "transpose");
    wrap_dim_or_scalar(dim1, 0, "transpose");
    return x;
  }
  std::vector<int64_t> perm(nd);
  for (int64_t i = 0; i < nd; ++i) perm[i] = i;
  std::swap(perm[wrap_dim(dim0, nd, "transpose")], perm[wrap_dim(dim1, nd, "transpose")]);
  return permute(x, perm);
}
void Permute_forward(Node& out) {
  const Node& x = in(out, 0);
  Shape xs = contiguous_strides(x.shape), st(out.shape.size());
  for (size_t i = 0; i < st.size(); ++i) st[i] = xs[out.attrs.ints[i]];
  strided_copy(out, st);
}
std::vector<Tensor> Permute_backward(const Tensor& out, const Tensor& g, const std::vector<bool>&) {
  const auto& perm = out->attrs.ints;
  std::vector<int64_t> inv(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inv[perm[i]] = static_cast<int64_t>(i);
  return {permute(g, inv)};
}

// ---- expand (broadcast_to); -1 keeps a dim ------------------------------------------------
Tensor expand(const Tensor& x, const Shape& shape) {
  const Shape& xs = x.shape();
  auto fail = [&](const std::string& why) {
    return ShapeError("expand: cannot expand tensor of shape " + shape_str(xs) + " to " + shape_str(shape) + ": " +
                      why);
  };
  if (shape.size() < xs.size()) throw fail("the target has fewer dimensions");
  const size_t lead = shape.size() - xs.size();
  Shape out(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i < lead) {
      if (shape[i] < 0) throw fail("-1 is not allowed for a new leading dimension");
      out[i] = shape[i];
      continue;
    }
    const int64_t have = xs[i - lead];
    const int64_t want = shape[i] == -1 ? have : shape[i];
    if (want < 0) throw fail("negative size " + std::to_string(want));
    if (have != want && have != 1)
      throw fail("size " + std::to_string(have) + " at dimension " + std::to_string(i) + " must be 1 or " +
                 std::to_string(want));
    out[i] = want;
  }
  checked_numel(out, "expand");
  if (out == xs) return x;
  return make_op(OpKind::Expand, {x}, std::move(out), x.dtype());
}
void Expand_forward(Node& out) { strided_copy(out, broadcast_strides(in(out, 0).shape, out.shape)); }
// Autodiff sums the gradient back to the input's shape.
std::vector<Tensor> Expand_backward(const Tensor&, const Tensor& g, const std::vector<bool>&) { return {g}; }

// ---- detach --------------------------------------------------------------------------------
// A realized tensor detaches to a leaf sharing its storage (and so its version counter,
// as in PyTorch); a pending one to a Detach node that aliases the value once computed.
Tensor detach(const Tensor& x) {
  if (x->realized()) return from_storage(x->storage, x.shape(), x.dtype());
  Tensor t = make_op(OpKind::Detach, {x}, x.shape(), x.dtype());
  t->requires_grad = false;
  return t;
}
void Detach_forward(Node& out) { out.storage = in(out, 0).storage; }
std::vector<Tensor> Detach_backward(const Tensor&, const Tensor&, const std::vector<bool>&) { return {Tensor()}; }

}  // namespace dagrad

// =============================================================================================
// Composites: no backward of their own. Built only from the primitives above, so their
// gradients (of any order) follow from the primitives' backward rules. Where a composition
// decides the gradient at a kink, or keeps a branch finite so that a zero gradient times an
// infinite local derivative cannot make NaN, a NOTE says so.
// =============================================================================================

namespace dagrad {
using namespace composite;

// ---- shapes ------------------------------------------------------------------------------------
Tensor squeeze(const Tensor& x, std::optional<int64_t> dim) {
  Shape s;
  if (dim) {
    if (x.ndim() == 0) {
      wrap_dim_or_scalar(*dim, 0, "squeeze");
      return x;
    }
    const int64_t d = wrap_dim(*dim, x.ndim(), "squeeze");
    for (int64_t i = 0; i < x.ndim(); ++i)
      if (i != d || x.shape()[i] != 1) s.push_back(x.shape()[i]);
  } else {
    for (int64_t v : x.shape())
      if (v != 1) s.push_back(v);
  }
  return reshape(x, s);
}
Tensor unsqueeze(const Tensor& x, int64_t dim) {
  const int64_t d = wrap_dim(dim, x.ndim() + 1, "unsqueeze");
  Shape s = x.shape();
  s.insert(s.begin() + d, 1);
  return reshape(x, s);
}
Tensor flatten(const Tensor& x, int64_t start_dim, int64_t end_dim) {
  if (x.ndim() == 0) {
    wrap_dim_or_scalar(start_dim, 0, "flatten");
    wrap_dim_or_scalar(end_dim, 0, "flatten");
    return reshape(x, {1});
  }
  const int64_t s = wrap_dim(start_dim, x.ndim(), "flatten"), e = wrap_dim(end_dim, x.ndim(), "flatten");
  if (s > e) throw ValueError("flatten: start_dim cannot come after end_dim");
  Shape out(x.shape().begin(), x.shape().begin() + s);
  int64_t n = 1;
  for (int64_t i = s; i <= e; ++i) n *= x.shape()[i];
  out.push_back(n);
  out.insert(out.end(), x.shape().begin() + e + 1, x.shape().end());
  return reshape(x, out);
}
Tensor stack(const std::vector<Tensor>& xs, int64_t dim) {
  if (xs.empty()) throw ValueError("stack: expected a non-empty list of tensors");
  const int64_t d = wrap_dim(dim, xs[0].ndim() + 1, "stack");
  std::vector<Tensor> us;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (xs[i].shape() != xs[0].shape())
      throw ShapeError("stack: expects each tensor to be equal size, but got " + shape_str(xs[0].shape()) +
                       " at entry 0 and " + shape_str(xs[i].shape()) + " at entry " + std::to_string(i));
    us.push_back(unsqueeze(xs[i], d));
  }
  return cat(us, d);
}
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  const int64_t d = wrap_dim(dim, x.ndim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0) throw ValueError("split: split sizes must be non-negative");
    total += s;
  }
  if (total != x.shape()[d])
    throw ValueError("split: split sizes " + shape_str(sizes) + " must sum to the size " +
                     std::to_string(x.shape()[d]) + " of dimension " + std::to_string(d) + " of " +
                     shape_str(x.shape()));
  std::vector<Tensor> out;
  int64_t at = 0;
  for (int64_t s : sizes) {
    out.push_back(slice(x, d, at, at + s, 1));
    at += s;
  }
  return out;
}
std::vector<Tensor> chunk(const Tensor& x, int64_t chunks, int64_t dim) {
  if (chunks <= 0) throw ValueError("chunk: chunks must be positive, got " + std::to_string(chunks));
  const int64_t d = wrap_dim(dim, x.ndim(), "chunk");
  const int64_t n = x.shape()[d], size = std::max<int64_t>(1, (n + chunks - 1) / chunks);
  std::vector<int64_t> sizes;
  for (int64_t at = 0; at < n; at += size) sizes.push_back(std::min(size, n - at));
  if (sizes.empty()) sizes.push_back(0);
  return split(x, sizes, d);
}
Tensor pad(const Tensor& x, const std::vector<int64_t>& p, Scalar value) {
  if (p.size() % 2 != 0 || static_cast<int64_t>(p.size() / 2) > x.ndim())
    throw ValueError("pad: padding length " + std::to_string(p.size()) +
                     " must be even and at most twice the number of dims of " + shape_str(x.shape()));
  Tensor v = x;
  const int64_t nd = x.ndim();
  std::vector<int64_t> starts(nd, 0), steps(nd, 1);
  Shape out = x.shape();
  bool grow = false;
  for (size_t k = 0; k < p.size() / 2; ++k) {
    const int64_t d = nd - 1 - static_cast<int64_t>(k);
    const int64_t before = p[2 * k], after = p[2 * k + 1];
    const int64_t size = v.shape()[d];
    if (before == std::numeric_limits<int64_t>::min() || after == std::numeric_limits<int64_t>::min())
      throw ValueError("pad: padding " + std::to_string(std::min(before, after)) + " is out of range");
    if (before < 0 || after < 0) {  // negative padding crops
      const int64_t b = std::max<int64_t>(0, -before), e = size - std::max<int64_t>(0, -after);
      if (e < b) throw ValueError("pad: cropping more than the size of dimension " + std::to_string(d));
      v = slice(v, d, b, e, 1);
    }
    out[d] =
        checked_add(checked_add(v.shape()[d], std::max<int64_t>(0, before), "pad"), std::max<int64_t>(0, after), "pad");
    starts[d] = std::max<int64_t>(0, before);
    grow = grow || before > 0 || after > 0;
  }
  for (int64_t d = 0; d < nd - static_cast<int64_t>(p.size() / 2); ++d) out[d] = v.shape()[d];
  return grow ? embed(v, out, starts, steps, value) : v;
}

}  // namespace dagrad
