"""Functional neural-network ops with PyTorch's names and argument order.

Each is one C++ op or a composite of C++ ops, so its gradient comes from the C++ backward
rules.

>>> import dagrad
>>> import dagrad.nn.functional as F
>>> F.softmax(dagrad.tensor([1000.0, 1000.0]), dim=0).tolist()
[0.5, 0.5]
"""
import numpy as np

from .. import _args, _core, _creation, _dtype, autograd

# Every function checks its arguments with dagrad._args, so that a wrong one is reported
# under this function's name (Note [Argument errors]), not under a C++ op's.


def _pair(v, name, fn):
    return _args.int_pair(v, fn, name)


def _t(x, fn="functional", name="target"):
    return _args.tensor_like(x, fn, name)


def _check_reduction(reduction, size_average=None, reduce=None, fn="loss"):
    if size_average is not None or reduce is not None:
        raise TypeError(f"{fn}(): size_average and reduce are deprecated; use reduction=")
    return _args.choice(reduction, fn, "reduction", ("none", "mean", "sum"))


def _in(input, fn):
    return _args.tensor(input, fn, "input")


# --------------------------------------------------------------------------- activations

def relu(input, inplace=False):
    return _in(input, "relu").relu()


def relu6(input, inplace=False):
    return _core.hardtanh(_in(input, "relu6"), 0.0, 6.0)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    return _core.hardtanh(_in(input, "hardtanh"), _args.number(min_val, "hardtanh", "min_val"),
                          _args.number(max_val, "hardtanh", "max_val"))


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _core.leaky_relu(_in(input, "leaky_relu"), _args.number(negative_slope, "leaky_relu", "negative_slope"))


def elu(input, alpha=1.0, inplace=False):
    return _core.elu(_in(input, "elu"), _args.number(alpha, "elu", "alpha"))


def gelu(input, approximate="none"):
    _args.choice(approximate, "gelu", "approximate", ("none", "tanh"))
    return _core.gelu(_in(input, "gelu"), approximate == "tanh")


def softplus(input, beta=1.0, threshold=20.0):
    return _core.softplus(_in(input, "softplus"), _args.number(beta, "softplus", "beta"),
                          _args.number(threshold, "softplus", "threshold"))


def silu(input, inplace=False):
    return _core.silu(_in(input, "silu"))


def sigmoid(input):
    return _in(input, "sigmoid").sigmoid()


def tanh(input):
    return _in(input, "tanh").tanh()


def softmax(input, dim, dtype=None):
    x = _in(input, "softmax")
    x = x if dtype is None else x.to(_args.dtype(dtype, "softmax"))
    return _core.softmax(x, _args.dim(dim, "softmax", x.ndim))


def log_softmax(input, dim, dtype=None):
    x = _in(input, "log_softmax")
    x = x if dtype is None else x.to(_args.dtype(dtype, "log_softmax"))
    return _core.log_softmax(x, _args.dim(dim, "log_softmax", x.ndim))


# --------------------------------------------------------------------------- layers

