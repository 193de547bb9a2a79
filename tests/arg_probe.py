"""Calls every public function and Tensor method of dagrad with one wrong argument at a time.

Each entry of CALLS is a valid call, described parameter by parameter: its name, a kind (what
it accepts), a valid value and how it is passed. BAD lists, per kind, the wrong values to
substitute and the exception PyTorch raises for each (TypeError for a wrong type, IndexError
for a dim out of range, ValueError for a bad value or an int that does not fit int64).
tests/api/test_messages.py turns every (call, parameter, wrong value) into a test case; run this
file to print a report of the cases whose error is not the expected one:

    python tests/arg_probe.py
"""
import re

import dagrad
import dagrad.nn.functional as F

# Phrases of pybind11 and CPython internals that must never reach the user.
LEAKS = ("Invoked with", "Unable to cast", "incompatible function arguments", "tuple index out of range",
         "has no attribute", "not supported between instances", "cannot be interpreted as an integer",
         "object is not iterable", "object is not subscriptable", "invalid literal for int()",
         "_core.", "arg0", "arg1")
# Internal op names: a user's mistake must be reported under the name of what they called.
INTERNAL_OPS = ("cross_entropy_rows", "embed", "full", "strided_slice", "index_put", "sum_to", "matmul_t",
                "batch_norm_apply", "max_dim", "min_dim", "_from_numpy", "cast(")

HUGE = 2 ** 64

