// @brief The one list of ops. Everything per-op (enum, names, the dispatch
// table) is generated from it; each op is defined in csrc/dagrad/ops/<family>.cpp.
#pragma once

// X(Enum, "name", family)
#define DAGRAD_OPS(X)                 \
  X(Leaf, "leaf", graph)              \
  X(Custom, "custom", custom)         \
  X(Detach, "detach", movement)       \
  X(Cast, "cast", elementwise)        \
  X(Add, "add", elementwise)          \
  X(AddN, "add_n", elementwise)       \
  X(Sub, "sub", elementwise)          \
  X(Mul, "mul", elementwise)          \
  X(Div, "div", elementwise)          \
  X(Neg, "neg", elementwise)          \
  X(PowScalar, "pow", elementwise)    \
  X(Exp, "exp", elementwise)          \
  X(Log, "log", elementwise)          \
  X(Sqrt, "sqrt", elementwise)        \
  X(Tanh, "tanh", elementwise)        \
  X(Sigmoid, "sigmoid", elementwise)  \
  X(Relu, "relu", elementwise)        \
  X(Step, "step", elementwise)        \
  X(ReluBackward, "relu_backward", elementwise)       \
  X(TanhBackward, "tanh_backward", elementwise)       \
  X(SigmoidBackward, "sigmoid_backward", elementwise) \
  X(Abs, "abs", elementwise)          \
  X(Sign, "sign", elementwise)        \
  X(Sin, "sin", elementwise)          \
  X(Cos, "cos", elementwise)          \
  X(Log1p, "log1p", elementwise)      \
  X(Expm1, "expm1", elementwise)      \
  X(Erf, "erf", elementwise)          \
  X(Eq, "eq", select)                 \
  X(Ne, "ne", select)                 \
  X(Lt, "lt", select)                 \
  X(Le, "le", select)                 \
  X(Gt, "gt", select)                 \
  X(Ge, "ge", select)                 \
  X(Where, "where", select)           \
  X(Maximum, "maximum", select)       \
  X(Minimum, "minimum", select)       \
  X(Clamp, "clamp", select)           \
  X(Matmul, "matmul", linalg)         \
  X(Sum, "sum", reduce)               \
  X(Mean, "mean", reduce)             \
  X(Prod, "prod", reduce)             \
  X(Amax, "amax", reduce)             \
  X(Amin, "amin", reduce)             \
  X(Argmax, "argmax", reduce)         \
  X(Argmin, "argmin", reduce)         \
  X(Softmax, "softmax", reduce)       \
  X(LogSoftmax, "log_softmax", reduce) \
  X(Reshape, "reshape", movement)     \
  X(Permute, "permute", movement)     \
  X(Expand, "expand", movement)       \
  X(Slice, "slice", index)            \
  X(Embed, "embed", index)            \
  X(EmbedSum, "embed_sum", index)     \
  X(Index, "index", index)            \
  X(IndexPut, "index_put", index)     \
  X(Gather, "gather", index)          \
  X(ScatterAdd, "scatter_add", index) \
  X(Cat, "cat", index)                \
  X(Linear, "linear", nn)             \
  X(Unfold, "unfold", nn)             \
  X(Fold, "fold", nn)
