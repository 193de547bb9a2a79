"""Tensor.__getitem__: numpy's basic and advanced indexing, mapped onto two graph ops.

Note [Where advanced indexing puts its dims]
~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
numpy's rule, which dagrad follows (torch differs only where an Ellipsis stands for no dim):
once any array index is present, every int index is an advanced index too, and so is a bare
bool (a 0-d boolean array: True adds a dim of 1, False a dim of 0). All advanced indices
broadcast to one shape B. If they stand next to each other in the key, B replaces them where
they stand; if a slice, an Ellipsis (even one that stands for no dim) or a None separates two of
them, B goes first and the other dims follow in key order.

The key is therefore applied in two steps:
1. basic: one strided slice of the input, reshaped so that every key item owns its dims in key
   order (None and a bare bool own a new dim of 1; an int owns none when the key has no arrays);
2. advanced: one `index` op over the dims the advanced items own, in place when they are
   adjacent in the key, else after a permute that brings those dims to the front.
Each step is an op with a backward rule, so the gradient is a scatter-add by construction.
"""
import operator

import numpy as np

from . import _core
from ._core import Tensor

_KINDS_ADVANCED = ("array", "mask", "bool0")


def _as_int64_tensor(a):
    # np.asarray, not np.ascontiguousarray: the latter makes a 0-d index 1-d.
    return _core._from_numpy(np.asarray(a, dtype=np.int64, order="C"), _core.dtype.int64, False)


def _classify(k):
    """(kind, payload) of one key item. Kinds: none, ellipsis, int, slice, bool0 (a bare bool),
    array (int64 indices: a Tensor or an ndarray), mask (an ndarray of bools, >= 1-d)."""
    if k is None:
        return "none", None
    if k is Ellipsis:
        return "ellipsis", None
    if isinstance(k, slice):
        return "slice", k
    if isinstance(k, (bool, np.bool_)):
        return "bool0", bool(k)
    if isinstance(k, Tensor):
        name = k.dtype.name
        if name == "bool":
            arr = np.asarray(k.numpy())
            return ("bool0", bool(arr)) if arr.ndim == 0 else ("mask", arr)
        if name == "int64":
            return "array", k
        raise IndexError(f"getitem: tensors used as indices must be int64 or bool, got {k.dtype}")
    if isinstance(k, (list, tuple, np.ndarray)):
        try:
            arr = np.asarray(k)
        except ValueError as e:  # ragged nested lists
            raise IndexError(f"getitem: an index sequence must be rectangular: {e}") from None
        if arr.dtype == np.bool_:
            return ("bool0", bool(arr)) if arr.ndim == 0 else ("mask", arr)
        if arr.size == 0:
            arr = arr.astype(np.int64)
        if arr.dtype.kind not in "iu":
            raise IndexError(f"getitem: only integers, slices, None, Ellipsis and integer or boolean "
                             f"arrays are valid indices (got an array of dtype {arr.dtype})")
        return "array", arr
    try:
        return "int", operator.index(k)
    except TypeError:
        pass
    raise IndexError(f"getitem: only integers, slices, None, Ellipsis and integer or boolean arrays "
                     f"are valid indices (got {type(k).__name__})")


def _consumed(kind, payload):
    """How many input dims a key item indexes."""
    if kind in ("int", "slice", "array"):
        return 1
    if kind == "mask":
        return payload.ndim
    return 0


