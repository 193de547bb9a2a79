"""Creation functions: tensors from data, constants, ranges and random numbers."""
import builtins
import operator

import numpy as np

from . import _args, _core
from ._core import Tensor
from ._dtype import _DEFAULT_FLOAT, _NUMPY_OF, bool, float32, float64, int64  # noqa: A004  (PyTorch's name)

__all__ = (
    "tensor", "as_tensor", "zeros", "ones", "full", "empty", "zeros_like", "ones_like", "full_like",
    "randn", "rand", "randn_like", "rand_like", "arange", "linspace", "manual_seed",
)


def _infer_dtype(arr, from_numpy):
    kind = arr.dtype.kind
    if kind == "b":
        return bool
    if kind in "iu":
        return int64
    if kind == "f":
        if from_numpy and arr.dtype == np.float64:
            return float64
        return float32
    raise TypeError(
        f"tensor(): argument 'data' must hold numbers or booleans, not numpy dtype {arr.dtype}")


def tensor(data, dtype=None, requires_grad=False, device=None):
    """Creates a leaf tensor holding a copy of ``data``.

    Parameters
    ----------
    data : array_like
        A number, a (nested) sequence of numbers, a numpy array or a Tensor.
        Python floats become float32 (the default dtype); numpy arrays keep float32/float64;
        integers become int64 and booleans bool.
    dtype : dagrad.dtype, optional
    requires_grad : bool
        Whether backward() should accumulate a gradient into ``.grad``.

    Examples
    --------
    >>> dagrad.tensor([[1.0, 2.0]], requires_grad=True).shape
    (1, 2)
    """
    _args.device(device, "tensor")
    dt = _args.dtype(dtype, "tensor")
    requires_grad = _args.boolean(requires_grad, "tensor", "requires_grad")
    if isinstance(data, Tensor):
        arr = data.numpy()
        from_numpy = True
    else:
        from_numpy = isinstance(data, (np.ndarray, np.generic))
        try:
            arr = np.asarray(data)
        except ValueError as e:
            raise ValueError(f"tensor(): argument 'data' is ragged or not array-like: {e}") from None
        except TypeError as e:
            raise TypeError(f"tensor(): argument 'data' of type {type(data).__name__} cannot be converted: "
                            f"{e}") from None
    if arr.dtype.kind not in "biuf":
        if arr.dtype.kind == "O" and not from_numpy:
            raise TypeError(
                "tensor(): argument 'data' must be numbers or nested sequences of numbers of equal length, "
                f"not {_args.type_name(data)}")
        if dt is None or arr.dtype.kind not in "biufO":
            raise TypeError(f"tensor(): argument 'data' must hold numbers or booleans, not numpy dtype {arr.dtype}")
    if dt is None:
        dt = _infer_dtype(arr, from_numpy)
    if dt == int64 and arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        # numpy keeps 2**63 as uint64; int64 would wrap it to -2**63 (torch refuses too).
        raise RuntimeError(f"tensor: value {arr.max()} does not fit in int64 (overflow)")
    try:
        arr = np.asarray(arr, dtype=_NUMPY_OF[dt], order="C")
    except (TypeError, ValueError) as e:
        raise TypeError(f"tensor(): argument 'data' cannot be converted to {dt}: {e}") from None
    return _core._from_numpy(arr, dt, requires_grad)


def as_tensor(data, dtype=None, device=None):
    """Returns ``data`` if it is already a Tensor of ``dtype``, else ``tensor(data, dtype)``.

    >>> x = dagrad.ones(2)
    >>> dagrad.as_tensor(x) is x
    True
    """
    _args.device(device, "as_tensor")
    if isinstance(data, Tensor) and (dtype is None or data.dtype == _args.dtype(dtype, "as_tensor")):
        return data
    try:
        return tensor(data, dtype=dtype)
    except (TypeError, ValueError) as e:  # the same checks, reported under this function's name
        raise type(e)(str(e).replace("tensor():", "as_tensor():", 1)) from None


def _size(size, fn="size"):
    """f(2, 3), f((2, 3)) or f([2, 3]) as a list of non-negative ints (errors name fn)."""
    return _args.size(size, fn)


