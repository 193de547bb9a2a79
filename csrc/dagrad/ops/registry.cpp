// The dispatch table, generated from the one op list (op_list.h). A missing forward or
// backward definition for a listed op is a link error.
#include "dagrad/ops.h"

namespace dagrad {

void Leaf_forward(Node& out) {
  throw RuntimeError(std::string("internal: a leaf of shape ") + shape_str(out.shape) + " has no value");
}
std::vector<Tensor> Leaf_backward(const Tensor&, const Tensor&, const std::vector<bool>&) { return {}; }

namespace {
const OpInfo kOps[] = {
#define DAGRAD_X(name, str, family) {str, &name##_forward, &name##_backward},
    DAGRAD_OPS(DAGRAD_X)
#undef DAGRAD_X
};
constexpr size_t kOpCount = sizeof(kOps) / sizeof(kOps[0]);
}  // namespace

const OpInfo& op_info(OpKind op) {
  const size_t i = static_cast<size_t>(op);
  if (i >= kOpCount) throw RuntimeError("internal: unknown op " + std::to_string(i));
  return kOps[i];
}

}  // namespace dagrad