def getitem(x, key):
    if not isinstance(key, tuple):
        key = (key,)
    shape = list(x.shape)
    nd = len(shape)
    items = [_classify(k) for k in key]
    if sum(1 for kind, _ in items if kind == "ellipsis") > 1:
        raise IndexError("getitem: an index can only have a single ellipsis ('...')")
    used = sum(_consumed(*it) for it in items)
    if used > nd:
        raise IndexError(f"getitem: too many indices for tensor of dimension {nd} (got {used})")
    # Expand the Ellipsis (or the implicit one at the end) into full slices; the Ellipsis item
    # stays as a marker, since it separates advanced indices even when it stands for no dim.
    fill = [("slice", slice(None))] * (nd - used)
    e = next((i for i, (kind, _) in enumerate(items) if kind == "ellipsis"), None)
    items = items + fill if e is None else items[:e + 1] + fill + items[e + 1:]
    has_adv = any(kind in _KINDS_ADVANCED for kind, _ in items)
    # numpy and torch check no index of an advanced block that broadcasts to no element.
    adv_shapes = [tuple(k.shape) for kind, k in items if kind == "array"]
    adv_shapes += [(int(np.count_nonzero(k.numpy() if isinstance(k, Tensor) else k)),)
                   for kind, k in items if kind == "mask"]
    adv_shapes += [(1 if k else 0,) for kind, k in items if kind == "bool0"]
    try:
        adv_empty = 0 in np.broadcast_shapes(*adv_shapes) if adv_shapes else False
    except ValueError:
        adv_empty = False  # shapes that do not broadcast: reported below, where they are combined

    # Step 1: basic indexing. `owned[i]` is the list of dims of `y` that item i owns.
    starts, steps, lens = [0] * nd, [1] * nd, list(shape)
    y_shape, owned, adv = [], [], []  # adv: (item position, [int64 index tensors])
    d = 0
    for pos, (kind, k) in enumerate(items):
        first = len(y_shape)
        if kind == "none":
            y_shape.append(1)
        elif kind == "bool0":
            # A new dim of 1, indexed by [0] (True) or by [] (False): B gets a dim of 1 or 0.
            y_shape.append(1)
            adv.append((pos, [_as_int64_tensor(np.zeros(1 if k else 0))]))
        elif kind == "int":
            size = shape[d]
            if k < -size or k >= size:
                raise IndexError(f"getitem: index {k} is out of bounds for dimension {d} with size {size}")
            k = k + size if k < 0 else k
            if has_adv:  # numpy: an int beside an array is a 0-d advanced index
                y_shape.append(size)
                adv.append((pos, [_as_int64_tensor(np.asarray(k))]))
            else:
                starts[d], lens[d] = k, 1
            d += 1
        elif kind == "slice":
            if k.step is not None and operator.index(k.step) <= 0:
                raise ValueError(f"getitem: slice step must be greater than zero, got {k.step}")
            s, stop, st = k.indices(shape[d])
            n = len(range(s, stop, st))
            starts[d], steps[d], lens[d] = (s if n > 0 else 0), st, n
            y_shape.append(n)
            d += 1
        elif kind == "array":
            size = shape[d]
            if isinstance(k, np.ndarray):
                if k.size and not adv_empty and (k.min() < -size or k.max() >= size):
                    bad = int(k.min()) if k.min() < -size else int(k.max())
                    raise IndexError(f"getitem: index {bad} is out of bounds for dimension {d} "
                                     f"with size {size}")
                k = _as_int64_tensor(k)
            y_shape.append(size)
            adv.append((pos, [k]))
            d += 1
        elif kind == "mask":
            m = k.ndim
            if tuple(k.shape) != tuple(shape[d:d + m]):
                raise IndexError(f"getitem: the boolean mask of shape {k.shape} does not match the "
                                 f"indexed dims {tuple(shape[d:d + m])} (dims {d} to {d + m - 1})")
            y_shape.extend(shape[d:d + m])
            adv.append((pos, [_as_int64_tensor(i) for i in np.nonzero(k)]))
            d += m
        owned.append(list(range(first, len(y_shape))))

    y = x
    if starts != [0] * nd or steps != [1] * nd or lens != shape:
        y = _core.strided_slice(y, starts, steps, lens)
    if list(y.shape) != y_shape:
        y = y.reshape(y_shape)
    if not adv:
        return y

    # Step 2: advanced indexing, see Note [Where advanced indexing puts its dims].
    shapes = [tuple(t.shape) for _, ts in adv for t in ts]
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        raise IndexError(f"getitem: shape mismatch: indexing arrays could not be broadcast together "
                         f"with shapes {' '.join(str(s) for s in shapes)}") from None
    positions = [pos for pos, _ in adv]
    covered = [dim for pos in positions for dim in owned[pos]]
    indices = [t for _, ts in adv for t in ts]
    if positions == list(range(positions[0], positions[0] + len(positions))):
        return _core.index(y, indices, covered[0])
    rest = [i for i in range(y.ndim) if i not in covered]
    return _core.index(y.permute(covered + rest), indices, 0)


def _numpy_key(key):
    """The key with every Tensor in it as a numpy array (numpy's indexing rules are PyTorch's
    for the forms dagrad accepts)."""
    if isinstance(key, tuple):
        return tuple(_numpy_key(k) for k in key)
    if isinstance(key, Tensor):
        return key.numpy()
    if isinstance(key, list):
        return [_numpy_key(k) for k in key]
    return key


def setitem(x, key, value):
    """``x[key] = value``: an in-place write of ``value`` (a number or a tensor, broadcast and
    cast to x's dtype) at the indexed positions. Like every in-place op it bumps x's version, so a
    graph that saved x's old value raises on backward, and it is refused on a tensor that
    requires grad outside ``no_grad``.

    >>> t = dagrad.zeros(4)
    >>> t[1:3] = 7.0
    >>> t.tolist()
    [0.0, 7.0, 7.0, 0.0]
    """
    getitem(x, key)  # the key is checked (types, ranges) exactly as for reading
    if x.requires_grad and _core.is_grad_enabled():
        raise RuntimeError("a tensor that requires grad is being used in an in-place operation "
                           "(x[...] = v); wrap the update in dagrad.no_grad()")
    parts = key if isinstance(key, tuple) else (key,)
    advanced = any(isinstance(k, (list, Tensor, np.ndarray, bool, np.bool_)) for k in parts)
    # A lone boolean mask with a 0-d value is a masked fill in PyTorch, which casts.
    core = [k for k in parts if k is not Ellipsis]
    mask_fill = (len(core) == 1 and not isinstance(core[0], (bool, np.bool_))
                 and np.asarray(_numpy_key(core[0])).dtype == np.bool_)
    if advanced and isinstance(value, Tensor) and value.dtype != x.dtype and not (value.ndim == 0 and mask_fill):
        # PyTorch's rule for index_put: an indexed write takes a tensor of the same dtype
        # (a basic-indexing write casts, as copy_ does).
        raise RuntimeError(f"Index put requires the source and destination dtypes match, got {x.dtype} for the "
                           f"destination and {value.dtype} for the source")
    v = value.numpy() if isinstance(value, Tensor) else np.asarray(value)
    arr = np.array(x.numpy())  # a writable copy of the current value
    try:
        arr[_numpy_key(key)] = v
    except ValueError as e:
        raise RuntimeError(f"__setitem__: cannot assign a value of shape {np.shape(v)} to the indexed part of a "
                           f"tensor of shape {tuple(x.shape)}: {e}") from None
    src = _core._from_numpy(np.array(arr, order="C", copy=True), x.dtype, False)  # 0-d stays 0-d
    x.copy_(src)