BAD = {
    "dim": [("str", "a", TypeError), ("float", 1.5, TypeError), ("none", None, TypeError),
            ("list", [0], TypeError), ("big", 7, IndexError), ("neg", -7, IndexError), ("huge", HUGE, ValueError)],
    "optdim": [("str", "a", TypeError), ("float", 1.5, TypeError), ("big", 7, IndexError),
               ("neg", -7, IndexError), ("huge", HUGE, ValueError)],
    "dims": [("str", "a", TypeError), ("float", 1.5, TypeError), ("strlist", ["a"], TypeError),
             ("big", 7, IndexError), ("biglist", [0, 7], IndexError), ("huge", HUGE, ValueError),
             ("obj", object(), TypeError)],
    "count": [("str", "a", TypeError), ("float", 1.5, TypeError), ("none", None, TypeError),
              ("huge", HUGE, ValueError)],
    "size_star": [("str", ("a",), TypeError), ("float", (1.5,), TypeError), ("none", (None,), TypeError),
                  ("huge", (HUGE,), TypeError), ("neg", (-2,), ValueError), ("strlist", (["a"],), TypeError),
                  ("hugelist", ([2, HUGE],), TypeError)],
    "shape_star": [("str", ("a",), TypeError), ("float", (1.5, 4), TypeError), ("none", (None,), TypeError),
                   ("huge", (HUGE,), TypeError), ("neg", (-2, 3), ValueError), ("strlist", (["a"],), TypeError)],
    "dims_star": [("str", ("a", 0), TypeError), ("float", (1.5, 0), TypeError), ("big", (7, 0), IndexError),
                  ("huge", (HUGE, 0), ValueError), ("strlist", (["a", 0],), TypeError)],
    "shape": [("str", "a", TypeError), ("float", 1.5, TypeError), ("strlist", ["a"], TypeError),
              ("huge", [HUGE], TypeError), ("neg", [-2], ValueError), ("none", None, TypeError)],
    "float": [("str", "a", TypeError), ("list", [1.0], TypeError), ("none", None, TypeError),
              ("obj", object(), TypeError), ("hugeint", 2 ** 1100, ValueError)],
    "optfloat": [("str", "a", TypeError), ("list", [1.0], TypeError), ("obj", object(), TypeError),
                 ("hugeint", 2 ** 1100, ValueError)],
    "bool": [("str", "a", TypeError), ("list", [True], TypeError), ("obj", object(), TypeError)],
    "tensor": [("str", "a", TypeError), ("none", None, TypeError), ("float", 1.5, TypeError),
               ("list", [1.0], TypeError)],
    "tensorlike": [("str", "a", TypeError), ("obj", object(), TypeError), ("none", None, TypeError)],
    "opttensor": [("str", "a", TypeError), ("float", 1.5, TypeError), ("list", [1.0], TypeError)],
    "tensors": [("str", "ab", TypeError), ("tensor", "X", TypeError), ("int", 5, TypeError),
                ("mixed", ["X", "a"], TypeError), ("none", None, TypeError)],
    "dtype": [("str", "a", TypeError), ("int", 3, TypeError), ("obj", object(), TypeError)],
    "choice": [("bad", "foo", ValueError), ("int", 3, ValueError)],
    "device": [("cuda", "cuda", RuntimeError), ("cuda0", "cuda:0", RuntimeError), ("int", 3, TypeError)],
    "pair": [("str", "a", TypeError), ("float", 1.5, TypeError), ("triple", [1, 2, 3], ValueError),
             ("huge", HUGE, ValueError), ("none", None, TypeError)],
    "intlist": [("str", "a", TypeError), ("strlist", [1, "a"], TypeError), ("float", 1.5, TypeError),
                ("floatlist", [1, 1.5], TypeError), ("huge", [1, HUGE], ValueError)],
    "prob": [("str", "a", TypeError), ("big", 2.0, ValueError), ("neg", -0.5, ValueError)],
    "int": [("str", "a", TypeError), ("float", 1.5, TypeError), ("list", [1], TypeError)],
    # Tensor.backward's gradient: a Tensor, a number or None.
    "gradient": [("str", "a", TypeError), ("list", [1.0], TypeError), ("obj", object(), TypeError)],
    # Tensor.to: PyTorch reads a string as a device, and raises RuntimeError for one it does not know.
    "to_dtype": [("str", "float64", RuntimeError), ("int", 3, TypeError), ("obj", object(), TypeError)],
    # conv padding: ints, or the strings 'same' and 'valid'.
    "convpad": [("str", "a", ValueError), ("float", 1.5, TypeError), ("triple", [1, 2, 3], ValueError),
                ("huge", HUGE, ValueError), ("none", None, TypeError)],
    "betas": [("str", "ab", TypeError), ("strpair", (0.9, "a"), TypeError), ("one", (0.9,), TypeError)],
    "tensorseq": [("str", "a", TypeError), ("strlist", ["a"], TypeError), ("int", 3, TypeError)],
    "optpair": [("str", "a", TypeError), ("float", 1.5, TypeError), ("triple", [1, 2, 3], ValueError),
                ("huge", HUGE, ValueError)],
}


def x23():
    return dagrad.ones(2, 3)


def x123():
    return dagrad.ones(1, 2, 3)


def img():
    return dagrad.ones(1, 1, 4, 4)


def idx():
    return dagrad.tensor([[0, 1], [1, 0]])


def logits():
    return dagrad.ones(2, 3, requires_grad=True)


def target():
    return dagrad.tensor([0, 2])


def P(name, kind, valid, mode="pos"):
    """One parameter: mode is "pos" (positional), "kw" (keyword) or "star" (spread *args)."""
    return (name, kind, valid, mode)


def M(method):
    """A Tensor method on a fresh (2, 3) float tensor."""
    return lambda *a, **k: getattr(x23(), method)(*a, **k)


