"""The four dtypes and what dtype arguments accept (a dagrad dtype, a numpy dtype, float/int/bool)."""
import builtins
import warnings

import numpy as np

from . import _core

__all__ = ("float32", "float64", "int64", "bool", "dtype")

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
        with warnings.catch_warnings():  # np.dtype("a") warns of a deprecated alias, then fails below
            warnings.simplefilter("ignore", DeprecationWarning)
            nd = np.dtype(d)
    except TypeError:
        raise TypeError(f"unsupported dtype {d!r}") from None
    for k, v in _NUMPY_OF.items():
        if nd == np.dtype(v):
            return k
    raise TypeError(f"unsupported dtype {d!r}; use dagrad.float32, float64, int64 or bool")
