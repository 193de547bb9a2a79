// User-defined ops: a forward and an optional backward supplied at run time (C++ callbacks),
// scheduled like any other node. Used by the scheduler benchmarks and by extensions.
#include "dagrad/ops.h"

namespace dagrad {

Tensor custom(const std::shared_ptr<const CustomOp>& op, const std::vector<Tensor>& inputs, Shape shape, DType dtype) {
  if (!op || !op->forward) throw ValueError("custom: the op needs a forward function");
  checked_numel(shape, "custom");
  OpAttrs a;
  a.custom = op;
  Tensor t = make_op(OpKind::Custom, inputs, std::move(shape), dtype, std::move(a));
  if (!op->backward) t->requires_grad = false;
  return t;
}
void Custom_forward(Node& out) {
  out.attrs.custom->forward(out);
  if (!out.storage) throw RuntimeError("custom op '" + out.attrs.custom->name + "' did not produce a value");
}
std::vector<Tensor> Custom_backward(const Tensor& out, const Tensor& g, const std::vector<bool>& needs) {
  return out->attrs.custom->backward(out, g, needs);
}

}  // namespace dagrad