# (qualified name, the name the message must mention, callable, parameters)
CALLS = [
    # ------------------------------------------------------------------ creation
    ("dagrad.tensor", "tensor", dagrad.tensor,
     [P("data", "tensorlike", [1.0]), P("dtype", "dtype", dagrad.float32, "kw"),
      P("requires_grad", "bool", False, "kw"), P("device", "device", "cpu", "kw")]),
    ("dagrad.as_tensor", "as_tensor", dagrad.as_tensor,
     [P("data", "tensorlike", [1.0]), P("dtype", "dtype", None, "kw")]),
    *[(f"dagrad.{n}", n, getattr(dagrad, n),
       [P("size", "size_star", (2, 3), "star"), P("dtype", "dtype", None, "kw"),
        P("requires_grad", "bool", False, "kw"), P("device", "device", None, "kw")])
      for n in ("zeros", "ones", "empty", "randn", "rand")],
    ("dagrad.full", "full", dagrad.full,
     [P("size", "shape", (2,)), P("fill_value", "float", 1.5), P("dtype", "dtype", None, "kw"),
      P("requires_grad", "bool", False, "kw"), P("device", "device", "cpu", "kw")]),
    *[(f"dagrad.{n}", n, getattr(dagrad, n),
       [P("input", "tensor", "X"), P("dtype", "dtype", None, "kw"), P("requires_grad", "bool", False, "kw"),
        P("device", "device", None, "kw")])
      for n in ("zeros_like", "ones_like", "randn_like", "rand_like")],
    ("dagrad.full_like", "full_like", dagrad.full_like,
     [P("input", "tensor", "X"), P("fill_value", "float", 2.0), P("dtype", "dtype", None, "kw")]),
    ("dagrad.arange", "arange", dagrad.arange,
     [P("start", "float", 0), P("end", "optfloat", 5), P("step", "float", 1), P("dtype", "dtype", None, "kw")]),
    ("dagrad.linspace", "linspace", dagrad.linspace,
     [P("start", "float", 0.0), P("end", "float", 1.0), P("steps", "count", 5), P("dtype", "dtype", None, "kw")]),
    ("dagrad.manual_seed", "manual_seed", dagrad.manual_seed, [P("seed", "int", 0)]),
    ("dagrad.set_grad_enabled", "set_grad_enabled", dagrad.set_grad_enabled, [P("mode", "bool", True)]),
    ("dagrad.realize", "realize", dagrad.realize, [P("tensors", "tensor", "X")]),
    # ------------------------------------------------------------------ functions
    *[(f"dagrad.{n}", n, getattr(dagrad, n), [P("input", "tensor", "X")])
      for n in ("neg", "exp", "log", "sqrt", "tanh", "sigmoid", "relu", "abs", "sign", "sin", "cos", "log1p",
                "expm1", "erf", "square", "rsqrt")],
    *[(f"dagrad.{n}", n, getattr(dagrad, n), [P("input", "tensorlike", "X"), P("other", "tensorlike", 2.0)])
      for n in ("add", "sub", "mul", "div", "maximum", "minimum", "eq", "ne", "lt", "le", "gt", "ge")],
    ("dagrad.pow", "pow", dagrad.pow, [P("input", "tensor", "X"), P("exponent", "float", 2.0)]),
    ("dagrad.matmul", "matmul", dagrad.matmul, [P("input", "tensorlike", "X"), P("other", "tensorlike", "XT")]),
    *[(f"dagrad.{n}", n, getattr(dagrad, n),
       [P("input", "tensor", "X"), P("dim", "dims", 1), P("keepdim", "bool", False, "kw")])
      for n in ("sum", "mean", "amax", "amin", "prod", "logsumexp")],
    *[(f"dagrad.{n}", n, getattr(dagrad, n),
       [P("input", "tensor", "X"), P("dim", "optdim", 1), P("keepdim", "bool", False, "kw")])
      for n in ("max", "min", "argmax", "argmin")],
    *[(f"dagrad.{n}", n, getattr(dagrad, n),
       [P("input", "tensor", "X"), P("dim", "dims", 1), P("keepdim", "bool", False, "kw"),
        P("correction", "optfloat", 1, "kw")])
      for n in ("var", "std")],
    ("dagrad.reshape", "reshape", dagrad.reshape, [P("input", "tensor", "X"), P("shape", "shape", (3, 2))]),
    ("dagrad.transpose", "transpose", dagrad.transpose,
     [P("input", "tensor", "X"), P("dim0", "dim", 0), P("dim1", "dim", 1)]),
    ("dagrad.permute", "permute", dagrad.permute, [P("input", "tensor", "X"), P("dims", "intlist", (1, 0))]),
    *[(f"dagrad.{n}", n, getattr(dagrad, n),
       [P("input", "tensor", "X"), P("min", "optfloat", 0.0), P("max", "optfloat", 1.0)])
      for n in ("clamp", "clip")],
    ("dagrad.where", "where", dagrad.where,
     [P("condition", "tensorlike", "B"), P("input", "tensorlike", "X"), P("other", "tensorlike", 0.0)]),
    *[(f"dagrad.{n}", n, getattr(dagrad, n), [P("input", "tensor", "X"), P("dim", "dim", 1)])
      for n in ("softmax", "log_softmax", "unsqueeze")],
    *[(f"dagrad.{n}", n, getattr(dagrad, n), [P("tensors", "tensors", ["X", "X"]), P("dim", "dim", 0)])
      for n in ("cat", "concat", "stack")],
    ("dagrad.split", "split", dagrad.split,
     [P("tensor", "tensor", "X"), P("split_size_or_sections", "count", 1), P("dim", "dim", 1)]),
    ("dagrad.chunk", "chunk", dagrad.chunk, [P("input", "tensor", "X"), P("chunks", "count", 2), P("dim", "dim", 1)]),
    ("dagrad.gather", "gather", dagrad.gather,
     [P("input", "tensor", "X"), P("dim", "dim", 1), P("index", "tensor", "I")]),
    ("dagrad.squeeze", "squeeze", dagrad.squeeze, [P("input", "tensor", "X"), P("dim", "optdim", 0)]),
    ("dagrad.flatten", "flatten", dagrad.flatten,
     [P("input", "tensor", "X"), P("start_dim", "dim", 0), P("end_dim", "dim", 1)]),
    ("dagrad.broadcast_to", "broadcast_to", dagrad.broadcast_to,
     [P("input", "tensor", "X"), P("size", "shape", (4, 2, 3))]),
    ("dagrad.set_num_threads", "set_num_threads", dagrad.set_num_threads, [P("n", "int", 2)]),
    ("dagrad.set_schedule", "set_schedule", dagrad.set_schedule, [P("mode", "choice", "auto")]),
    ("dagrad.device", "device", dagrad.device, [P("type", "device", "cpu")]),
    ("dagrad.schedule", "schedule", dagrad.schedule, [P("mode", "choice", "auto")]),
    ("dagrad.set_compile_cache_size_limit", "set_compile_cache_size_limit",
     dagrad.set_compile_cache_size_limit, [P("n", "int", 8)]),
    # ------------------------------------------------------------------ Tensor methods
    *[(f"Tensor.{n}", n, M(n), [P("dim", "dims", 1), P("keepdim", "bool", False, "kw")])
      for n in ("sum", "mean", "amax", "amin", "prod", "logsumexp")],
    *[(f"Tensor.{n}", n, M(n), [P("dim", "optdim", 1), P("keepdim", "bool", False, "kw")])
      for n in ("max", "min", "argmax", "argmin")],
    *[(f"Tensor.{n}", n, M(n),
       [P("dim", "dims", 1), P("keepdim", "bool", False, "kw"), P("correction", "optfloat", 1, "kw")])
      for n in ("var", "std")],
    *[(f"Tensor.{n}", n, M(n), [P("shape", "shape_star", (3, 2), "star")]) for n in ("reshape", "view")],
    ("Tensor.expand", "expand", M("expand"), [P("size", "shape_star", (4, 2, 3), "star")]),
    ("Tensor.permute", "permute", M("permute"), [P("dims", "dims_star", (1, 0), "star")]),
    ("Tensor.transpose", "transpose", M("transpose"), [P("dim0", "dim", 0), P("dim1", "dim", 1)]),
    ("Tensor.broadcast_to", "broadcast_to", M("broadcast_to"), [P("size", "shape", (4, 2, 3))]),
    *[(f"Tensor.{n}", n, M(n), [P("dim", "dim", 1)]) for n in ("softmax", "log_softmax", "unsqueeze")],
    ("Tensor.squeeze", "squeeze", M("squeeze"), [P("dim", "optdim", 0)]),
    ("Tensor.flatten", "flatten", M("flatten"), [P("start_dim", "dim", 0), P("end_dim", "dim", 1)]),
    ("Tensor.gather", "gather", M("gather"), [P("dim", "dim", 1), P("index", "tensor", "I")]),
    ("Tensor.split", "split", M("split"), [P("split_size", "count", 1), P("dim", "dim", 1)]),
    ("Tensor.chunk", "chunk", M("chunk"), [P("chunks", "count", 2), P("dim", "dim", 1)]),
    ("Tensor.size", "size", M("size"), [P("dim", "optdim", 1)]),
    ("Tensor.pow", "pow", M("pow"), [P("exponent", "float", 2.0)]),
    ("Tensor.fill_", "fill_", M("fill_"), [P("value", "float", 2.0)]),
    *[(f"Tensor.{n}", n, M(n), [P("other", "tensorlike", 1.0), P("alpha", "float", 2.0, "kw")])
      for n in ("add_", "sub_")],
    *[(f"Tensor.{n}", n, M(n), [P("other", "tensorlike", 2.0)])
      for n in ("mul_", "div_", "copy_", "eq", "ne", "lt", "le", "gt", "ge", "maximum", "minimum")],
    ("Tensor.matmul", "matmul", M("matmul"), [P("other", "tensorlike", "XT")]),
    *[(f"Tensor.{n}", n, M(n), [P("min", "optfloat", 0.0), P("max", "optfloat", 1.0)]) for n in ("clamp", "clip")],
    ("Tensor.to", "to", M("to"), [P("dtype", "to_dtype", dagrad.float64)]),
    ("Tensor.requires_grad_", "requires_grad_", M("requires_grad_"), [P("requires_grad", "bool", True)]),
    ("Tensor.backward", "backward", lambda *a, **k: (dagrad.ones(2, requires_grad=True) * 2).sum().backward(*a, **k),
     [P("gradient", "gradient", None), P("retain_graph", "bool", False, "kw"), P("create_graph", "bool", False, "kw")]),
    # ------------------------------------------------------------------ nn.functional
    *[(f"F.{n}", n, getattr(F, n), [P("input", "tensor", "X")]) for n in ("relu", "relu6", "silu", "sigmoid", "tanh")],
    ("F.leaky_relu", "leaky_relu", F.leaky_relu, [P("input", "tensor", "X"), P("negative_slope", "float", 0.1)]),
    ("F.hardtanh", "hardtanh", F.hardtanh, [P("input", "tensor", "X"), P("min_val", "float", -1.0),
                                            P("max_val", "float", 1.0)]),
    ("F.elu", "elu", F.elu, [P("input", "tensor", "X"), P("alpha", "float", 1.0)]),
    ("F.gelu", "gelu", F.gelu, [P("input", "tensor", "X"), P("approximate", "choice", "none", "kw")]),
    ("F.softplus", "softplus", F.softplus,
     [P("input", "tensor", "X"), P("beta", "float", 1.0), P("threshold", "float", 20.0)]),
    *[(f"F.{n}", n, getattr(F, n), [P("input", "tensor", "X"), P("dim", "dim", 1), P("dtype", "dtype", None, "kw")])
      for n in ("softmax", "log_softmax")],
    ("F.linear", "linear", F.linear,
     [P("input", "tensor", "X"), P("weight", "tensor", "W43"), P("bias", "opttensor", None)]),
    ("F.conv2d", "conv2d", F.conv2d,
     [P("input", "tensor", "IMG"), P("weight", "tensor", "K"), P("bias", "opttensor", None), P("stride", "pair", 1),
      P("padding", "convpad", 0), P("dilation", "pair", 1), P("groups", "count", 1)]),
    ("F.conv1d", "conv1d", F.conv1d,
     [P("input", "tensor", "SEQ"), P("weight", "tensor", "K1"), P("bias", "opttensor", None), P("stride", "count", 1),
      P("padding", "convpad", 0), P("dilation", "count", 1), P("groups", "count", 1)]),
    ("F.max_pool2d", "max_pool2d", F.max_pool2d,
     [P("input", "tensor", "IMG"), P("kernel_size", "pair", 2), P("stride", "optpair", 2), P("padding", "pair", 0),
      P("dilation", "pair", 1)]),
    ("F.avg_pool2d", "avg_pool2d", F.avg_pool2d,
     [P("input", "tensor", "IMG"), P("kernel_size", "pair", 2), P("stride", "optpair", 2), P("padding", "pair", 0),
      P("count_include_pad", "bool", True, "kw")]),
    ("F.unfold", "unfold", F.unfold,
     [P("input", "tensor", "IMG"), P("kernel_size", "pair", 2), P("dilation", "pair", 1), P("padding", "pair", 0),
      P("stride", "pair", 1)]),
    ("F.fold", "fold", F.fold,
     [P("input", "tensor", "COLS"), P("output_size", "pair", 3), P("kernel_size", "pair", 2), P("dilation", "pair", 1),
      P("padding", "pair", 0), P("stride", "pair", 1)]),
    ("F.embedding", "embedding", F.embedding,
     [P("input", "tensorlike", "T"), P("weight", "tensor", "W43"), P("padding_idx", "int", None, "kw")]),
    ("F.dropout", "dropout", F.dropout,
     [P("input", "tensor", "X"), P("p", "prob", 0.5), P("training", "bool", False, "kw")]),
    ("F.layer_norm", "layer_norm", F.layer_norm,
     [P("input", "tensor", "X"), P("normalized_shape", "shape", (3,)), P("weight", "opttensor", None),
      P("bias", "opttensor", None), P("eps", "float", 1e-5)]),
    ("F.batch_norm", "batch_norm", F.batch_norm,
     [P("input", "tensor", "X"), P("running_mean", "opttensor", "Z3"), P("running_var", "opttensor", "O3"),
      P("weight", "opttensor", None, "kw"), P("bias", "opttensor", None, "kw"), P("training", "bool", False, "kw"),
      P("momentum", "optfloat", 0.1, "kw"), P("eps", "float", 1e-5, "kw")]),
    ("F.pad", "pad", F.pad,
     [P("input", "tensor", "X"), P("pad", "intlist", (1, 1)), P("value", "optfloat", 0.0, "kw")]),
    ("F.one_hot", "one_hot", F.one_hot, [P("tensor", "tensor", "T"), P("num_classes", "int", 3)]),
    *[(f"F.{n}", n, getattr(F, n), [P("input", "tensor", "X"), P("target", "tensorlike", "X"),
                                    P("reduction", "choice", "mean", "kw")])
      for n in ("mse_loss", "l1_loss", "binary_cross_entropy_with_logits")],
    ("F.smooth_l1_loss", "smooth_l1_loss", F.smooth_l1_loss,
     [P("input", "tensor", "X"), P("target", "tensorlike", "X"), P("reduction", "choice", "mean", "kw"),
      P("beta", "float", 1.0, "kw")]),
    ("F.binary_cross_entropy", "binary_cross_entropy", F.binary_cross_entropy,
     [P("input", "tensor", "HALF"), P("target", "tensorlike", "HALF"), P("weight", "opttensor", None, "kw"),
      P("reduction", "choice", "mean", "kw")]),
    ("F.cross_entropy", "cross_entropy", F.cross_entropy,
     [P("input", "tensor", "L"), P("target", "tensorlike", "T"), P("weight", "opttensor", None, "kw"),
      P("ignore_index", "int", -100, "kw"), P("reduction", "choice", "mean", "kw"),
      P("label_smoothing", "float", 0.0, "kw")]),
    ("F.nll_loss", "nll_loss", F.nll_loss,
     [P("input", "tensor", "L"), P("target", "tensorlike", "T"), P("weight", "opttensor", None, "kw"),
      P("ignore_index", "int", -100, "kw"), P("reduction", "choice", "mean", "kw")]),
]


