#include "dagrad/autodiff.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <unordered_map>

#include "dagrad/ops.h"
#include "dagrad/scheduler.h"
#include "dagrad/trace.h"

namespace dagrad {

namespace {

// The part of the graph backward walks: nodes that require grad, reachable from the roots,
// not walking past leaves. Parents come before children in `order`.
struct Walk {
  std::vector<NodePtr> order;
  uint64_t mark = 0;
  bool contains(const Node* n) const { return n->mark == mark && n->run_index >= 0; }
  void release_indices() {
    for (auto& n : order) n->run_index = -1;
  }
};

// Iterative post-order DFS; see Note [Iterative teardown] for why never recursive.
void walk_graph(const std::vector<Tensor>& roots, Walk& w) {
  w.mark = next_mark();
  std::vector<std::pair<NodePtr, size_t>> stack;
  for (const Tensor& t : roots) {
    if (t->mark == w.mark) continue;
    t->mark = w.mark;
    t->run_index = -1;
    stack.emplace_back(t.node(), 0);
    while (!stack.empty()) {
      auto& [n, next] = stack.back();
      if (next == 0 && !n->is_leaf() && n->graph_freed)
        throw RuntimeError(std::string("backward: trying to backward through the graph a second time (through '") +
                           op_name(n->op) + "' of shape " + shape_str(n->shape) +
                           "); its graph was freed by the first backward. Pass retain_graph=True to the "
                           "first backward if you need to backward twice");
      if (!n->is_leaf() && next < n->inputs.size()) {
        const NodePtr& p = n->inputs[next++].node;
        if (p->requires_grad && p->mark != w.mark) {
          p->mark = w.mark;
          p->run_index = -1;
          stack.emplace_back(p, 0);
        }
      } else {
        n->run_index = static_cast<int32_t>(w.order.size());
        w.order.push_back(std::move(n));
        stack.pop_back();
      }
    }
  }
}

// Note [Sums of products over time]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A weight applied at every time step of an unrolled RNN (w_hh, through linear or lstm_cell)
// gets one contribution a_t^T b_t per step, each a small product (K = the batch) and each a
// weight-sized buffer that add_n then reads again. When every contribution is such a pending
// product of 2-d operands of one shape, their sum is one product of the stacked operands,
// cat(a_t)^T cat(b_t): a GEMM with K = steps x batch runs near the BLAS's peak where the small
// ones do not (35 steps of 32x128x512: 1.5 ms against 1.75 ms, and no add_n). The stacking
// order is the contribution order, fixed by the graph, so results stay bitwise the same at any
// thread count (Note [Accumulation order]); the rounding is the GEMM's, not a chain of adds'.
bool is_pending_product(const Tensor& t, const Tensor& first) {
  if (t->op != OpKind::Matmul || t->realized() || t->requires_grad || t->attrs.ints.size() != 2 ||
      t->attrs.ints[0] != 1 || t->attrs.ints[1] != 0)
    return false;
  const Node& a = *t->inputs[0].node;
  const Node& b = *t->inputs[1].node;
  return a.ndim() == 2 && b.ndim() == 2 && a.dtype == b.dtype && a.shape == first->inputs[0].node->shape &&
         b.shape == first->inputs[1].node->shape;
}
template <class Contribs>
Tensor sum_of_products(const Contribs& c) {
  std::vector<Tensor> as, bs;
  for (const Tensor& t : c) {
    as.emplace_back(t->inputs[0].node);
    bs.emplace_back(t->inputs[1].node);
  }
  return matmul_t(cat(as, 0), cat(bs, 0), true, false);
}

// Gradients of several slices of one tensor (split, chunk, x[t] over time steps) arrive as
// zero-filled embeds; summing them one by one costs pieces x size. They are merged into one
// embed_sum (cost: size + pieces), which the fixed contribution order keeps deterministic.
template <class Contribs>
Tensor sum_contributions(const Contribs& c) {
  if (c.size() == 1) return c[0];  // no fan-in: most nodes
  if (std::all_of(c.begin(), c.end(), [&](const Tensor& t) { return is_pending_product(t, c[0]); }))
    return sum_of_products(c);  // Note [Sums of products over time]
  std::vector<Tensor> pieces, rest;
  std::vector<std::vector<int64_t>> regions;
  for (const Tensor& t : c) {
    if (t->op == OpKind::Embed && t->attrs.scalar == 0.0 && !t->realized() && !t->requires_grad) {
      pieces.push_back(Tensor(t->inputs[0].node));
      regions.push_back(t->attrs.ints);
    } else {
      rest.push_back(t);
    }
  }
  if (pieces.size() >= 2)
    rest.insert(rest.begin(), embed_sum(pieces, c[0].shape(), regions));
  else if (pieces.size() == 1)
    rest.assign(c.begin(), c.end());
  // One add_n node for the whole fan-in (same left-to-right order as a chain of adds).
  return add_n(rest);
}

// Note [Backward rules are checked]: every backward rule's output, built-in or user-defined
// (autograd.Function, custom ops), must be a floating gradient whose shape is the input's or
// broadcasts to it (rules may return the output's broadcast shape; sum_to reduces it). Anything
// else is a RuntimeError naming the op, raised while the backward graph is built, before any
// of it runs.
void check_rule_output(const Node& node, size_t k, const Tensor& g, const Node& input) {
  const char* op = node.op == OpKind::Custom ? node.attrs.custom->name.c_str() : op_name(node.op);
  if (!is_floating(g.dtype()))
    throw RuntimeError(std::string("backward of '") + op + "' returned a gradient of dtype " + dtype_name(g.dtype()) +
                       " for input " + std::to_string(k) + "; gradients are floating point");
  const Shape& gs = g.shape();
  const Shape& in = input.shape;
  bool ok = gs.size() >= in.size();
  for (size_t i = 0; ok && i < in.size(); ++i) {
    const int64_t a = gs[gs.size() - in.size() + i], b = in[i];
    ok = a == b || b == 1;
  }
  if (!ok)
    throw RuntimeError(std::string("backward of '") + op + "' returned a gradient of shape " + shape_str(gs) +
                       " for input " + std::to_string(k) + " of shape " + shape_str(in));
}

// Note [Accumulation order]
// ~~~~~~~~~~~~~~~~~~~~~~~~~
// A node reached by several paths (fan-in of gradients) gets one contribution per edge.
// Contributions are appended while walking the fixed reverse topological order and summed
// left to right by ordinary add nodes, so the summation order is a property of the graph,
// never of which thread finished first: gradients are bitwise the same at any thread count.
//
// Everything not specific to an op lives here: pruning to the gradients that are needed,
// summing broadcast gradients back to the input's shape (sum_to), casting to the input's
// dtype, and the fan-in sum. An op's backward rule only states its local chain rule.
std::unordered_map<Node*, Tensor> compute_gradients(const std::vector<Tensor>& roots,
                                                    const std::vector<Tensor>& root_grads,
                                                    const std::vector<Tensor>* targets, Walk& w,
                                                    bool run_hooks = true) {
  BackwardPassScope backward_pass;  // the nodes made below are the backward pass
  walk_graph(roots, w);
  const size_t n = w.order.size();
  std::vector<char> is_target(n, 0), needed(n, 0);
  if (targets) {
    for (const Tensor& t : *targets)
      if (w.contains(t.node().get())) is_target[t->run_index] = 1;
  } else {
    // The leaves, and the non-leaves whose gradient is retained (Tensor.retain_grad).
    for (size_t i = 0; i < n; ++i)
      is_target[i] = w.order[i]->is_leaf() || (w.order[i]->grad_flags & Node::kRetainsGrad);
  }
  for (size_t i = 0; i < n; ++i) {
    const Node* node = w.order[i].get();
    needed[i] = is_target[i];
    if (!node->is_leaf())
      for (const Edge& e : node->inputs)
        if (w.contains(e.node.get()) && needed[e.node->run_index]) needed[i] = 1;
  }

  // One contribution per edge; most nodes get exactly one, kept inline.
  std::vector<SmallVector<Tensor, 1>> contrib(n);
  for (size_t r = 0; r < roots.size(); ++r) contrib[roots[r]->run_index].push_back(root_grads[r]);

  std::unordered_map<Node*, Tensor> result;
  std::vector<bool> needs;
  for (size_t i = n; i-- > 0;) {
    const NodePtr& node = w.order[i];
    if (!needed[i] || contrib[i].empty()) continue;
    Tensor total = sum_contributions(contrib[i]);
    contrib[i] = SmallVector<Tensor, 1>();  // free the contributions now
    // Note [Gradient hooks]: a tensor's hooks see its summed gradient, in the order they were
    // added, before it goes into .grad or on to its inputs; each may replace it (PyTorch's
    // register_hook). The gradient is a pending node: a hook that reads its value runs the
    // part of the backward graph it needs, under this thread's graph lock (a recursive lock).
    if (run_hooks && (node->grad_flags & Node::kHasHooks)) {
      for (const GradHook& hook : grad_hooks(*node)) {
        Tensor r = hook(total);
        if (!r.defined()) continue;
        if (r.shape() != total.shape())
          throw RuntimeError("hook: a gradient hook returned a gradient of shape " + shape_str(r.shape()) +
                             " for a tensor whose gradient has shape " + shape_str(total.shape()));
        total = r.dtype() == total.dtype() ? r : cast(r, total.dtype());
      }
    }
    if (is_target[i]) result[node.get()] = total;
    if (node->is_leaf()) continue;

    needs.assign(node->inputs.size(), false);
    bool any = false;
    for (size_t k = 0; k < node->inputs.size(); ++k) {
      const Node* p = node->inputs[k].node.get();
      needs[k] = w.contains(p) && needed[p->run_index];
      any = any || needs[k];
      // Every input is checked, not only those that need a gradient: a backward rule may
      // read any of them (mul's gradient for a reads b).
      if (p->realized() && p->storage->version.load(std::memory_order_relaxed) != node->inputs[k].expected())
        throw RuntimeError(std::string("backward: input ") + std::to_string(k) + " of '" + op_name(node->op) +
                           "' (shape " + shape_str(p->shape) +
                           ") was modified by an in-place operation after it was used; its "
                           "gradient would be wrong");
    }
    if (!any) continue;
    BackwardOfScope backward_of(node.get());  // Note [Anomaly mode]
    std::vector<Tensor> gin = op_info(node->op).backward(Tensor(node), total, needs);
    for (size_t k = 0; k < node->inputs.size(); ++k) {
      if (!needs[k] || k >= gin.size() || !gin[k].defined()) continue;
      const Node& p = *node->inputs[k].node;
      check_rule_output(*node, k, gin[k], p);
      Tensor g = sum_to(gin[k], p.shape);
      if (g.dtype() != p.dtype) g = cast(g, p.dtype);
      contrib[p.run_index].push_back(std::move(g));
    }
  }
  return result;
}

// Note [Group gradient hooks]
// ~~~~~~~~~~~~~~~~~~~~~~~~~~~
// A hook on a group of leaves (add_group_grad_hook) sees the new gradients of all of them at
// once, after every per-tensor hook (Note [Gradient hooks]) and before any goes into .grad, and
// may replace them: data-parallel training builds one node that reduces a whole bucket of
// gradients across processes and hands each parameter its slice (python/dagrad/distributed,
// Note [Gradient buckets are graph nodes]). The gradients are pending nodes, so the node a hook
// adds runs inside backward's one run, as soon as its inputs are final, while the rest of the
// backward graph still runs. Hooks are called in the order they were added, on the thread
// calling backward, under its graph lock; a group that backward did not reach is skipped.
// Only backward() calls them (as PyTorch's post-accumulate hooks), not autograd.grad.
void run_group_hooks(std::unordered_map<Node*, Tensor>& g) {
  for (const GroupGradHookEntry& e : group_grad_hooks()) {
    std::vector<NodePtr> leaves;
    std::vector<Tensor> grads;
    bool any = false;
    for (const auto& weak : e.leaves) {
      NodePtr leaf = weak.lock();
      auto it = leaf ? g.find(leaf.get()) : g.end();
      grads.push_back(it == g.end() ? Tensor() : it->second);
      any = any || it != g.end();
      leaves.push_back(std::move(leaf));
    }
    if (!any) continue;
    std::vector<Tensor> r = e.hook(grads);
    if (r.empty()) continue;
    if (r.size() != grads.size())
      throw RuntimeError("group gradient hook: returned " + std::to_string(r.size()) + " gradients for a group of " +
                         std::to_string(grads.size()) + " tensors");
    for (size_t i = 0; i < r.size(); ++i) {
      if (!r[i].defined() || !grads[i].defined()) continue;
      if (r[i].shape() != grads[i].shape())
        throw RuntimeError("group gradient hook: returned a gradient of shape " + shape_str(r[i].shape()) +
                           " for tensor " + std::to_string(i) + " of the group, whose gradient has shape " +
                           shape_str(grads[i].shape()));
      g[leaves[i].get()] = r[i].dtype() == grads[i].dtype() ? r[i] : cast(r[i], grads[i].dtype());
    }
  }
}

std::vector<Tensor> seed_gradients(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads) {
  if (grads.size() != roots.size())
    throw ValueError("backward: got " + std::to_string(grads.size()) + " gradients for " +
                     std::to_string(roots.size()) + " tensors");
  std::vector<Tensor> seeds;
  for (size_t i = 0; i < roots.size(); ++i) {
    const Tensor& r = roots[i];
    if (!r->requires_grad)
      throw RuntimeError("backward: element " + std::to_string(i) +
                         " of tensors does not require grad and does not have a grad_fn");
    if (!grads[i].defined()) {
      if (r.numel() != 1)
        throw RuntimeError(
            "backward: grad can be implicitly created only for scalar outputs, "
            "but the tensor has shape " +
            shape_str(r.shape()) + "; pass gradient=");
      seeds.push_back(full(r.shape(), 1.0, r.dtype()));
    } else {
      Tensor g = grads[i];
      if (g.shape() != r.shape())
        throw RuntimeError("backward: gradient of shape " + shape_str(g.shape()) +
                           " does not match the tensor's shape " + shape_str(r.shape()));
      if (g.dtype() != r.dtype()) g = cast(g, r.dtype());
      seeds.push_back(g);
    }
  }
  return seeds;
}

// Without retain_graph, backward frees the graph it went through, as PyTorch does: computed
// nodes drop their inputs (the intermediates become collectable) and every node is marked,
// so a second backward through it raises instead of silently reusing stale structure.
void free_graph(Walk& w) {
  std::vector<NodePtr> released;
  for (const NodePtr& node : w.order) {
    if (node->is_leaf()) continue;
    node->graph_freed = true;
    if (node->realized()) {
      for (Edge& e : node->inputs) released.push_back(std::move(e.node));
      node->inputs.clear();
    }
  }
}

}  // namespace

void backward(const std::vector<Tensor>& roots, const std::vector<Tensor>& grads, bool retain_graph,
              bool create_graph) {
  GraphLock lock;
  GradModeGuard mode(create_graph);
  std::vector<Tensor> seeds = seed_gradients(roots, grads);
  Walk w;
  std::unordered_map<Node*, Tensor> g = compute_gradients(roots, seeds, nullptr, w);
  w.release_indices();
  {
    BackwardPassScope backward_pass;  // what the hooks record is part of the backward pass
    run_group_hooks(g);
  }

  // (leaf, what goes into its .grad): its new gradient, or under create_graph the
  // differentiable sum with the old .grad.
  std::vector<std::pair<NodePtr, Tensor>> updates;
  // The roots are computed in the same run: a loss read after optimizer.step() must be the
  // value before the step, as in an eager framework.
  std::vector<Tensor> to_run(roots.begin(), roots.end());
  for (const NodePtr& node : w.order) {
    auto it = g.find(node.get());
    if (it == g.end() || !node->requires_grad) continue;
    if (!node->is_leaf() && !(node->grad_flags & Node::kRetainsGrad)) continue;
    Tensor gi = it->second;
    // Under create_graph .grad is a graph node; it must be this leaf's own, not a gradient
    // node it shares with another leaf (add passes one g to both inputs) nor the caller's seed,
    // or a later in-place accumulation would add twice or write into the caller's tensor.
    if (create_graph)
      gi = node->grad ? add(Tensor(node->grad), gi) : mul(gi, scalar(1.0, gi.dtype()));
    else if (node->grad)
      to_run.push_back(Tensor(node->grad));  // an assigned .grad may be pending
    updates.emplace_back(node, gi);
    to_run.push_back(gi);
  }
  // Only the graph holds the gradients now: intermediates nobody reads can fuse
  // (Note [Elementwise fusion]) and are freed as soon as they are used.
  g.clear();
  realize(to_run);
  Program* rec = trace::current();
  for (auto& [leaf, acc] : updates) {
    if (create_graph) {
      leaf->grad = acc.node();
      continue;
    }
    if (rec) rec->note_grad_state(leaf);
    NodePtr target = leaf->grad;
    if (target) {
      // In place, as PyTorch: .grad keeps its identity. See Note [Accumulating into .grad].
      accumulate_grad(*target, *acc.node());
      if (rec) rec->add_grad_accumulate(leaf, target, acc.node());
    } else {
      // A new .grad owns its storage, so an in-place update of it (zero_) cannot reach a
      // tensor the user passed in or another alias.
      auto fresh = std::make_shared<Storage>(acc->storage->nbytes());
      if (fresh->nbytes()) std::memcpy(fresh->data(), acc->storage->data(), fresh->nbytes());
      target = from_storage(std::move(fresh), acc.shape(), acc.dtype()).node();
      leaf->grad = target;
      if (rec) rec->add_grad_set(leaf, target, acc.node());
    }
  }
  if (!retain_graph && !create_graph && !trace::active()) free_graph(w);
}

std::vector<Tensor> grad(const std::vector<Tensor>& outputs, const std::vector<Tensor>& inputs,
                         const std::vector<Tensor>& grad_outputs, bool retain_graph, bool create_graph,
                         bool allow_unused) {
  GraphLock lock;
  GradModeGuard mode(create_graph);
  std::vector<Tensor> gouts = grad_outputs;
  if (gouts.empty()) gouts.resize(outputs.size());
  std::vector<Tensor> seeds = seed_gradients(outputs, gouts);
  for (size_t i = 0; i < inputs.size(); ++i)
    if (!inputs[i]->requires_grad) throw RuntimeError("grad: input " + std::to_string(i) + " does not require grad");
  Walk w;
  std::unordered_map<Node*, Tensor> g = compute_gradients(outputs, seeds, &inputs, w);
  w.release_indices();
  std::vector<Tensor> out(inputs.size());
  std::vector<Tensor> to_run(outputs.begin(), outputs.end());
  for (size_t i = 0; i < inputs.size(); ++i) {
    auto it = g.find(inputs[i].node().get());
    if (it == g.end()) {
      if (!allow_unused)
        throw RuntimeError("grad: input " + std::to_string(i) + " of shape " + shape_str(inputs[i].shape()) +
                           " was not used to compute the outputs; pass allow_unused=True");
      continue;
    }
    out[i] = it->second;
    to_run.push_back(out[i]);
  }
  realize(to_run);
  if (!retain_graph && !create_graph && !trace::active()) free_graph(w);
  return out;
}

void Tensor::backward(const Tensor& gradient, bool retain_graph, bool create_graph) const {
  dagrad::backward({*this}, {gradient}, retain_graph, create_graph);
}

std::vector<std::pair<Tensor, Tensor>> gradient_graph(const std::vector<Tensor>& roots) {
  GraphLock lock;
  GradModeGuard mode(false);  // the graph backward() would run (fused rules: no create_graph)
  std::vector<Tensor> seeds = seed_gradients(roots, std::vector<Tensor>(roots.size()));
  Walk w;
  std::unordered_map<Node*, Tensor> g = compute_gradients(roots, seeds, nullptr, w, /*run_hooks=*/false);
  w.release_indices();
  std::vector<std::pair<Tensor, Tensor>> out;
  for (const NodePtr& node : w.order) {
    auto it = g.find(node.get());
    if (it != g.end() && node->is_leaf() && node->requires_grad) out.emplace_back(Tensor(node), it->second);
  }
  return out;
}

}  // namespace dagrad
