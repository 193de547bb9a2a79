"""Functional neural-network ops with PyTorch's names and argument order.

Each is one C++ op or a composite of C++ ops, so its gradient comes from the C++ backward
rules.

>>> import dagrad
>>> import dagrad.nn.functional as F
>>> F.softmax(dagrad.tensor([1000.0, 1000.0]), dim=0).tolist()
[0.5, 0.5]
"""
import numpy as np

from .. import _core
from .._core import Tensor
from .. import _tensor


def _pair(v, name="argument"):
    if isinstance(v, (tuple, list)):
        if len(v) != 2:
            raise ValueError(f"{name} must be an int or a pair, got {v!r}")
        return [int(v[0]), int(v[1])]
    return [int(v), int(v)]


def _t(x):
    return x if isinstance(x, Tensor) else _tensor.tensor(x)


def _check_reduction(reduction, size_average=None, reduce=None):
    if size_average is not None or reduce is not None:
        raise TypeError("size_average and reduce are deprecated; use reduction=")
    return reduction


# --------------------------------------------------------------------------- activations

def relu(input, inplace=False):
    return input.relu()


def relu6(input, inplace=False):
    return _core.hardtanh(input, 0.0, 6.0)


def hardtanh(input, min_val=-1.0, max_val=1.0, inplace=False):
    return _core.hardtanh(input, float(min_val), float(max_val))


def leaky_relu(input, negative_slope=0.01, inplace=False):
    return _core.leaky_relu(input, float(negative_slope))


def elu(input, alpha=1.0, inplace=False):
    return _core.elu(input, float(alpha))


def gelu(input, approximate="none"):
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    return _core.gelu(input, approximate == "tanh")


def softplus(input, beta=1.0, threshold=20.0):
    return _core.softplus(input, float(beta), float(threshold))


def silu(input, inplace=False):
    return _core.silu(input)


def sigmoid(input):
    return input.sigmoid()


def tanh(input):
    return input.tanh()


def softmax(input, dim, dtype=None):
    x = input if dtype is None else input.to(_tensor._dtype_arg(dtype))
    return _core.softmax(x, int(dim))


def log_softmax(input, dim, dtype=None):
    x = input if dtype is None else input.to(_tensor._dtype_arg(dtype))
    return _core.log_softmax(x, int(dim))


# --------------------------------------------------------------------------- layers

def linear(input, weight, bias=None):
    """``input @ weight.T + bias`` in one node (weight: (out_features, in_features))."""
    return _core.linear(input, weight, bias)


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if isinstance(padding, str):
        raise NotImplementedError("conv2d: string padding ('same', 'valid') is not supported; pass ints")
    return _core.conv2d(input, weight, bias, _pair(stride, "stride"), _pair(padding, "padding"),
                        _pair(dilation, "dilation"), int(groups))


def conv1d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    if isinstance(padding, str):
        raise NotImplementedError("conv1d: string padding ('same', 'valid') is not supported; pass ints")
    one = lambda v: int(v[0]) if isinstance(v, (tuple, list)) else int(v)  # noqa: E731
    return _core.conv1d(input, weight, bias, one(stride), one(padding), one(dilation), int(groups))


def max_pool2d(input, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
               return_indices=False):
    if ceil_mode or return_indices:
        raise NotImplementedError("max_pool2d: ceil_mode and return_indices are not supported")
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None or stride == [] else _pair(stride, "stride")
    return _core.max_pool2d(input, k, s, _pair(padding, "padding"), _pair(dilation, "dilation"))


def avg_pool2d(input, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
               divisor_override=None):
    if ceil_mode or divisor_override is not None:
        raise NotImplementedError("avg_pool2d: ceil_mode and divisor_override are not supported")
    k = _pair(kernel_size, "kernel_size")
    s = k if stride is None or stride == [] else _pair(stride, "stride")
    return _core.avg_pool2d(input, k, s, _pair(padding, "padding"), bool(count_include_pad))


def unfold(input, kernel_size, dilation=1, padding=0, stride=1):
    return _core.unfold(input, _pair(kernel_size), _pair(stride), _pair(padding), _pair(dilation), 0.0)


def fold(input, output_size, kernel_size, dilation=1, padding=0, stride=1):
    return _core.fold(input, _pair(output_size), _pair(kernel_size), _pair(stride), _pair(padding),
                      _pair(dilation))