def _param():
    return [dagrad.ones(2, requires_grad=True)]


nn, optim = dagrad.nn, dagrad.optim
CALLS += [
    # ------------------------------------------------------------------ layers, optimizers, the rest
    ("nn.Linear", "Linear", nn.Linear, [P("in_features", "count", 3), P("out_features", "count", 2)]),
    *[(f"nn.{c.__name__}", c.__name__, c,
       [P("in_channels", "count", 1), P("out_channels", "count", 1), P("kernel_size", "count", 2),
        P("stride", "count", 1, "kw"), P("groups", "count", 1, "kw")]) for c in (nn.Conv1d, nn.Conv2d)],
    ("nn.Embedding", "Embedding", nn.Embedding,
     [P("num_embeddings", "count", 4), P("embedding_dim", "count", 2), P("padding_idx", "int", None, "kw")]),
    ("nn.LayerNorm", "LayerNorm", nn.LayerNorm, [P("normalized_shape", "shape", (3,)), P("eps", "float", 1e-5)]),
    ("nn.BatchNorm1d", "BatchNorm1d", nn.BatchNorm1d,
     [P("num_features", "count", 3), P("eps", "float", 1e-5), P("momentum", "optfloat", 0.1)]),
    ("nn.Dropout", "Dropout", nn.Dropout, [P("p", "prob", 0.5)]),
    ("nn.RNNCell", "RNNCell", nn.RNNCell, [P("input_size", "count", 3), P("hidden_size", "count", 2)]),
    ("optim.SGD", "SGD", lambda *a, **k: optim.SGD(_param(), *a, **k),
     [P("lr", "float", 0.1), P("momentum", "float", 0.0), P("weight_decay", "float", 0.0, "kw"),
      P("nesterov", "bool", False, "kw")]),
    *[(f"optim.{c.__name__}", c.__name__, (lambda c: lambda *a, **k: c(_param(), *a, **k))(c),
       [P("lr", "float", 0.1), P("eps", "float", 1e-8, "kw"), P("weight_decay", "float", 0.0, "kw")])
      for c in (optim.Adam, optim.AdamW, optim.RMSprop, optim.Adagrad)],
    ("optim.Adam", "Adam", lambda *a, **k: optim.Adam(_param(), *a, **k), [P("betas", "betas", (0.9, 0.99), "kw")]),
    ("autograd.grad", "grad", lambda *a, **k: dagrad.autograd.grad(*a, **k),
     [P("outputs", "tensorseq", "S"), P("inputs", "tensorseq", "P"), P("create_graph", "bool", False, "kw")]),
    ("data.DataLoader", "DataLoader", lambda *a, **k: dagrad.data.DataLoader([1, 2, 3], *a, **k),
     [P("batch_size", "int", 2), P("shuffle", "bool", False, "kw")]),
    ("dagrad.compile", "compile", lambda *a, **k: dagrad.compile(lambda t: t * 2)(*a, **k),
     [P("args[0]", "tensorlike", "X")]),
    # dagrad.distributed: what runs without an MPI job (the rest needs init(); tests/api/test_distributed.py).
    ("distributed.DistributedSampler", "DistributedSampler",
     lambda *a, **k: dagrad.distributed.DistributedSampler(range(5), *a, **k),
     [P("num_replicas", "int", 2), P("rank", "int", 1), P("shuffle", "bool", True, "kw"), P("seed", "int", 0, "kw"),
      P("drop_last", "bool", False, "kw")]),
    ("distributed.DistributedSampler.set_epoch", "set_epoch",
     lambda *a, **k: dagrad.distributed.DistributedSampler(range(5), 2, 0).set_epoch(*a, **k),
     [P("epoch", "int", 3)]),
]

