"""Tensor.__getitem__: numpy's basic and integer-array indexing, mapped onto two graph ops.

Basic indices (ints, slices with positive steps, None, ...) become one strided slice plus a
reshape; integer and boolean arrays become one `index` op (and a permute when, as numpy
specifies, non-adjacent advanced indices move their dims to the front).
"""
import numpy as np

from . import _core
from ._core import Tensor


def _is_array_index(k):
    if isinstance(k, Tensor):
        return True
    if isinstance(k, (list, np.ndarray)):
        return True
    return False


def _to_index_arrays(k, size_of_dims):
    """An integer or boolean array index as a list of int64 index tensors (one per dim it covers)."""
    if isinstance(k, Tensor):
        if k.dtype.name == "bool":
            k = k.numpy()
        elif k.dtype.name == "int64":
            return [k]
        else:
            raise IndexError(f"tensors used as indices must be int64 or bool, got {k.dtype}")
    arr = np.asarray(k)
    if arr.dtype == np.bool_:
        if arr.ndim == 0:
            raise IndexError("a 0-d boolean index is not supported")
        dims = size_of_dims(arr.ndim)
        if tuple(arr.shape) != tuple(dims):
            raise IndexError(f"the boolean mask of shape {arr.shape} does not match the indexed "
                             f"dims of shape {tuple(dims)}")
        return [_core._from_numpy(np.ascontiguousarray(i, dtype=np.int64), _core.dtype.int64, False)
                for i in np.nonzero(arr)]
    if arr.size == 0:
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise IndexError(f"only integers, slices, None, Ellipsis and integer or boolean arrays are "
                         f"valid indices (got an array of dtype {arr.dtype})")
    return [_core._from_numpy(np.asarray(arr, dtype=np.int64, order="C"), _core.dtype.int64, False)]


def getitem(x, key):
    if not isinstance(key, tuple):
        key = (key,)
    shape = list(x.shape)
    nd = len(shape)

    def consumes(k):
        if k is None or k is Ellipsis:
            return 0
        if _is_array_index(k):
            if isinstance(k, Tensor):
                return k.ndim if k.dtype.name == "bool" else 1
            a = np.asarray(k)
            return a.ndim if a.dtype == np.bool_ else 1
        return 1

    if sum(1 for k in key if k is Ellipsis) > 1:
        raise IndexError("an index can only have a single ellipsis ('...')")
    used = sum(consumes(k) for k in key)
    if used > nd:
        raise IndexError(f"too many indices for tensor of dimension {nd} (got {used})")
    if Ellipsis in [k for k in key if not _is_array_index(k)]:
        i = next(i for i, k in enumerate(key) if not _is_array_index(k) and k is Ellipsis)
        key = key[:i] + (slice(None),) * (nd - used) + key[i + 1:]
    else:
        key = key + (slice(None),) * (nd - used)

    has_adv = any(_is_array_index(k) for k in key)
    starts, steps, lens = [0] * nd, [1] * nd, list(shape)
    drop = []        # dims removed by integer indices (basic indexing only)
    adv = []         # (dim, [index tensors]) in order
    new_axes = []    # output positions of None
    d = 0
    out_pos = 0
    for k in key:
        if k is None:
            new_axes.append(out_pos)
            out_pos += 1
            continue
        if _is_array_index(k):
            n = consumes(k)
            adv.append((d, _to_index_arrays(k, lambda m, d=d: shape[d:d + m])))
            d += n
            out_pos += 1
            continue
        if isinstance(k, (bool, np.bool_)):
            raise IndexError("a bare boolean index is not supported")
        if isinstance(k, (int, np.integer)):
            i = int(k)
            size = shape[d]
            if i < -size or i >= size:
                raise IndexError(f"index {i} is out of bounds for dimension {d} with size {size}")
            i = i + size if i < 0 else i
            if has_adv:
                t = _core._from_numpy(np.asarray(i, dtype=np.int64), _core.dtype.int64, False)
                adv.append((d, [t]))
                out_pos += 1
            else:
                starts[d], lens[d] = i, 1
                drop.append(d)
            d += 1
            continue
        if isinstance(k, slice):
            if k.step is not None and k.step <= 0:
                raise ValueError("step must be greater than zero")
            s, e, st = k.indices(shape[d])
            n = len(range(s, e, st))
            starts[d], steps[d], lens[d] = (s if n > 0 else 0), st, n
            d += 1
            out_pos += 1
            continue
        raise IndexError(f"only integers, slices, None, Ellipsis and integer or boolean arrays are valid "
                         f"indices (got {type(k).__name__})")

    y = x
    if starts != [0] * nd or steps != [1] * nd or lens != shape:
        y = _core.strided_slice(y, starts, steps, lens)
    if drop:
        y = y.reshape([n for i, n in enumerate(lens) if i not in drop])
    if adv:
        dims = [dd for dd, _ in adv]
        covered = []
        for dd, idx in adv:
            covered.extend(range(dd, dd + len(idx)))
        indices = [t for _, idx in adv for t in idx]
        adjacent = covered == list(range(covered[0], covered[0] + len(covered)))
        if adjacent:
            y = _core.index(y, indices, covered[0])
        else:
            rest = [i for i in range(y.ndim) if i not in covered]
            y = y.permute(covered + rest)
            y = _core.index(y, indices, 0)
        del dims
    if new_axes:
        s = list(y.shape)
        for p in new_axes:
            s.insert(min(p, len(s)), 1)
        y = y.reshape(s)
    return y
