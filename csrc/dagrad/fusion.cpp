// Elementwise fusion: a group of elementwise nodes whose intermediates nobody else can see is
// computed by one kernel, block by block, with the intermediates in a small scratch that stays
// in L1 instead of full tensors that go through memory.
#include "dagrad/fusion.h"

#include <algorithm>
#include <atomic>
#include <vector>

#include "dagrad/kernels/dispatch.h"
#include "dagrad/kernels/elementwise.h"
#include "dagrad/kernels/elementwise_fns.h"
#include "dagrad/kernels/gemm.h"
#include "dagrad/kernels/parallel.h"

namespace dagrad {
namespace fusion {

// Note [Elementwise fusion]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// Elementwise kernels are memory-bound (about 23 GB/s per core): a chain such as
// `relu(a * b + c)` spends its time writing and re-reading intermediates. While the scheduler
// collects a run, it marks a pending node p as computed inside its consumer c's group when
//   - both are elementwise ops of DAGRAD_ELEMENTWISE_OPS (op_list.h) or pow, of the same float dtype and shape;
//   - neither requires grad (so no backward rule will ever read p's value, nor c's inputs);
//   - the edge from c is p's only holder (use_count 1: no Python handle, no other node, not
//     a target of the run), so p's value is visible to nobody but c;
//   - every input of p and c has the output's shape or a single element (a broadcast scalar),
//     so one linear index addresses all of them;
//   - the output has at least kMinElements elements: smaller ones live in L1 anyway, so there
//     is no memory traffic to save, and a group of tiny nodes costs about what its nodes
//     would (measured on the scalar chain of benchmarks/bench_vs_torch.py, where fusing each
//     backward mul into its relu_backward made backward slower, not faster);
//   - the group stays within kMaxGroup nodes; and the run is not being traced (a recorded
//     program replays node by node).
// The run then skips p (it stays pending, and dies with c's edges when c releases its inputs,
// Note [Inputs are released as soon as a node has run]) and c evaluates its whole group: for
// each block of kBlock elements, each member in topological order applies its op to the block
// of its operands (inputs of the run, or members' scratch rows), and the last writes c's
// output. Each member applies the same per-element functor as its own op
// (kernels/elementwise_fns.h) with the same vector loops, so a fused value is the same bits as
// an unfused one, and the decision depends on the graph only, never on the thread count.
// The use count is read while the run holds the graph lock (Note [One run at a time]), but
// another Python thread may run meanwhile (the GIL is released, Note [GIL policy]); a handle on
// p that appeared after the decision could only come through c's edges, and it would find a
// valid pending node (p keeps its inputs until it dies), which a later run computes.
// Fusion happens in no-grad code (inference, optimizer-style updates) and in backward graphs,
// whose nodes do not require grad: autodiff drops its own handles on the gradients before it
// runs them so that chains such as relu_backward(mul(g, w), x) can fuse.

// The ops of the list are DAGRAD_ELEMENTWISE_OPS (op_list.h), plus pow.
bool candidate(const Node& n) {
  switch (n.op) {
#define DAGRAD_X(E, f, arity) case OpKind::E:
    DAGRAD_ELEMENTWISE_OPS(DAGRAD_X)
#undef DAGRAD_X
    case OpKind::PowScalar: break;
    default: return false;
  }
  if (n.requires_grad || (n.dtype != DType::Float32 && n.dtype != DType::Float64)) return false;
  if (n.numel() < kMinElements) return false;
  for (const Edge& e : n.inputs) {
    const Node& p = *e.node;
    if (p.dtype != n.dtype) return false;
    if (p.shape != n.shape && p.numel() != 1) return false;
  }
  return true;
}

// Note [GEMM epilogue fusion]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// In a backward graph the gradient of a hidden activation is a product followed by the
// activation's backward: relu_backward(g @ W, x) (likewise tanh and sigmoid). The product's only
// reader is the mask, so the run computes both in one node: the root (the activation backward)
// runs the product's GEMM into its own output and, in each tile's epilogue (kernels::
// gemm_epilogue), applies its functor to the tile while the tile is in cache, instead of
// writing the product and reading it back. The absorbed product must be a 2-d matmul of 2-d
// operands, not require grad, have the root's dtype and shape, be held by the root's edge
// alone (use count 1, as Note [Elementwise fusion] requires of any member), and not be absorbed
// elsewhere; the root's other operand must have its shape. The root then is in no other group:
// it absorbs nothing else and nothing absorbs it. The product is the same tiles (Note [GEMM
// tiles]) and the functor the same per-element function as the unfused node's, applied to the
// same rounded product: the same bits with fusion on or off, at any thread count.
bool gemm_epilogue_member(const Node& p, const Node& c) {
  if (p.op != OpKind::Matmul || p.requires_grad || p.dtype != c.dtype || p.shape != c.shape || p.ndim() != 2)
    return false;
  if (c.op != OpKind::ReluBackward && c.op != OpKind::TanhBackward && c.op != OpKind::SigmoidBackward) return false;
  if (c.inputs.size() != 2 || c.inputs[1].node->shape != c.shape) return false;
  return p.inputs.size() == 2 && p.inputs[0].node->ndim() == 2 && p.inputs[1].node->ndim() == 2;
}

namespace {
std::atomic<bool> g_enabled{true};
}  // namespace

void set_enabled(bool on) { g_enabled.store(on, std::memory_order_relaxed); }
bool enabled() { return g_enabled.load(std::memory_order_relaxed); }

namespace {

constexpr int64_t kBlock = 256;

// An operand of a member: a row of the scratch, an input of the run (read at the block's
// offset), or a broadcast single element.
struct Operand {
  int32_t member = -1;          // >= 0: that member's scratch row
  const Node* input = nullptr;  // else this input
  bool scalar = false;          // input with a single element
};

struct Member {
  const Node* node;
  Operand a, b;
};

// At most kMaxGroup members, kept on the stack: running a group allocates no member list.
struct Members {
  Member items[kMaxGroup];
  size_t count = 0;
  void push_back(const Member& m) {
    if (count == static_cast<size_t>(kMaxGroup)) throw RuntimeError("internal: fused group too large");
    items[count++] = m;
  }
  size_t size() const { return count; }
  const Member* begin() const { return items; }
  const Member* end() const { return items + count; }
  const Member& operator[](size_t i) const { return items[i]; }
};

// Members in topological order (post-order from the root: operands before their users).
void gather(const Node& n, const uint8_t* flags, uint64_t mark, Members& out) {
  Member m{&n, {}, {}};
  for (size_t k = 0; k < n.inputs.size() && k < 2; ++k) {
    const Node& p = *n.inputs[k].node;
    Operand op;
    if (p.mark == mark && (flags[p.run_index] & kAbsorbed)) {
      gather(p, flags, mark, out);
      op.member = static_cast<int32_t>(out.size()) - 1;
    } else {
      op.input = &p;
      op.scalar = p.numel() == 1 && n.numel() != 1;
    }
    (k == 0 ? m.a : m.b) = op;
  }
  out.push_back(m);
}

template <class T>
struct Resolved {
  const T* p;
  bool scalar;
};

template <class T, class F>
void apply1(const F& f, Resolved<T> a, T* y, int64_t n) {
  if (!a.scalar) {
    map1<T, T>(a.p, y, n, f);
  } else {
    const T v = f(*a.p);
    std::fill(y, y + n, v);
  }
}

template <class T, class F>
void apply2(const F& f, Resolved<T> a, Resolved<T> b, T* y, int64_t n) {
  if (!a.scalar && !b.scalar) {
    map2<T, T>(a.p, b.p, y, n, f);
  } else if (!a.scalar) {
    map2_scalar_b<T, T>(a.p, *b.p, y, n, f);
  } else if (!b.scalar) {
    map2_scalar_a<T, T>(*a.p, b.p, y, n, f);
  } else {
    const T v = f(*a.p, *b.p);
    std::fill(y, y + n, v);
  }
}

template <class T>
void apply(const Node& n, Resolved<T> a, Resolved<T> b, T* y, int64_t len) {
  switch (n.op) {
#define DAGRAD_APPLY_1(E) apply1<T>(fn::E{}, a, y, len)
#define DAGRAD_APPLY_2(E) apply2<T>(fn::E{}, a, b, y, len)
#define DAGRAD_X(E, f, arity) \
  case OpKind::E: DAGRAD_APPLY_##arity(E); break;
    DAGRAD_ELEMENTWISE_OPS(DAGRAD_X)
#undef DAGRAD_X
#undef DAGRAD_APPLY_1
#undef DAGRAD_APPLY_2
    case OpKind::PowScalar: fn::with_pow<T>(n.attrs.scalar, [&](const auto& f) { apply1<T>(f, a, y, len); }); break;
    default: throw RuntimeError(std::string("internal: ") + op_name(n.op) + " in a fused group");
  }
}

template <class T>
void run_members(const Members& members, T* out, int64_t begin, int64_t end) {
  const size_t nm = members.size();
  // Rows of kBlock elements for the members before the root; on the stack for short tensors.
  const size_t row = static_cast<size_t>(std::min<int64_t>(kBlock, end - begin));
  constexpr size_t kStackElems = 1024;
  T small[kStackElems];
  std::vector<T> big;
  T* scratch = small;
  if ((nm - 1) * row > kStackElems) {
    big.resize((nm - 1) * row);
    scratch = big.data();
  }
  auto resolve = [&](const Operand& o, int64_t at) -> Resolved<T> {
    if (o.member >= 0) return {scratch + static_cast<size_t>(o.member) * row, false};
    if (!o.input) return {nullptr, true};  // unused second operand of a unary op
    const T* p = o.input->data<T>();
    return o.scalar ? Resolved<T>{p, true} : Resolved<T>{p + at, false};
  };
  for (int64_t s = begin; s < end; s += kBlock) {
    const int64_t len = std::min(kBlock, end - s);
    for (size_t k = 0; k < nm; ++k) {
      const Member& m = members[k];
      T* y = k + 1 == nm ? out + s : scratch + k * row;
      apply<T>(*m.node, resolve(m.a, s), resolve(m.b, s), y, len);
    }
  }
}

}  // namespace

// Note [Fusion keeps parallel branches]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A node that joins two branches (the add of (A@B).tanh() + (C@D).sigmoid()) may absorb both
// elementwise tails into its group; on one thread that saves their round trips through
// memory, but on the pool it moves the branches' own work past the join, where it runs after
// both branches, serially: 1.9x became 1.3x on 2 threads at 384x384. So the collected run
// remembers every join that took members from both its inputs, and when the run goes to the
// pool (Note [Serial or parallel run]) it undoes them: each absorbed member runs in its branch
// as an ordinary node (or as the root of the group it had gathered below it), and the join
// reads its value. Chains, and joins that absorb one input only (a gradient times a saved
// value), keep their groups: their members come from one branch. The decision depends on the
// graph and the thread budget only, and the values are the same bits either way.
void Plan::split_joins(const std::vector<Node*>& order, uint64_t mark) {
  if (joins.empty()) return;
  for (const auto& [member, join] : joins) {
    flags[static_cast<size_t>(member)] &= static_cast<uint8_t>(~kAbsorbed);
    --fused;
  }
  for (const auto& [member, join] : joins) {
    const Node& c = *order[static_cast<size_t>(join)];
    bool members = false;
    for (const Edge& e : c.inputs)
      if (e.node->mark == mark && (flags[static_cast<size_t>(e.node->run_index)] & kAbsorbed)) members = true;
    if (!members) flags[static_cast<size_t>(join)] &= static_cast<uint8_t>(~kHasMembers);
  }
  joins.clear();
  any = fused > 0;
}

void group_members(const Node& root, const uint8_t* flags, uint64_t mark, std::vector<const Node*>& out) {
  Members members;
  gather(root, flags, mark, members);
  out.clear();
  for (const Member& m : members)
    if (m.node != &root) out.push_back(m.node);
}

namespace {

template <class T, class F>
struct EpilogueCtx {
  const T* other;  // the root's second operand (the activation's saved value)
  int64_t N;
  F f;
  static void apply(void* ctx, int64_t m0, int64_t n0, int64_t m, int64_t n, void* c) {
    const auto& e = *static_cast<const EpilogueCtx*>(ctx);
    T* tile = static_cast<T*>(c);
    for (int64_t i = 0; i < m; ++i) map2_inplace<T>(tile + i * e.N, e.other + (m0 + i) * e.N + n0, n, e.f);
  }
};

template <class T, class F>
void gemm_then(const Node& p, const Node& other, T* out, const F& f) {
  const Node& a = *p.inputs[0].node;
  const Node& b = *p.inputs[1].node;
  const bool ta = p.attrs.ints[0] != 0, tb = p.attrs.ints[1] != 0;
  const int64_t M = p.shape[0], N = p.shape[1], K = ta ? a.shape[0] : a.shape[1];
  EpilogueCtx<T, F> ctx{other.data<T>(), N, f};
  kernels::gemm_epilogue(ta, tb, M, N, K, a.data<T>(), a.shape[1], b.data<T>(), b.shape[1], out,
                         &EpilogueCtx<T, F>::apply, &ctx);
}

// Note [GEMM epilogue fusion]: root = activation_backward(product, saved value).
void run_gemm_group(Node& root, uint64_t mark) {
  const Node& p = *root.inputs[0].node;
  for (size_t k = 0; k < p.inputs.size(); ++k)
    if (p.inputs[k].node->mark != mark) check_input_version(p, k);
  if (root.inputs[1].node->mark != mark) check_input_version(root, 1);
  alloc_output(root);
  const Node& other = *root.inputs[1].node;
  DAGRAD_DISPATCH_FLOAT(root.dtype, "fused matmul epilogue", {
    T* out = root.data<T>();
    switch (root.op) {
      case OpKind::ReluBackward: gemm_then<T>(p, other, out, fn::ReluBackward{}); break;
      case OpKind::TanhBackward: gemm_then<T>(p, other, out, fn::TanhBackward{}); break;
      case OpKind::SigmoidBackward: gemm_then<T>(p, other, out, fn::SigmoidBackward{}); break;
      default: throw RuntimeError(std::string("internal: ") + op_name(root.op) + " as a GEMM epilogue");
    }
  });
}

}  // namespace

void run_group(Node& root, const uint8_t* flags, uint64_t mark) {
  if (flags[root.run_index] & kGemmRoot) {
    run_gemm_group(root, mark);
    return;
  }
  Members members;
  gather(root, flags, mark, members);
  // The in-place check of every edge that enters the group from a value older than the run
  // (Note [Which versions a run checks]; members have no value of their own).
  for (const Member& m : members) {
    const Node& n = *m.node;
    for (size_t k = 0; k < n.inputs.size(); ++k)
      if (n.inputs[k].node->mark != mark) check_input_version(n, k);
  }
  alloc_output(root);
  const int64_t n = root.numel();
  DAGRAD_DISPATCH_FLOAT(root.dtype, "fused elementwise", {
    T* out = root.data<T>();
    parallel_for(n, kElementGrain, [&](int64_t b, int64_t e) { run_members<T>(members, out, b, e); });
  });
}

}  // namespace fusion
}  // namespace dagrad