_LEAF = []


def _leaf():
    _LEAF[:] = [dagrad.ones(2, requires_grad=True)]
    return _LEAF[0]


_VALUES = {
    "X": x23, "XT": lambda: dagrad.ones(3, 2), "B": lambda: dagrad.ones(2, 3) > 0, "I": idx,
    "W43": lambda: dagrad.ones(4, 3), "IMG": img, "K": lambda: dagrad.ones(1, 1, 2, 2),
    "SEQ": lambda: dagrad.ones(1, 1, 5), "K1": lambda: dagrad.ones(1, 1, 2), "COLS": lambda: dagrad.ones(1, 4, 4),
    "T": target, "L": logits, "Z3": lambda: dagrad.zeros(3), "O3": lambda: dagrad.ones(3),
    "HALF": lambda: dagrad.full((2, 3), 0.5),
    "P": lambda: _LEAF[0], "S": lambda: (_leaf() * 2).sum(),
}


def _value(v):
    if isinstance(v, str) and v in _VALUES:
        return _VALUES[v]()
    if isinstance(v, list):
        return [_value(e) for e in v]
    return v


def _invoke(fn, params, replace=None):
    """Calls fn with the valid values, the parameter `replace[0]` replaced by `replace[1]`."""
    args, kwargs = [], {}
    for name, _, valid, mode in params:
        v = replace[1] if replace is not None and name == replace[0] else valid
        v = _value(v)
        if mode == "star":
            args.extend(v if isinstance(v, tuple) else (v,))
        elif mode == "kw":
            kwargs[name] = v
        else:
            args.append(v)
    out = fn(*args, **kwargs)
    # Values are computed lazily: make the error surface inside the call being checked.
    for t in out if isinstance(out, (tuple, list)) else (out,):
        if isinstance(t, dagrad.Tensor):
            dagrad.realize(t)
    return out


