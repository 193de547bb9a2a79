"""Tensor creation, the Python-side Tensor methods, grad mode and threads."""
import builtins
import contextlib
import functools

import numpy as np

from . import _core
from ._core import Tensor

dtype = _core.dtype
float32 = dtype.float32
float64 = dtype.float64
int64 = dtype.int64
bool = dtype.bool  # noqa: A001  (PyTorch's name)

dtype.__repr__ = lambda self: f"dagrad.{self.name}"
dtype.__str__ = dtype.__repr__

_DEFAULT_FLOAT = float32
_NUMPY_OF = {float32: np.float32, float64: np.float64, int64: np.int64, bool: np.bool_}


def _dtype_arg(d):
    """Accepts a dagrad dtype, a numpy dtype or a type such as float."""
    if d is None or isinstance(d, dtype):
        return d
    if d is builtins.float:
        return _DEFAULT_FLOAT
    if d is builtins.int:
        return int64
    if d is builtins.bool:
        return bool
    try:
        nd = np.dtype(d)
    except TypeError:
        raise TypeError(f"unsupported dtype {d!r}") from None
    for k, v in _NUMPY_OF.items():
        if nd == np.dtype(v):
            return k
    raise TypeError(f"unsupported dtype {d!r}; use dagrad.float32, float64, int64 or bool")


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
        f"tensor: cannot make a tensor from data of numpy dtype {arr.dtype} "
        "(expected numbers or booleans)")


def tensor(data, dtype=None, requires_grad=False):
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
    dt = _dtype_arg(dtype)
    if isinstance(data, Tensor):
        arr = data.numpy()
        from_numpy = True
    else:
        from_numpy = isinstance(data, (np.ndarray, np.generic))
        try:
            arr = np.asarray(data)
        except ValueError as e:
            raise ValueError(f"tensor: data is ragged or not array-like: {e}") from None
        except TypeError as e:
            raise TypeError(f"tensor: cannot convert data of type {type(data).__name__}: {e}") from None
    if arr.dtype.kind not in "biuf":
        if arr.dtype.kind == "O" and not from_numpy:
            raise TypeError(
                "tensor: data must be numbers or nested sequences of numbers of equal length; "
                f"got an object of type {type(data).__name__}")
        if dt is None or arr.dtype.kind not in "biufO":
            raise TypeError(f"tensor: cannot make a tensor from data of numpy dtype {arr.dtype}")
    if dt is None:
        dt = _infer_dtype(arr, from_numpy)
    if dt == int64 and arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        # numpy keeps 2**63 as uint64; int64 would wrap it to -2**63 (torch refuses too).
        raise RuntimeError(f"tensor: value {arr.max()} does not fit in int64 (overflow)")
    try:
        arr = np.asarray(arr, dtype=_NUMPY_OF[dt], order="C")
    except (TypeError, ValueError) as e:
        raise TypeError(f"tensor: cannot convert data to {dt}: {e}") from None
    return _core._from_numpy(arr, dt, requires_grad)


def as_tensor(data, dtype=None):
    """Returns ``data`` if it is already a Tensor of ``dtype``, else ``tensor(data, dtype)``."""
    if isinstance(data, Tensor) and (dtype is None or data.dtype == _dtype_arg(dtype)):
        return data
    return tensor(data, dtype=dtype)


def _size(size):
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    out = []
    for s in size:
        if isinstance(s, builtins.bool) or not isinstance(s, (int, np.integer)):
            raise TypeError(f"size must be a sequence of ints, got {type(s).__name__}")
        out.append(int(s))
    return out


def full(size, fill_value, dtype=None, requires_grad=False):
    """A tensor of shape ``size`` filled with ``fill_value``.

    >>> dagrad.full((2, 2), 7.0).sum().item()
    28.0
    """
    dt = _dtype_arg(dtype)
    if dt is None:
        if isinstance(fill_value, builtins.bool):
            dt = bool
        elif isinstance(fill_value, (int, np.integer)):
            dt = int64
        else:
            dt = _DEFAULT_FLOAT
    size = _size(size if isinstance(size, (tuple, list)) else (size,))
    if not isinstance(fill_value, (int, float, np.generic)):  # bool is an int
        fill_value = float(fill_value)
    return _core.full(size, fill_value, dt, requires_grad)  # exact for int64 (a Scalar)


def zeros(*size, dtype=None, requires_grad=False):
    """A tensor of zeros. >>> dagrad.zeros(2, 3).shape
    (2, 3)
    """
    return _core.full(_size(size), 0.0, _dtype_arg(dtype) or _DEFAULT_FLOAT, requires_grad)