def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` in one node (weight: (out_features, in_features))."""
    # The binding names the argument of a wrong type itself (Note [Argument errors]): no Python
    # check on the hottest layer.
    return _core.linear(input, weight, bias)


def _conv_args(fn, input, weight, bias, padding):
    if isinstance(padding, str):
        if padding in ("same", "valid"):
            raise NotImplementedError(f"{fn}(): string padding ('same', 'valid') is not supported; pass ints")
        raise ValueError(f"{fn}(): argument 'padding' must be an int, a pair of ints, 'same' or 'valid', "
                         f"got {padding!r}")
    return _in(input, fn), _args.tensor(weight, fn, "weight"), _args.optional_tensor(bias, fn, "bias")


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    x, w, b = _conv_args("conv2d", input, weight, bias, padding)
    return _core.conv2d(x, w, b, _pair(stride, "stride", "conv2d"), _pair(padding, "padding", "conv2d"),
                        _pair(dilation, "dilation", "conv2d"), _args.integer(groups, "conv2d", "groups"))


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    x, w, b = _conv_args("conv1d", input, weight, bias, padding)

    def one(v, name):  # an int or a 1-tuple
        if isinstance(v, (tuple, list)):
            if len(v) != 1:
                raise ValueError(f"conv1d(): argument '{name}' must be an int or a 1-tuple, got {list(v)!r}")
            v = v[0]
        return _args.integer(v, "conv1d", name)
    return _core.conv1d(x, w, b, one(stride, "stride"), one(padding, "padding"), one(dilation, "dilation"),
                        _args.integer(groups, "conv1d", "groups"))


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    if ceil_mode or return_indices:
        raise NotImplementedError("max_pool2d: ceil_mode and return_indices are not supported")
    k = _pair(kernel_size, "kernel_size", "max_pool2d")
    s = k if stride is None or stride == [] else _pair(stride, "stride", "max_pool2d")
    return _core.max_pool2d(_in(input, "max_pool2d"), k, s, _pair(padding, "padding", "max_pool2d"),
                            _pair(dilation, "dilation", "max_pool2d"))


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    if ceil_mode or divisor_override is not None:
        raise NotImplementedError("avg_pool2d: ceil_mode and divisor_override are not supported")
    k = _pair(kernel_size, "kernel_size", "avg_pool2d")
    s = k if stride is None or stride == [] else _pair(stride, "stride", "avg_pool2d")
    return _core.avg_pool2d(_in(input, "avg_pool2d"), k, s, _pair(padding, "padding", "avg_pool2d"),
                            _args.boolean(count_include_pad, "avg_pool2d", "count_include_pad"))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    return _core.unfold(_in(input, "unfold"), _pair(kernel_size, "kernel_size", "unfold"),
                        _pair(stride, "stride", "unfold"), _pair(padding, "padding", "unfold"),
                        _pair(dilation, "dilation", "unfold"), 0.0)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    return _core.fold(_in(input, "fold"), _pair(output_size, "output_size", "fold"),
                      _pair(kernel_size, "kernel_size", "fold"), _pair(stride, "stride", "fold"),
                      _pair(padding, "padding", "fold"), _pair(dilation, "dilation", "fold"))


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` picked by the int64 ``input`` (gradient rows are accumulated)."""
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: max_norm, scale_grad_by_freq and sparse are not supported")
    idx = _t(input, "embedding", "input")
    if idx.dtype.name != "int64":  # else the index op would report it under its own name
        raise TypeError(f"embedding(): argument 'input' must be an int64 tensor of indices, got {idx.dtype}")
    out = _core.embedding(idx, _args.tensor(weight, "embedding", "weight"))
    if padding_idx is not None:
        # The padding row gets no gradient: multiply its rows by a 0/1 mask that is a constant.
        keep = (idx != _args.integer(padding_idx, "embedding", "padding_idx")).to(weight.dtype).unsqueeze(-1)
        out = out * keep + (out * (1 - keep)).detach()
    return out


def dropout(input, p=0.5, training=True, inplace=False):
    """Zeroes elements with probability p and scales the rest by 1/(1-p); identity when not training.

    The mask comes from dagrad's generator, so ``dagrad.manual_seed`` makes it repeatable.
    """
    _in(input, "dropout")
    p = _args.number(p, "dropout", "p")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout(): argument 'p' (the dropout probability) has to be between 0 and 1, but got {p}")
    if not _args.boolean(training, "dropout", "training") or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    if _core.is_tracing():
        raise RuntimeError("dropout in training mode inside dagrad.compile: its mask is drawn in Python, "
                           "so a replayed step would reuse the mask of the traced one. Run this step "
                           "eagerly, or put the model in eval() mode")
    keep = _creation._rng.random(tuple(input.shape)) >= p
    np_dtype = _dtype._NUMPY_OF[input.dtype]
    mask = _core._from_numpy(np.asarray(keep / (1.0 - p), dtype=np_dtype, order="C"), input.dtype, False)
    return input * mask


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    return _core.layer_norm(_in(input, "layer_norm"), _args.size((normalized_shape,), "layer_norm", "normalized_shape"),
                            _args.optional_tensor(weight, "layer_norm", "weight"),
                            _args.optional_tensor(bias, "layer_norm", "bias"), _args.number(eps, "layer_norm", "eps"))


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation over every dim but 1. In training it normalises with the batch
    statistics and updates the running ones (unbiased variance), as PyTorch."""
    _in(input, "batch_norm")
    running_mean = _args.optional_tensor(running_mean, "batch_norm", "running_mean")
    running_var = _args.optional_tensor(running_var, "batch_norm", "running_var")
    weight = _args.optional_tensor(weight, "batch_norm", "weight")
    bias = _args.optional_tensor(bias, "batch_norm", "bias")
    training = _args.boolean(training, "batch_norm", "training")
    momentum = _args.optional_number(momentum, "batch_norm", "momentum")
    eps = _args.number(eps, "batch_norm", "eps")
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2-d input (N, C, ...), got shape {input.shape}")
    if training:
        dims = [0] + list(range(2, input.ndim))
        n = input.numel() // input.shape[1]
        if n <= 1:
            raise ValueError(f"batch_norm: expected more than 1 value per channel when training, "
                             f"got input of shape {input.shape}")
        mean = input.mean(dim=dims)
        var = ((input - mean.reshape([1, -1] + [1] * (input.ndim - 2))) ** 2).mean(dim=dims)
        if running_mean is not None and running_var is not None:
            with autograd.no_grad():
                m = 0.1 if momentum is None else float(momentum)
                running_mean.copy_(running_mean * (1.0 - m) + mean.detach() * m)
                running_var.copy_(running_var * (1.0 - m) + var.detach() * (m * n / (n - 1)))
        return _core.batch_norm_apply(input, mean, var, weight, bias, float(eps))
    if running_mean is None or running_var is None:
        raise ValueError("batch_norm: running_mean and running_var are needed when not training")
    return _core.batch_norm_apply(input, running_mean, running_var, weight, bias, float(eps))


