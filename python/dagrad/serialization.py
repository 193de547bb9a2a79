"""``dagrad.save`` and ``dagrad.load``: nested state_dicts in a .npz file, no pickle.

The structure (dicts, lists, tuples, numbers, strings, None) is stored as JSON in one array,
each tensor as one array. Loading never unpickles, so a checkpoint can never run code, and it
sizes every array from its header before inflating it, so a small hostile file cannot take
gigabytes (Note [Loading untrusted checkpoints]). Saving writes a temporary file in the same
folder, fsyncs it and renames it over the target, so an interrupted save never destroys the
previous checkpoint.
"""
import json
import os
import tempfile
import zipfile

import numpy as np

from . import _core, _creation, _dtype
from ._core import Tensor

_FORMAT = "dagrad-checkpoint-1"


def _pack(obj, arrays):
    if isinstance(obj, Tensor):
        key = f"t{len(arrays)}"
        arrays[key] = np.asarray(obj.numpy(), order="C")
        return {"tensor": key, "dtype": obj.dtype.name, "requires_grad": bool(obj.requires_grad),
                "shape": list(arrays[key].shape)}
    if isinstance(obj, np.ndarray):
        key = f"t{len(arrays)}"
        arrays[key] = np.asarray(obj, order="C")
        return {"ndarray": key, "shape": list(arrays[key].shape)}
    if isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if isinstance(k, bool) or not isinstance(k, (str, int)):
                raise TypeError(f"save: dict keys must be str or int, got {type(k).__name__}")
            items.append([{"int": k} if isinstance(k, int) else {"str": k}, _pack(v, arrays)])
        return {"dict": items}
    if isinstance(obj, (list, tuple)):
        return {"list" if isinstance(obj, list) else "tuple": [_pack(v, arrays) for v in obj]}
    if isinstance(obj, (bool, np.bool_)):
        return {"bool": bool(obj)}
    if isinstance(obj, (int, np.integer)):
        return {"int": int(obj)}
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return {"float": repr(v)}  # repr round-trips exactly, and keeps inf and nan
    if isinstance(obj, str):
        return {"str": obj}
    if obj is None:
        return {"none": True}
    raise TypeError(f"save: cannot store an object of type {type(obj).__name__}")


def _unpack(node, arrays, used=None):
    """The object `node` describes; `arrays` maps (name, "t") to a Tensor already made from
    the data (each is a fresh leaf: a name used twice gets a copy) and (name, "a") to an ndarray."""
    used = set() if used is None else used
    if "tensor" in node:
        t = arrays[(node["tensor"], "t")]
        if id(t) in used:
            t = _core._clone_leaf(t)
        used.add(id(t))
        if node.get("requires_grad"):
            t.requires_grad_(True)
        return t
    if "ndarray" in node:
        return arrays[(node["ndarray"], "a")]
    if "dict" in node:
        out = {}
        for k, v in node["dict"]:
            out[k["int"] if "int" in k else k["str"]] = _unpack(v, arrays, used)
        return out
    if "list" in node:
        return [_unpack(v, arrays, used) for v in node["list"]]
    if "tuple" in node:
        return tuple(_unpack(v, arrays, used) for v in node["tuple"])
    if "bool" in node:
        return bool(node["bool"])
    if "int" in node:
        return int(node["int"])
    if "float" in node:
        return float(node["float"])
    if "str" in node:
        return node["str"]
    if "none" in node:
        return None
    raise ValueError(f"load: unknown entry {node!r}")


def save(obj, path):
    """Saves a (nested) state_dict atomically.

    >>> import dagrad, tempfile, os
    >>> p = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
    >>> dagrad.save({"w": dagrad.ones(2)}, p)
    >>> dagrad.load(p)["w"].tolist()
    [1.0, 1.0]
    """
    arrays = {}
    meta = {"format": _FORMAT, "root": _pack(obj, arrays)}
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".dagrad-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


_DTYPES = {"float32": np.float32, "float64": np.float64, "int64": np.int64, "bool": np.bool_}
_MIN_CAP = 64 << 20

# Note [Loading untrusted checkpoints]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# A .npz is a zip, and a deflated member of a few kB can inflate to gigabytes (a zip bomb), so
# load never inflates anything it has not sized first. It reads the metadata member alone,
# walks the structure it declares, and for each array the structure names (only those) reads
# the .npy header inside the zip (a few hundred bytes) and checks, before allocating or
# inflating the data: the dtype is one dagrad stores, the shape matches the structure (saved
# since this version; older files carry no shapes), the byte count matches the size the zip
# declares for the member, and the running total stays within `max_bytes`. The default cap is
# the file's size or 64 MiB, whichever is larger: `save` stores members uncompressed, so a
# checkpoint it wrote never declares more bytes than the file holds. The data is then read
# straight into an array of exactly that size, and the zip's CRC is checked at the end.


def _read_exact(f, nbytes, what):
    buf = f.read(nbytes)
    if len(buf) != nbytes:
        raise ValueError(f"{what} is truncated ({len(buf)} of {nbytes} bytes)")
    return buf


