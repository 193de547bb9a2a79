"""Parameter initialisation with PyTorch's names, fan rules and gains.

Every function fills its tensor in place (outside the graph, as under ``dagrad.no_grad()``)
and returns it. Random values come from dagrad's seeded generator, so ``dagrad.manual_seed``
makes an initialisation repeatable. Samples are drawn in float64 and rounded to the
tensor's dtype, so a float32 and a float64 model built after the same seed hold the same
values up to that rounding.

>>> import dagrad
>>> from dagrad import nn
>>> w = dagrad.empty(3, 4)
>>> _ = dagrad.manual_seed(0)
>>> nn.init.kaiming_uniform_(w, a=5 ** 0.5).shape
(3, 4)
"""
import math
import warnings

import numpy as np

from .. import _creation, _dtype, autograd


def _rng():
    # Read at call time: manual_seed rebinds _creation._rng.
    return _creation._rng


def _fill(tensor, values):
    """Copies ``values`` (a numpy array of tensor's shape) into ``tensor`` in place."""
    arr = np.asarray(values, dtype=_dtype._NUMPY_OF[tensor.dtype], order="C")
    with autograd.no_grad():
        tensor.copy_(arr)
    return tensor


def _check_float(tensor, fn):
    if not tensor.dtype.is_floating_point:
        raise TypeError(f"{fn}: expected a floating-point tensor, got {tensor.dtype}")


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (PyTorch's table).

    ============ ==========================================
    linear, conv  1
    sigmoid       1
    tanh          5/3
    relu          sqrt(2)
    leaky_relu    sqrt(2 / (1 + negative_slope**2))
    selu          3/4
    ============ ==========================================

    >>> round(calculate_gain('tanh'), 4)
    1.6667
    """
    linear_fns = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d",
                  "conv_transpose2d", "conv_transpose3d"]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope ** 2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor):
    """fan_in = shape[1] * receptive field, fan_out = shape[0] * receptive field."""
    shape = tuple(tensor.shape)
    if len(shape) < 2:
        raise ValueError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return shape[1] * receptive, shape[0] * receptive


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def uniform_(tensor, a=0.0, b=1.0, generator=None):
    """Fills ``tensor`` with samples of U(a, b)."""
    _check_float(tensor, "uniform_")
    g = generator if generator is not None else _rng()
    return _fill(tensor, g.uniform(float(a), float(b), size=tuple(tensor.shape)))


def normal_(tensor, mean=0.0, std=1.0, generator=None):
    """Fills ``tensor`` with samples of N(mean, std**2)."""
    _check_float(tensor, "normal_")
    g = generator if generator is not None else _rng()
    return _fill(tensor, g.normal(float(mean), float(std), size=tuple(tensor.shape)))


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None):
    """Fills ``tensor`` with N(mean, std**2) samples redrawn until they lie in [a, b]."""
    _check_float(tensor, "trunc_normal_")
    if not a < b:
        raise ValueError(f"trunc_normal_: expected a < b, got a={a}, b={b}")
    g = generator if generator is not None else _rng()
    out = g.normal(float(mean), float(std), size=tuple(tensor.shape))
    bad = (out < a) | (out > b)
    while bad.any():
        out[bad] = g.normal(float(mean), float(std), size=int(bad.sum()))
        bad = (out < a) | (out > b)
    return _fill(tensor, out)


def constant_(tensor, val):
    """Fills ``tensor`` with ``val``."""
    with autograd.no_grad():
        tensor.fill_(float(val))
    return tensor


def ones_(tensor):
    """Fills ``tensor`` with ones."""
    return constant_(tensor, 1.0)


def zeros_(tensor):
    """Fills ``tensor`` with zeros."""
    return constant_(tensor, 0.0)


def eye_(tensor):
    """Fills a 2-d ``tensor`` with the identity matrix."""
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _fill(tensor, np.eye(*tensor.shape))


def xavier_uniform_(tensor, gain=1.0, generator=None):
    """Glorot uniform: U(-a, a) with a = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    a = math.sqrt(3.0) * std
    return uniform_(tensor, -a, a, generator)


def xavier_normal_(tensor, gain=1.0, generator=None):
    """Glorot normal: N(0, std**2) with std = gain * sqrt(2 / (fan_in + fan_out))."""
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    std = gain * math.sqrt(2.0 / float(fan_in + fan_out))
    return normal_(tensor, 0.0, std, generator)


def _kaiming_std(tensor, a, mode, nonlinearity):
    fan = _calculate_correct_fan(tensor, mode)
    gain = calculate_gain(nonlinearity, a)
    return gain / math.sqrt(fan)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He uniform: U(-bound, bound) with bound = gain * sqrt(3 / fan).

    ``a`` is the negative slope of the leaky_relu that follows; PyTorch's Linear and Conv
    layers use ``a=sqrt(5)``, which makes bound = 1 / sqrt(fan_in).
    """
    if 0 in tuple(tensor.shape):
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=1)  # as PyTorch's
        return tensor
    bound = math.sqrt(3.0) * _kaiming_std(tensor, a, mode, nonlinearity)
    return uniform_(tensor, -bound, bound, generator)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None):
    """He normal: N(0, std**2) with std = gain / sqrt(fan)."""
    if 0 in tuple(tensor.shape):
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=1)  # as PyTorch's
        return tensor
    return normal_(tensor, 0.0, _kaiming_std(tensor, a, mode, nonlinearity), generator)


def orthogonal_(tensor, gain=1.0, generator=None):
    """Fills ``tensor`` (2-d or more, flattened after dim 0) with a (semi-)orthogonal matrix."""
    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if tensor.numel() == 0:
        return tensor
    rows = tensor.shape[0]
    cols = tensor.numel() // rows
    g = generator if generator is not None else _rng()
    flat = g.standard_normal((rows, cols))
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))  # makes the decomposition unique, as PyTorch
    if rows < cols:
        q = q.T
    return _fill(tensor, gain * q.reshape(tensor.shape))


__all__ = [
    "calculate_gain", "uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_",
    "eye_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_",
    "orthogonal_",
]
