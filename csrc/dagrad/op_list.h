// @brief The one list of ops. Everything per-op (enum, names, the dispatch
// table) is generated from it; each op is defined in csrc/dagrad/ops/<family>.cpp.
#pragma once

// X(Enum, "name", family)
#define DAGRAD_OPS(X)                 \
  X(Leaf, "leaf", graph)              \
  X(Detach, "detach", movement)       \
  X(Cast, "cast", elementwise)        \
  X(Add, "add", elementwise)          \
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
  X(Matmul, "matmul", linalg)         \
  X(Sum, "sum", reduce)               \
  X(Mean, "mean", reduce)             \
  X(Reshape, "reshape", movement)     \
  X(Permute, "permute", movement)     \
  X(Expand, "expand", movement)
