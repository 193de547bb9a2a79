// @brief The one list of ops. Everything per-op (enum, names, the dispatch
// table) is generated from it; each op is defined in csrc/dagrad/ops/<family>.cpp.
// Adding an op: README.md, "Adding an op".
#pragma once

// X(Enum, "name", family)
// clang-format off
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
  X(CrossEntropy, "cross_entropy", loss) \
  X(CrossEntropyBackward, "cross_entropy_backward", loss) \
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
  X(Fold, "fold", nn)                 \
  X(MaxPoolSelect, "max_pool2d", nn)  \
  X(MaxPoolRoute, "max_pool2d_backward", nn) \
  X(AvgPool, "avg_pool2d", nn)        \
  X(AvgPoolBackward, "avg_pool2d_backward", nn) \
  X(Conv2d, "conv2d", nn)             \
  X(Conv2dInputBackward, "conv2d_input_backward", nn) \
  X(Conv2dWeightBackward, "conv2d_weight_backward", nn) \
  X(Conv2dBiasBackward, "conv2d_bias_backward", nn) \
  /* Recurrent cells (ops/rnn.cpp, Note [Fused LSTM cell]) */ \
  X(RnnCell, "rnn_cell", rnn)                                  \
  X(LstmCell, "lstm_cell", rnn)                                \
  X(LstmCellBackward, "lstm_cell_backward", rnn)               \
  X(LstmCellStateBackward, "lstm_cell_state_backward", rnn)   \
  X(GruCell, "gru_cell", rnn)                                  \
  X(GruCellBackward, "gru_cell_backward", rnn)

// clang-format on

// The elementwise ops fusion may compute inside a group (Note [Elementwise fusion]): each
// applies the per-element functor fn::<Enum> of kernels/elementwise_fns.h to `arity` operands,
// and ops.h declares its function from this list. fusion.cpp generates its cases from it.
// (pow is fused too, through its exponent's functor: fusion.cpp names it.)
// X(Enum, function, arity)
// clang-format off
#define DAGRAD_ELEMENTWISE_OPS(X)          \
  X(Add, add, 2)                           \
  X(Sub, sub, 2)                           \
  X(Mul, mul, 2)                           \
  X(Div, div, 2)                           \
  X(Neg, neg, 1)                           \
  X(Exp, exp, 1)                           \
  X(Log, log, 1)                           \
  X(Sqrt, sqrt, 1)                         \
  X(Tanh, tanh, 1)                         \
  X(Sigmoid, sigmoid, 1)                   \
  X(Relu, relu, 1)                         \
  X(Step, step, 1)                         \
  X(Abs, abs, 1)                           \
  X(Sign, sign, 1)                         \
  X(Sin, sin, 1)                           \
  X(Cos, cos, 1)                           \
  X(Log1p, log1p, 1)                       \
  X(Expm1, expm1, 1)                       \
  X(Erf, erf, 1)                           \
  X(ReluBackward, relu_backward, 2)        \
  X(TanhBackward, tanh_backward, 2)        \
  X(SigmoidBackward, sigmoid_backward, 2)
// clang-format on