def cases():
    """(case id, qualname, short name, fn, params, param name, bad value, expected exception)."""
    out = []
    for qual, short, fn, params in CALLS:
        for name, kind, _, _ in params:
            for label, bad, exc in BAD[kind]:
                out.append((f"{qual}-{name}-{label}", qual, short, fn, params, name, bad, exc))
    return out


def check(case):
    """None if the case raises the expected exception with a clean message, else a complaint."""
    _, qual, short, fn, params, name, bad, exc = case
    try:
        _invoke(fn, params, (name, bad))
    except Exception as e:  # noqa: BLE001  (classified below)
        msg = str(e)
        problems = []
        if type(e) is not exc:
            problems.append(f"{type(e).__name__} instead of {exc.__name__}")
        for phrase in LEAKS:
            if phrase in msg:
                problems.append(f"leaks {phrase!r}")
        for op in INTERNAL_OPS:
            if re.search(r"(?<![\w.])" + re.escape(op) + r"(?!\w)", msg.replace(short, "")) and op not in short:
                problems.append(f"names internal op {op!r}")
        if short not in msg:
            problems.append(f"does not name {short!r}")
        if name not in msg:
            problems.append(f"does not name argument {name!r}")
        return None if not problems else f"{'; '.join(problems)}: {type(e).__name__}: {msg[:160]!r}"
    return f"no error (expected {exc.__name__})"


def valid_calls_work():
    bad = []
    for qual, _, fn, params in CALLS:
        try:
            _invoke(fn, params)
        except Exception as e:  # noqa: BLE001
            bad.append(f"{qual}: the valid call raised {type(e).__name__}: {e}")
    return bad


if __name__ == "__main__":
    for line in valid_calls_work():
        print("VALID CALL FAILS", line)
    all_cases = cases()
    failures = [(c[0], check(c)) for c in all_cases]
    failures = [(cid, p) for cid, p in failures if p]
    for cid, p in failures:
        print(f"{cid:55s} {p}")
    print(f"{len(failures)} of {len(all_cases)} cases are not clean")