def embedding(input, weight, padding_idx=None, max_norm=None, norm_type=2.0,
              scale_grad_by_freq=False, sparse=False):
    """Rows of ``weight`` picked by the int64 ``input`` (gradient rows are accumulated)."""
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: max_norm, scale_grad_by_freq and sparse are not supported")
    idx = _t(input)
    out = _core.embedding(idx, weight)
    if padding_idx is not None:
        # The padding row gets no gradient: multiply its rows by a 0/1 mask that is a constant.
        keep = (idx != int(padding_idx)).to(weight.dtype).unsqueeze(-1)
        out = out * keep + (out * (1 - keep)).detach()
    return out


def dropout(input, p=0.5, training=True, inplace=False):
    """Zeroes elements with probability p and scales the rest by 1/(1-p); identity when not training.

    The mask comes from dagrad's generator, so ``dagrad.manual_seed`` makes it repeatable.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    if _core.is_tracing():
        raise RuntimeError("dropout in training mode inside dagrad.compile: its mask is drawn in Python, "
                           "so a replayed step would reuse the mask of the traced one. Run this step "
                           "eagerly, or put the model in eval() mode")
    keep = _tensor._rng.random(tuple(input.shape)) >= p
    np_dtype = _tensor._NUMPY_OF[input.dtype]
    mask = _core._from_numpy(np.asarray(keep / (1.0 - p), dtype=np_dtype, order="C"), input.dtype, False)
    return input * mask


def layer_norm(input, normalized_shape, weight=None, bias=None, eps=1e-5):
    if isinstance(normalized_shape, int):
        normalized_shape = [normalized_shape]
    return _core.layer_norm(input, list(normalized_shape), weight, bias, float(eps))


def batch_norm(input, running_mean, running_var, weight=None, bias=None, training=False,
               momentum=0.1, eps=1e-5):
    """Batch normalisation over every dim but 1. In training it normalises with the batch
    statistics and updates the running ones (unbiased variance), as PyTorch."""
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
            with _tensor.no_grad():
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
    if value is None:
        value = 0
    elif not isinstance(value, (int, float, np.generic)):  # bool is an int
        value = float(value)
    return _core.pad(input, [int(p) for p in pad], value)  # exact for int64 tensors


def one_hot(tensor, num_classes=-1):
    idx = tensor.numpy()
    if num_classes < 0:
        num_classes = int(idx.max()) + 1 if idx.size else 0
    if idx.size and (idx.min() < 0 or idx.max() >= num_classes):
        raise IndexError(f"one_hot: class values must be in [0, {num_classes})")
    out = np.zeros(idx.shape + (num_classes,), dtype=np.int64)
    np.put_along_axis(out, idx[..., None], 1, axis=-1)
    return _tensor.tensor(out)


# --------------------------------------------------------------------------- losses

def mse_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    return _core.mse_loss(input, _t(target), _check_reduction(reduction, size_average, reduce))


def l1_loss(input, target, size_average=None, reduce=None, reduction="mean"):
    return _core.l1_loss(input, _t(target), _check_reduction(reduction, size_average, reduce))


def smooth_l1_loss(input, target, size_average=None, reduce=None, reduction="mean", beta=1.0):
    return _core.smooth_l1_loss(input, _t(target), _check_reduction(reduction, size_average, reduce),
                                float(beta))


def nll_loss(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
             reduction="mean"):
    return _core.nll_loss(input, _t(target), weight, _check_reduction(reduction, size_average, reduce),
                          int(ignore_index))


def cross_entropy(input, target, weight=None, size_average=None, ignore_index=-100, reduce=None,
                  reduction="mean", label_smoothing=0.0):
    """Cross-entropy of logits against int64 class targets (or class probabilities).

    Stable for logits of any size: log_softmax subtracts the row maximum.

    >>> import dagrad
    >>> import dagrad.nn.functional as F
    >>> round(F.cross_entropy(dagrad.tensor([[0.0, 0.0]]), dagrad.tensor([1])).item(), 4)
    0.6931
    """
    return _core.cross_entropy(input, _t(target), weight,
                               _check_reduction(reduction, size_average, reduce),
                               int(ignore_index), float(label_smoothing))


def binary_cross_entropy(input, target, weight=None, size_average=None, reduce=None, reduction="mean"):
    return _core.binary_cross_entropy(input, _t(target), weight,
                                      _check_reduction(reduction, size_average, reduce))


def binary_cross_entropy_with_logits(input, target, weight=None, size_average=None, reduce=None,
                                     reduction="mean", pos_weight=None):
    return _core.binary_cross_entropy_with_logits(
        input, _t(target), weight, _check_reduction(reduction, size_average, reduce), pos_weight)
