#include "dagrad/runtime.h"

#include <cmath>
#include <cstring>
#include <string>

#include "dagrad/ops.h"
#include "dagrad/scheduler.h"
#include "dagrad/trace.h"

namespace dagrad {

void assign_(const Tensor& t, const Tensor& value) {
  GraphLock lock;  // the realize and the write below are one step for other threads' runs
  if (t->requires_grad && GradMode::is_enabled())
    throw RuntimeError(
        "a tensor that requires grad is being used in an in-place operation; wrap the update in "
        "dagrad.no_grad()");
  Tensor v;
  {
    NoGradGuard ng;
    v = value;
    if (v.shape() != t.shape()) v = expand(v, t.shape());
    if (v.dtype() != t.dtype()) v = cast(v, t.dtype());
    realize({t, v});
  }
  std::memcpy(t->storage->data(), v->storage->data(), static_cast<size_t>(t.numel()) * itemsize(t.dtype()));
  t->storage->version.fetch_add(1, std::memory_order_relaxed);
  if (trace::active()) trace::current()->add_assign(t.node(), v.node());
}

namespace {
// The node whose storage `n` reads: Reshape and Detach share their input's buffer.
const Node* storage_base(const Node* n) {
  while ((n->op == OpKind::Reshape || n->op == OpKind::Detach) && !n->inputs.empty()) n = n->inputs[0].node.get();
  return n;
}
}  // namespace

NodePtr get_grad(const Tensor& t) {
  GraphLock lock;
  return t->grad;
}

void set_grad(const Tensor& t, const Tensor& g) {
  GraphLock lock;
  if (!g.defined()) {
    if (trace::active() && t->grad) trace::current()->add_grad_clear(t.node());
    t->grad.reset();
    return;
  }
  if (trace::active())
    throw RuntimeError(
        "assigning a tensor to .grad is not supported inside dagrad.compile; "
        "use zero_grad() or backward()");
  if (g.shape() != t.shape() || g.dtype() != t.dtype())
    throw RuntimeError("assigned grad of shape " + shape_str(g.shape()) + " " + dtype_name(g.dtype()) +
                       " does not match the tensor's shape " + shape_str(t.shape()) + " " + dtype_name(t.dtype()));
  const Node* bg = storage_base(g.node().get());
  const Node* bt = storage_base(t.node().get());
  const bool same_buffer = bg == bt || (bg->storage && bg->storage == bt->storage);
  if (same_buffer)
    throw RuntimeError("can't assign a tensor as its own grad: the assigned grad of shape " + shape_str(g.shape()) +
                       " shares the tensor's memory, and backward accumulates "
                       "into .grad in place");
  t->grad = g.node();
}

void write_inplace(const char* op, const Tensor& t, const Tensor& value, bool is_copy) {
  if (!is_copy && !can_cast(value.dtype(), t.dtype()))
    throw RuntimeError(std::string(op) + ": result type " + dtype_name(value.dtype()) +
                       " can't be cast to the desired output type " + dtype_name(t.dtype()));
  assign_(t, value);
}

namespace {
// Checks each computed node's output for NaN and Inf (Note [Anomaly mode]); throwing here fails
// the run like a kernel error (the scheduler rethrows the first one after every worker stopped).
class AnomalyObserver final : public RunObserver {
 public:
  bool wants_nodes() const override { return true; }
  void node_done(const NodeEvent& e) override {
    const Node& n = e.node;
    if (!is_floating(n.dtype) || !n.storage) return;
    const int64_t count = n.numel();
    bool bad = false;
    if (n.dtype == DType::Float32) {
      const float* p = n.data<float>();
      for (int64_t i = 0; i < count && !bad; ++i) bad = !std::isfinite(p[i]);
    } else {
      const double* p = n.data<double>();
      for (int64_t i = 0; i < count && !bad; ++i) bad = !std::isfinite(p[i]);
    }
    if (!bad) return;
    const std::string site = node_site(n);
    throw RuntimeError(std::string("anomaly: the output of '") + op_name(n.op) + "' (" +
                       (n.is_backward ? "backward" : "forward") + " pass, shape " + shape_str(n.shape) +
                       ") holds NaN or Inf" + (site.empty() ? "" : "; it was recorded at " + site));
  }
};
AnomalyObserver g_anomaly_observer;
}  // namespace

void set_detect_anomaly(bool on) {
  set_anomaly_enabled(on);
  if (on)
    add_observer(&g_anomaly_observer);
  else
    remove_observer(&g_anomaly_observer);
}

void copy_into(const Tensor& dst, const Tensor& src, const char* what) {
  if (dst.shape() != src.shape() || dst.dtype() != src.dtype())
    throw ValueError(std::string(what) + ": an input of shape " + shape_str(src.shape()) + " " +
                     dtype_name(src.dtype()) + " does not match the traced input of shape " + shape_str(dst.shape()) +
                     " " + dtype_name(dst.dtype()));
  realize({src});
  const size_t bytes = static_cast<size_t>(dst.numel()) * itemsize(dst.dtype());
  if (bytes) std::memcpy(dst->storage->data(), src->storage->data(), bytes);
  dst->storage->version.fetch_add(1, std::memory_order_relaxed);
}

Tensor clone_leaf(const Tensor& t) {
  realize({t});
  auto s = std::make_shared<Storage>(t->storage->nbytes());
  if (s->nbytes()) std::memcpy(s->data(), t->storage->data(), s->nbytes());
  return from_storage(std::move(s), t.shape(), t.dtype());
}

void optim_step_now(OptimKind kind, const Tensor& param, const Tensor& grad, const std::vector<Tensor>& state,
                    const std::shared_ptr<OptimHyper>& h) {
  GraphLock lock;
  realize({param, grad});
  optim_step(kind, param, grad, state, *h);
  if (trace::active())
    trace::current()->add_call([kind, param, grad, state, h] { optim_step(kind, param, grad, state, *h); });
}

}  // namespace dagrad