def ones(*size, dtype=None, requires_grad=False):
    """A tensor of ones. >>> dagrad.ones(3).sum().item()
    3.0
    """
    return _core.full(_size(size), 1.0, _dtype_arg(dtype) or _DEFAULT_FLOAT, requires_grad)


def empty(*size, dtype=None, requires_grad=False):
    """An uninitialised tensor (zero-filled here, for reproducibility)."""
    return zeros(*size, dtype=dtype, requires_grad=requires_grad)


def zeros_like(t, dtype=None, requires_grad=False):
    return zeros(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def ones_like(t, dtype=None, requires_grad=False):
    return ones(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def full_like(t, fill_value, dtype=None, requires_grad=False):
    return full(t.shape, fill_value, dtype=dtype or t.dtype, requires_grad=requires_grad)


# Random numbers come from one seeded numpy generator, so manual_seed makes runs repeatable.
_rng = np.random.default_rng(0)


def manual_seed(seed):
    """Seeds dagrad's random number generator. >>> _ = dagrad.manual_seed(0)"""
    global _rng
    _rng = np.random.default_rng(int(seed))
    return _rng


def _random(fn, size, dtype, requires_grad):
    dt = _dtype_arg(dtype) or _DEFAULT_FLOAT
    if not dt.is_floating_point:
        raise TypeError(f"random tensors must be floating point, got {dt}")
    size = _size(size)
    if any(s < 0 for s in size):
        raise ValueError(f"negative dimension in size {tuple(size)}")
    arr = fn(_rng, tuple(size), _NUMPY_OF[dt])
    return _core._from_numpy(np.asarray(arr, order="C"), dt, requires_grad)


def randn(*size, dtype=None, requires_grad=False):
    """Standard normal samples. >>> dagrad.randn(2, 3).shape
    (2, 3)
    """
    return _random(lambda g, s, d: g.standard_normal(s, dtype=d), size, dtype, requires_grad)


def rand(*size, dtype=None, requires_grad=False):
    """Uniform samples on [0, 1). >>> dagrad.rand(4).shape
    (4,)
    """
    return _random(lambda g, s, d: g.random(s, dtype=d), size, dtype, requires_grad)


def randn_like(t, dtype=None, requires_grad=False):
    return randn(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def rand_like(t, dtype=None, requires_grad=False):
    return rand(t.shape, dtype=dtype or t.dtype, requires_grad=requires_grad)


def arange(start, end=None, step=1, dtype=None, requires_grad=False):
    """Evenly spaced values in [start, end). >>> dagrad.arange(3).tolist()
    [0, 1, 2]
    """
    if end is None:
        start, end = 0, start
    arr = np.arange(start, end, step)
    dt = _dtype_arg(dtype)
    if dt is None:
        dt = int64 if arr.dtype.kind in "iu" else _DEFAULT_FLOAT
    return tensor(arr, dtype=dt, requires_grad=requires_grad)


def linspace(start, end, steps, dtype=None, requires_grad=False):
    """``steps`` values from start to end inclusive. >>> dagrad.linspace(0, 1, 3).tolist()
    [0.0, 0.5, 1.0]
    """
    return tensor(np.linspace(start, end, steps), dtype=dtype or _DEFAULT_FLOAT,
                  requires_grad=requires_grad)


def realize(*tensors):
    """Computes every pending value the tensors need, in one parallel run.

    >>> a, b = dagrad.ones(2) * 2, dagrad.ones(2) * 3
    >>> dagrad.realize(a, b)
    """
    _core.realize(list(tensors))


# ----------------------------------------------------------------------------- grad mode

class no_grad(contextlib.ContextDecorator):
    """Context manager and decorator that stops ops from recording what backward needs.

    >>> with dagrad.no_grad():
    ...     y = dagrad.ones(2, requires_grad=True) * 2
    >>> y.requires_grad
    False
    """

    def __enter__(self):
        self._prev = _core.is_grad_enabled()
        _core.set_grad_enabled(False)
        return self

    def __exit__(self, *exc):
        _core.set_grad_enabled(self._prev)
        return False


class enable_grad(contextlib.ContextDecorator):
    """Re-enables grad recording inside a no_grad block."""

    def __enter__(self):
        self._prev = _core.is_grad_enabled()
        _core.set_grad_enabled(True)
        return self

    def __exit__(self, *exc):
        _core.set_grad_enabled(self._prev)
        return False


class set_grad_enabled(contextlib.ContextDecorator):
    """Sets grad mode; usable as a function call or a context manager."""

    def __init__(self, mode):
        self._prev = _core.is_grad_enabled()
        _core.set_grad_enabled(builtins.bool(mode))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        _core.set_grad_enabled(self._prev)
        return False


def is_grad_enabled():
    return _core.is_grad_enabled()


# ----------------------------------------------------------------------------- threads

def set_num_threads(n):
    """Sets the thread budget of the scheduler and kernels (see Note [Thread budget]).

    At most ``max(64, cores)`` (Note [Thread cap]); a larger or non-positive count raises
    ValueError, as does the same value in ``DAGRAD_NUM_THREADS``.
    """
    if isinstance(n, builtins.bool) or not isinstance(n, (int, np.integer)):
        raise TypeError(f"set_num_threads: expected an int, got {type(n).__name__}")
    n = int(n)
    if n < 1 or n > _core.max_threads():
        _core.set_num_threads(builtins.max(0, builtins.min(n, 1 << 40)))  # raises the ValueError
    _core.set_num_threads(n)


def get_num_threads():
    """The thread budget; defaults to $DAGRAD_NUM_THREADS or the number of cores."""
    return _core.get_num_threads()


def show_config():
    """Prints the version, thread budget, OpenMP and BLAS in use."""
    import os
    from . import __version__
    cfg = _core._config()
    lines = [
        f"dagrad {__version__}",
        f"  threads:   {get_num_threads()} (DAGRAD_NUM_THREADS={os.environ.get('DAGRAD_NUM_THREADS', 'unset')})",
        f"  OpenMP:    {cfg['openmp']} (OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', 'unset')})",
        f"  BLAS:      {cfg['blas']}",
        f"  compiler:  {cfg['compiler']}",
        f"  numpy:     {np.__version__}",
    ]
    print("\n".join(lines))


# ----------------------------------------------------------------------------- functions

def _binary(name):
    f = getattr(_core, name)

    @functools.wraps(f)
    def op(input, other):
        if not isinstance(input, Tensor):
            input = tensor(input)
        return f(input, other)
    op.__name__ = name
    return op


add, sub, mul, div = (_binary(n) for n in ("add", "sub", "mul", "div"))
neg, exp, log, sqrt, tanh, sigmoid, relu = (
    getattr(_core, n) for n in ("neg", "exp", "log", "sqrt", "tanh", "sigmoid", "relu"))


def pow(input, exponent):  # noqa: A001
    """``input ** exponent`` for a Python-number exponent."""
    return input ** exponent


def matmul(input, other):
    """Matrix product with numpy's rules for 1-d operands and batch broadcasting.

    >>> dagrad.matmul(dagrad.ones(2, 3), dagrad.ones(3, 4)).shape
    (2, 4)
    """
    return as_tensor(input) @ other


def sum(input, dim=None, keepdim=False):  # noqa: A001
    return input.sum(dim=dim, keepdim=keepdim)


def mean(input, dim=None, keepdim=False):
    return input.mean(dim=dim, keepdim=keepdim)


def reshape(input, shape):
    return input.reshape(shape)


def transpose(input, dim0, dim1):
    return input.transpose(dim0, dim1)


def permute(input, dims):
    return input.permute(dims)


# ----------------------------------------------------------------------------- Tensor methods

def _repr(self):
    arr = self.numpy()
    body = np.array2string(arr, separator=", ", prefix="tensor(",
                           threshold=1000, edgeitems=3)
    extra = []
    if self.dtype not in (float32, int64, bool) or (arr.size == 0 and self.dtype != float32):
        extra.append(f"dtype={self.dtype!r}")
    if self.grad_fn is not None:
        extra.append(f"grad_fn=<{self.grad_fn.name()}>")
    elif self.requires_grad:
        extra.append("requires_grad=True")
    return "tensor(" + body + "".join(", " + e for e in extra) + ")"


class _GradFn:
    """What made a non-leaf tensor (PyTorch's grad_fn), by op name."""

    __slots__ = ("_op",)

    def __init__(self, op):
        self._op = op

    def name(self):
        return "".join(p.capitalize() for p in self._op.split("_")) + "Backward"

    def __repr__(self):
        return f"<{self.name()}>"


def _grad_fn(self):
    if self.is_leaf:
        return None
    return _GradFn(self._op)


def _backward(self, gradient=None, retain_graph=None, create_graph=False):
    """Accumulates the gradient of this tensor into ``.grad`` of every leaf that requires it.

    Parameters
    ----------
    gradient : Tensor, optional
        d(loss)/d(self); may be omitted only for a tensor with one element.
    retain_graph : bool, optional
        Keep the graph for another backward (defaults to ``create_graph``).
    create_graph : bool
        Record the gradient computation too, for higher derivatives.

    >>> x = dagrad.tensor(3.0, requires_grad=True)
    >>> (x * x).backward()
    >>> x.grad.item()
    6.0
    """
    if retain_graph is None:
        retain_graph = create_graph
    self._backward(gradient, builtins.bool(retain_graph), builtins.bool(create_graph))


def _tolist(self):
    return self.numpy().tolist()


def _array(self, dtype=None, copy=None):
    a = self.numpy()
    if dtype is not None:
        a = a.astype(dtype)
    elif copy:
        a = a.copy()
    return a


def _len(self):
    if self.ndim == 0:
        raise TypeError("len() of a 0-d tensor")
    return self.shape[0]


def _size_method(self, dim=None):
    if dim is None:
        return self.shape
    if isinstance(dim, builtins.bool) or not isinstance(dim, (int, np.integer)):
        raise TypeError(f"size: dim must be an int, got {type(dim).__name__}")
    nd = self.ndim
    if nd == 0:
        raise IndexError(f"size: dimension {dim} was given, but a 0-d tensor has no dimensions")
    if not -nd <= dim < nd:
        raise IndexError(f"size: dimension {dim} is out of range for a tensor of {nd} dimensions "
                         f"(expected to be in range of [{-nd}, {nd - 1}])")
    return self.shape[dim]


def _scalar_conv(kind):
    def conv(self):
        if self.numel() != 1:
            raise (TypeError if kind is not builtins.bool else RuntimeError)(
                f"only one-element tensors can be converted to Python scalars (shape {self.shape})")
        return kind(self.item())
    return conv


Tensor.__repr__ = _repr
Tensor.__str__ = _repr
Tensor.grad_fn = property(_grad_fn)
Tensor.backward = _backward
Tensor.tolist = _tolist
Tensor.__array__ = _array
Tensor.__array_ufunc__ = None  # numpy defers to Tensor's reflected operators
Tensor.__array_priority__ = 1000
Tensor.__len__ = _len
Tensor.size = _size_method
Tensor.__float__ = _scalar_conv(builtins.float)
Tensor.__int__ = _scalar_conv(builtins.int)
Tensor.__bool__ = _scalar_conv(builtins.bool)
Tensor.__hash__ = object.__hash__


# ----------------------------------------------------------------------------- more ops

import collections as _collections  # noqa: E402

from . import _indexing  # noqa: E402

_MinMax = _collections.namedtuple("_MinMax", ["values", "indices"])


def _max(self, dim=None, keepdim=False):
    """Without dim: the maximum (gradient shared among ties). With dim: (values, indices),
    the gradient going to the first maximum."""
    if isinstance(dim, Tensor):
        return maximum(self, dim)
    if dim is None:
        return self.amax()
    return _MinMax(*_core.max_dim(self, int(dim), builtins.bool(keepdim)))


def _min(self, dim=None, keepdim=False):
    if isinstance(dim, Tensor):
        return minimum(self, dim)
    if dim is None:
        return self.amin()
    return _MinMax(*_core.min_dim(self, int(dim), builtins.bool(keepdim)))


def _correction(unbiased, correction):
    if correction is not None:
        return float(correction)
    return 1.0 if unbiased is None or unbiased else 0.0


def _var(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, builtins.bool):  # var(False): the positional 'unbiased' of old PyTorch
        dim, unbiased = None, dim
    return _core.var(self, dim, _correction(unbiased, correction), builtins.bool(keepdim))


def _std(self, dim=None, unbiased=None, keepdim=False, *, correction=None):
    if isinstance(dim, builtins.bool):
        dim, unbiased = None, dim
    return _core.std(self, dim, _correction(unbiased, correction), builtins.bool(keepdim))


def _split(self, split_size_or_sections, dim=0):
    if self.ndim == 0:
        raise IndexError("split: a 0-d tensor has no dimension to split")
    n = _size_method(self, dim)
    if isinstance(split_size_or_sections, (int, np.integer)):
        s = int(split_size_or_sections)
        if s <= 0:
            raise ValueError(f"split: split_size must be positive, got {s}")
        sizes = [builtins.min(s, n - i) for i in range(0, n, s)] or [0]
    else:
        sizes = [int(v) for v in split_size_or_sections]
    return tuple(_core.split(self, sizes, int(dim)))


def _chunk(self, chunks, dim=0):
    return tuple(_core.chunk(self, int(chunks), int(dim)))


def _unary_method(name):
    f = getattr(_core, name)
    return lambda self: f(self)


Tensor.__getitem__ = _indexing.getitem
Tensor.max = _max
Tensor.min = _min
Tensor.var = _var
Tensor.std = _std
Tensor.split = _split
Tensor.chunk = _chunk
for _n in ("abs", "sign", "sin", "cos", "log1p", "expm1", "erf", "square", "rsqrt"):
    setattr(Tensor, _n, _unary_method(_n))
del _n


def _t(x):
    return x if isinstance(x, Tensor) else tensor(x)


def abs(input):  # noqa: A001
    return _core.abs(input)


def sign(input):
    return _core.sign(input)


def sin(input):
    return _core.sin(input)


def cos(input):
    return _core.cos(input)


def log1p(input):
    return _core.log1p(input)


def expm1(input):
    return _core.expm1(input)


def erf(input):
    return _core.erf(input)


def square(input):
    return _core.square(input)


def rsqrt(input):
    return _core.rsqrt(input)


def clamp(input, min=None, max=None):  # noqa: A002
    return input.clamp(min, max)


clip = clamp


def where(condition, input, other):
    """Elementwise ``input if condition else other``; numbers broadcast as 0-d tensors."""
    cond = _t(condition)
    a = input if isinstance(input, Tensor) else None
    b = other if isinstance(other, Tensor) else None
    like = a if a is not None else b
    # A number beside a tensor follows PyTorch's weak-scalar rule (the core's result_type).
    if a is None:
        a = _core._scalar_like(input, like) if like is not None else full((), input)
    if b is None:
        b = _core._scalar_like(other, like) if like is not None else full((), other)
    return _core.where(cond, a, b)


def maximum(input, other):
    return _core.maximum(_t(input), _t(other))


def minimum(input, other):
    return _core.minimum(_t(input), _t(other))


def max(input, dim=None, keepdim=False):  # noqa: A001
    return input.max(dim, keepdim)


def min(input, dim=None, keepdim=False):  # noqa: A001
    return input.min(dim, keepdim)


def amax(input, dim=None, keepdim=False):
    return input.amax(dim, keepdim)


def amin(input, dim=None, keepdim=False):
    return input.amin(dim, keepdim)


def argmax(input, dim=None, keepdim=False):
    return input.argmax(dim, keepdim)


def argmin(input, dim=None, keepdim=False):
    return input.argmin(dim, keepdim)


def prod(input, dim=None, keepdim=False):
    return input.prod(dim, keepdim)


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _var(input, dim, unbiased, keepdim, correction=correction)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return _std(input, dim, unbiased, keepdim, correction=correction)


def logsumexp(input, dim, keepdim=False):
    return input.logsumexp(dim, keepdim)


def softmax(input, dim):
    return _core.softmax(input, int(dim))


def log_softmax(input, dim):
    return _core.log_softmax(input, int(dim))


def cat(tensors, dim=0):
    """Concatenates tensors along an existing dim. >>> dagrad.cat([dagrad.ones(2), dagrad.zeros(1)]).tolist()
    [1.0, 1.0, 0.0]
    """
    return _core.cat([_t(t) for t in tensors], int(dim))


concat = cat


def stack(tensors, dim=0):
    return _core.stack([_t(t) for t in tensors], int(dim))


def split(tensor, split_size_or_sections, dim=0):
    return _split(tensor, split_size_or_sections, dim)


def chunk(input, chunks, dim=0):
    return _chunk(input, chunks, dim)


def gather(input, dim, index):
    return input.gather(int(dim), _t(index))


def squeeze(input, dim=None):
    return input.squeeze(dim)


def unsqueeze(input, dim):
    return input.unsqueeze(dim)


def flatten(input, start_dim=0, end_dim=-1):
    return input.flatten(start_dim, end_dim)


def broadcast_to(input, size):
    return input.broadcast_to(list(size))


def eq(input, other):
    return input == other


def ne(input, other):
    return input != other


def lt(input, other):
    return input < other


def le(input, other):
    return input <= other


def gt(input, other):
    return input > other


def ge(input, other):
    return input >= other


def _deepcopy(self, memo):
    """A new leaf with a copy of the value, the same requires_grad and the Parameter mark
    (so a deep-copied Module keeps its Parameters)."""
    if id(self) in memo:
        return memo[id(self)]
    import copy as _copy
    out = _core._clone_leaf(self.detach())
    if self.requires_grad and self.is_leaf:
        out.requires_grad_(True)
    memo[id(self)] = out
    out._is_param = self._is_param
    if self.grad is not None:
        out.grad = _core._clone_leaf(self.grad)
    return out


Tensor.__deepcopy__ = _deepcopy