def full(size, fill_value, dtype=None, requires_grad=False, device=None, *, _fn="full"):
    """A tensor of shape ``size`` filled with ``fill_value``.

    >>> dagrad.full((2, 2), 7.0).sum().item()
    28.0
    """
    _args.device(device, _fn)
    dt = _args.dtype(dtype, _fn)
    _args.number(fill_value, _fn, "fill_value")
    requires_grad = _args.boolean(requires_grad, _fn, "requires_grad")
    if dt is None:
        if isinstance(fill_value, builtins.bool):
            dt = bool
        elif isinstance(fill_value, (int, np.integer)):
            dt = int64
        else:
            dt = _DEFAULT_FLOAT
    size = _size((size,), _fn)
    return _core.full(size, fill_value, dt, requires_grad)  # exact for int64 (a Scalar)


def zeros(*size, dtype=None, requires_grad=False, device=None):
    """A tensor of zeros.

    >>> dagrad.zeros(2, 3).shape
    (2, 3)
    """
    _args.device(device, "zeros")
    return _core.full(_size(size, "zeros"), 0.0, _args.dtype(dtype, "zeros") or _DEFAULT_FLOAT,
                      _args.boolean(requires_grad, "zeros", "requires_grad"))


def ones(*size, dtype=None, requires_grad=False, device=None):
    """A tensor of ones.

    >>> dagrad.ones(3).sum().item()
    3.0
    """
    _args.device(device, "ones")
    return _core.full(_size(size, "ones"), 1.0, _args.dtype(dtype, "ones") or _DEFAULT_FLOAT,
                      _args.boolean(requires_grad, "ones", "requires_grad"))


def empty(*size, dtype=None, requires_grad=False, device=None):
    """An uninitialised tensor (zero-filled here, for reproducibility).

    >>> dagrad.empty(2).tolist()
    [0.0, 0.0]
    """
    _args.device(device, "empty")
    return _core.full(_size(size, "empty"), 0.0, _args.dtype(dtype, "empty") or _DEFAULT_FLOAT,
                      _args.boolean(requires_grad, "empty", "requires_grad"))


def zeros_like(t, dtype=None, requires_grad=False, device=None):
    """Zeros of ``t``'s shape and (by default) dtype.

    >>> dagrad.zeros_like(dagrad.ones(2, dtype=dagrad.int64)).tolist()
    [0, 0]
    """
    _args.device(device, "zeros_like")
    _args.tensor(t, "zeros_like")
    return full(t.shape, 0, dtype=_args.dtype(dtype, "zeros_like") or t.dtype, requires_grad=requires_grad,
                _fn="zeros_like")


def ones_like(t, dtype=None, requires_grad=False, device=None):
    """Ones of ``t``'s shape and (by default) dtype.

    >>> dagrad.ones_like(dagrad.zeros(2)).tolist()
    [1.0, 1.0]
    """
    _args.device(device, "ones_like")
    _args.tensor(t, "ones_like")
    return full(t.shape, 1, dtype=_args.dtype(dtype, "ones_like") or t.dtype, requires_grad=requires_grad,
                _fn="ones_like")


def full_like(t, fill_value, dtype=None, requires_grad=False, device=None):
    """``fill_value`` in ``t``'s shape and (by default) dtype.

    >>> dagrad.full_like(dagrad.zeros(2), 0.5).tolist()
    [0.5, 0.5]
    """
    _args.device(device, "full_like")
    _args.tensor(t, "full_like")
    return full(t.shape, fill_value, dtype=_args.dtype(dtype, "full_like") or t.dtype, requires_grad=requires_grad,
                _fn="full_like")


# Random numbers come from one seeded numpy generator, so manual_seed makes runs repeatable.
_rng = np.random.default_rng(0)


def manual_seed(seed):
    """Seeds dagrad's random number generator, so that runs repeat.

    >>> _ = dagrad.manual_seed(0)
    >>> a = dagrad.randn(3).tolist()
    >>> _ = dagrad.manual_seed(0)
    >>> dagrad.randn(3).tolist() == a
    True
    """
    global _rng
    if isinstance(seed, (builtins.bool, np.bool_)) or not _args._is_int(seed):
        raise TypeError(f"manual_seed(): argument 'seed' must be int, not {_args.type_name(seed)}")
    seed = operator.index(seed)
    if not -(2 ** 63) <= seed < 2 ** 64:  # PyTorch's range; a negative seed wraps, as in PyTorch
        raise ValueError(f"manual_seed(): argument 'seed' must be in [-2**63, 2**64), got {seed}")
    _rng = np.random.default_rng(seed % 2 ** 64)
    return _rng