def _read_member(z, name, budget, expect_dtype=None, expect_shape=None):
    """The array stored as `name`.npy, sized from its header before anything is inflated.
    `budget` is a one-element list holding the bytes still allowed."""
    try:
        info = z.getinfo(name + ".npy")
    except KeyError:
        raise ValueError(f"the structure names an array {name!r} that the file does not hold") from None
    with z.open(info) as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
        elif version in ((2, 0), (3, 0)):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"array {name!r} has an unsupported .npy version {version}")
        header_len = f.tell() if f.seekable() else None
        if dtype.hasobject:  # what np.load(allow_pickle=False) refuses too: unpickling runs code
            raise ValueError(f"array {name!r} holds Python objects (dtype {dtype}), which load never unpickles")
        if expect_dtype is not None and dtype != np.dtype(expect_dtype):
            raise ValueError(f"array {name!r} holds {dtype} where the structure declares {np.dtype(expect_dtype)}")
        if expect_shape is not None and tuple(shape) != tuple(expect_shape):
            raise ValueError(f"array {name!r} has shape {tuple(shape)} where the structure declares "
                             f"{tuple(expect_shape)}")
        count = 1
        for n in shape:  # Python ints: no overflow, whatever the header claims
            count *= n
        nbytes = count * dtype.itemsize
        if header_len is not None and info.file_size != header_len + nbytes:
            raise ValueError(f"array {name!r} declares {nbytes} bytes of data but its zip entry holds "
                             f"{info.file_size - header_len}")
        if nbytes > budget[0]:
            raise ValueError(f"array {name!r} of shape {tuple(shape)} {dtype} needs {nbytes} bytes, over the "
                             f"{budget[0]} bytes still allowed (max_bytes; pass a larger max_bytes to load a "
                             f"checkpoint this large)")
        budget[0] -= nbytes
        arr = np.empty(shape[::-1] if fortran else shape, dtype=dtype)
        view = memoryview(arr.reshape(-1).view(np.uint8))
        done = 0
        while done < nbytes:
            got = f.readinto(view[done:])
            if not got:
                raise ValueError(f"array {name!r} is truncated ({done} of {nbytes} bytes)")
            done += got
        if f.read(1):  # also makes zipfile check the member's CRC
            raise ValueError(f"array {name!r} has data past the {nbytes} bytes its header declares")
    return arr.T if fortran else arr


def _array_ref(name, dtype, shape):
    if not isinstance(name, str) or not name or "/" in name or name == "__meta__":
        raise ValueError(f"bad array name {name!r:.40}")
    if shape is not None and not (isinstance(shape, list) and all(
            isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape)):
        raise ValueError(f"bad shape {shape!r:.80} for array {name!r}")
    return name, dtype, shape


def _arrays_named(node, out, depth=0):
    """(array name, dtype or None, shape or None) for every array the structure refers to."""
    if depth > 500:
        raise ValueError("the structure is nested too deeply")
    if not isinstance(node, dict):
        raise ValueError(f"unknown entry {node!r:.80}")
    if "tensor" in node:
        if node.get("dtype") not in _DTYPES:
            raise ValueError(f"unknown tensor dtype {node.get('dtype')!r:.40}")
        out.append(_array_ref(node["tensor"], _DTYPES[node["dtype"]], node.get("shape")))
    elif "ndarray" in node:
        out.append(_array_ref(node["ndarray"], None, node.get("shape")))
    elif "dict" in node:
        for kv in node["dict"]:
            if not (isinstance(kv, list) and len(kv) == 2):
                raise ValueError(f"unknown dict item {kv!r:.80}")
            _arrays_named(kv[1], out, depth + 1)
    elif "list" in node or "tuple" in node:
        for v in node.get("list", node.get("tuple")):
            _arrays_named(v, out, depth + 1)
    return out


def load(path, *, max_bytes=None):
    """Loads what ``save`` wrote. A corrupt, truncated or hostile file raises ValueError.

    Only the arrays the file's structure names are read, each sized from its header before it
    is inflated (see Note [Loading untrusted checkpoints]).

    Parameters
    ----------
    path : str or os.PathLike
    max_bytes : int, optional
        The most bytes of array data to allocate. Defaults to the file's size or 64 MiB,
        whichever is larger, which every checkpoint ``save`` writes fits in.
    """
    path = os.fspath(path)
    if max_bytes is not None and (isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer))):
        raise TypeError(f"load: max_bytes must be an int or None, got {type(max_bytes).__name__}")
    try:
        size = os.path.getsize(path)
        budget = [max(size, _MIN_CAP) if max_bytes is None else int(max_bytes)]
        with zipfile.ZipFile(path) as z:
            raw = _read_member(z, "__meta__", budget, expect_dtype=np.uint8)
            if raw.ndim != 1:
                raise ValueError("the structure is not a byte string")
            meta = json.loads(raw.tobytes().decode("utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
                raise ValueError(f"unknown format {meta.get('format') if isinstance(meta, dict) else meta!r:.60}")
            arrays, nbytes = {}, {}
            for name, dt, shape in _arrays_named(meta["root"], []):
                key = (name, "a" if dt is None else "t")
                if key in arrays:
                    if dt is not None:  # each further use of a tensor is a copy: it counts too
                        if nbytes[key] > budget[0]:
                            raise ValueError(f"array {name!r} is used more times than max_bytes allows")
                        budget[0] -= nbytes[key]
                    continue
                if key not in arrays:
                    arr = _read_member(z, name, budget, dt, shape)
                    nbytes[key] = arr.nbytes
                    # A tensor is made as soon as its data is read, so that the peak is the data
                    # once plus one array, not every array and every tensor at the same time.
                    arrays[key] = arr if dt is None else _creation.tensor(arr, dtype=_dtype._dtype_arg(dt))
                    del arr
        return _unpack(meta["root"], arrays)
    except FileNotFoundError:
        raise
    except (IsADirectoryError, PermissionError):
        raise
    except Exception as e:  # noqa: BLE001  (zipfile and numpy raise many kinds on corrupt input)
        raise ValueError(f"load: {path!r} is not a valid dagrad checkpoint (corrupt, truncated or "
                         f"too large): {e}") from None