def pad(input, pad, mode="constant", value=None):
    if mode != "constant":
        raise NotImplementedError(f"pad: mode {mode!r} is not supported (only 'constant')")
    _args.optional_number(value, "pad", "value")  # a type check; the value itself stays exact
    return _core.pad(_in(input, "pad"), _args.int_list(pad, "pad", "pad"), 0 if value is None else value)


def one_hot(tensor, num_classes=-1):
    _args.tensor(tensor, "one_hot", "tensor")
    if tensor.dtype.name != "int64":
        raise TypeError(f"one_hot(): argument 'tensor' must be an int64 tensor of class indices, got {tensor.dtype}")
    num_classes = _args.integer(num_classes, "one_hot", "num_classes")
    idx = tensor.numpy()
    if num_classes < 0:
        num_classes = int(idx.max()) + 1 if idx.size else 0
    if idx.size and (idx.min() < 0 or idx.max() >= num_classes):
        raise IndexError(f"one_hot: class values must be in [0, {num_classes})")
    out = np.zeros(idx.shape + (num_classes,), dtype=np.int64)
    np.put_along_axis(out, idx[..., None], 1, axis=-1)
    return _creation.tensor(out)


# --------------------------------------------------------------------------- losses

def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    return _core.mse_loss(_in(input, "mse_loss"), _t(target, "mse_loss"),
                          _check_reduction(reduction, size_average, reduce, "mse_loss"))


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    return _core.l1_loss(_in(input, "l1_loss"), _t(target, "l1_loss"),
                         _check_reduction(reduction, size_average, reduce, "l1_loss"))


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    return _core.smooth_l1_loss(_in(input, "smooth_l1_loss"), _t(target, "smooth_l1_loss"),
                                _check_reduction(reduction, size_average, reduce, "smooth_l1_loss"),
                                _args.number(beta, "smooth_l1_loss", "beta"))


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    return _core.nll_loss(_in(input, "nll_loss"), _t(target, "nll_loss"),
                          _args.optional_tensor(weight, "nll_loss", "weight"),
                          _check_reduction(reduction, size_average, reduce, "nll_loss"),
                          _args.integer(ignore_index, "nll_loss", "ignore_index"))


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits against int64 class targets (or class probabilities).

    Stable for logits of any size: log_softmax subtracts the row maximum.

    >>> import dagrad
    >>> import dagrad.nn.functional as F
    >>> round(F.cross_entropy(dagrad.tensor([[0.0, 0.0]]), dagrad.tensor([1])).item(), 4)
    0.6931
    """
    return _core.cross_entropy(_in(input, "cross_entropy"), _t(target, "cross_entropy"),
                               _args.optional_tensor(weight, "cross_entropy", "weight"),
                               _check_reduction(reduction, size_average, reduce, "cross_entropy"),
                               _args.integer(ignore_index, "cross_entropy", "ignore_index"),
                               _args.number(label_smoothing, "cross_entropy", "label_smoothing"))


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    return _core.binary_cross_entropy(_in(input, "binary_cross_entropy"), _t(target, "binary_cross_entropy"),
                                      _args.optional_tensor(weight, "binary_cross_entropy", "weight"),
                                      _check_reduction(reduction, size_average, reduce, "binary_cross_entropy"))


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    fn = "binary_cross_entropy_with_logits"
    return _core.binary_cross_entropy_with_logits(
        _in(input, fn), _t(target, fn), _args.optional_tensor(weight, fn, "weight"),
        _check_reduction(reduction, size_average, reduce, fn), _args.optional_tensor(pos_weight, fn, "pos_weight"))