def _random(fn, size, dtype, requires_grad, name):
    dt = _args.dtype(dtype, name) or _DEFAULT_FLOAT
    requires_grad = _args.boolean(requires_grad, name, "requires_grad")
    if not dt.is_floating_point:
        raise TypeError(f"{name}(): argument 'dtype' must be a floating point dtype, got {dt}")
    size = _size(size, name)
    arr = fn(_rng, tuple(size), _NUMPY_OF[dt])
    return _core._from_numpy(np.asarray(arr, order="C"), dt, requires_grad)


def randn(*size, dtype=None, requires_grad=False, device=None):
    """Standard normal samples.

    >>> dagrad.randn(2, 3).shape
    (2, 3)
    """
    _args.device(device, "randn")
    return _random(lambda g, s, d: g.standard_normal(s, dtype=d), size, dtype, requires_grad, "randn")


def rand(*size, dtype=None, requires_grad=False, device=None):
    """Uniform samples on [0, 1).

    >>> dagrad.rand(4).shape
    (4,)
    """
    _args.device(device, "rand")
    return _random(lambda g, s, d: g.random(s, dtype=d), size, dtype, requires_grad, "rand")


def randn_like(t, dtype=None, requires_grad=False, device=None):
    """Standard normal samples in ``t``'s shape and (by default) dtype.

    >>> dagrad.randn_like(dagrad.zeros(2, 3, dtype=dagrad.float64)).dtype
    dagrad.float64
    """
    _args.device(device, "randn_like")
    _args.tensor(t, "randn_like")
    return _random(lambda g, s, d: g.standard_normal(s, dtype=d), t.shape,
                   _args.dtype(dtype, "randn_like") or t.dtype, requires_grad, "randn_like")


def rand_like(t, dtype=None, requires_grad=False, device=None):
    """Uniform samples on [0, 1) in ``t``'s shape and (by default) dtype.

    >>> dagrad.rand_like(dagrad.zeros(4)).shape
    (4,)
    """
    _args.device(device, "rand_like")
    _args.tensor(t, "rand_like")
    return _random(lambda g, s, d: g.random(s, dtype=d), t.shape,
                   _args.dtype(dtype, "rand_like") or t.dtype, requires_grad, "rand_like")


def arange(start, end=None, step=1, dtype=None, requires_grad=False, device=None):
    """Evenly spaced values in [start, end).

    >>> dagrad.arange(3).tolist()
    [0, 1, 2]
    """
    _args.device(device, "arange")
    start = _exact_number(start, "arange", "start")
    end = None if end is None else _exact_number(end, "arange", "end")
    step = _exact_number(step, "arange", "step")
    if step == 0:
        raise ValueError("arange(): argument 'step' must be nonzero")
    if end is None:
        start, end = 0, start
    n = np.ceil((end - start) / step)
    if not np.isfinite(n) or n > 2 ** 62:
        raise ValueError(f"arange(): the range from {start} to {end} by {step} has too many elements")
    arr = np.arange(start, end, step)
    dt = _args.dtype(dtype, "arange")
    if dt is None:
        dt = int64 if arr.dtype.kind in "iu" else _DEFAULT_FLOAT
    return tensor(arr, dtype=dt, requires_grad=requires_grad)


def _exact_number(v, fn, name):
    """A number kept as given (ints stay exact for arange), checked like _args.number."""
    _args.number(v, fn, name)
    return v


def linspace(start, end, steps, dtype=None, requires_grad=False, device=None):
    """``steps`` values from start to end inclusive.

    >>> dagrad.linspace(0, 1, 3).tolist()
    [0.0, 0.5, 1.0]
    """
    _args.device(device, "linspace")
    dtype = _args.dtype(dtype, "linspace")
    start = _args.number(start, "linspace", "start")
    end = _args.number(end, "linspace", "end")
    steps = _args.integer(steps, "linspace", "steps")
    if steps < 0:
        raise ValueError(f"linspace(): argument 'steps' must be non-negative, got {steps}")
    return tensor(np.linspace(start, end, steps), dtype=dtype or _DEFAULT_FLOAT,
                  requires_grad=requires_grad)
