"""``dagrad.save`` and ``dagrad.load``: nested state_dicts in a .npz file, no pickle.

The structure (dicts, lists, tuples, numbers, strings, None) is stored as JSON in one array,
each tensor as one array. Loading uses ``allow_pickle=False``, so a checkpoint can never run
code. Saving writes a temporary file in the same folder, fsyncs it and renames it over the
target, so an interrupted save never destroys the previous checkpoint.
"""
import io
import json
import os
import tempfile
import zipfile

import numpy as np

from . import _tensor
from ._core import Tensor

_FORMAT = "dagrad-checkpoint-1"


def _pack(obj, arrays):
    if isinstance(obj, Tensor):
        key = f"t{len(arrays)}"
        arrays[key] = np.asarray(obj.numpy(), order="C")
        return {"tensor": key, "dtype": obj.dtype.name, "requires_grad": bool(obj.requires_grad)}
    if isinstance(obj, np.ndarray):
        key = f"t{len(arrays)}"
        arrays[key] = np.asarray(obj, order="C")
        return {"ndarray": key}
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


def _unpack(node, arrays):
    if "tensor" in node:
        dt = getattr(_tensor, node["dtype"])
        t = _tensor.tensor(arrays[node["tensor"]], dtype=dt)
        if node.get("requires_grad"):
            t.requires_grad_(True)
        return t
    if "ndarray" in node:
        return arrays[node["ndarray"]]
    if "dict" in node:
        out = {}
        for k, v in node["dict"]:
            out[k["int"] if "int" in k else k["str"]] = _unpack(v, arrays)
        return out
    if "list" in node:
        return [_unpack(v, arrays) for v in node["list"]]
    if "tuple" in node:
        return tuple(_unpack(v, arrays) for v in node["tuple"])
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


def load(path):
    """Loads what ``save`` wrote. A corrupt or truncated file raises ValueError."""
    path = os.fspath(path)
    try:
        with open(path, "rb") as f:
            data = f.read()
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("__meta__").tobytes().decode("utf-8"))
        if meta.get("format") != _FORMAT:
            raise ValueError(f"unknown format {meta.get('format')!r}")
        return _unpack(meta["root"], arrays)
    except FileNotFoundError:
        raise
    except (IsADirectoryError, PermissionError):
        raise
    except Exception as e:  # noqa: BLE001  (zipfile and numpy raise many kinds on corrupt input)
        raise ValueError(f"load: {path!r} is not a valid dagrad checkpoint (corrupt or truncated): {e}") from None
