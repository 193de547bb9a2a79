"""The process group on MPI (mpi4py): init, rank, world size, collectives and the abort-on-error hook."""
import sys
import threading

import numpy as np

from .. import _args, _creation, _dtype
from .._core import Tensor

_INSTALL = ("dagrad.distributed needs mpi4py and an MPI library: pip install 'dagrad[distributed]' "
            "(which installs mpi4py and mpich from PyPI), or pip install mpi4py against your system MPI")

# Note [MPI thread level]
# ~~~~~~~~~~~~~~~~~~~~~~~
# Gradient buckets are reduced inside backward's run (Note [Gradient buckets are graph nodes]),
# so MPI is called from whichever scheduler worker runs a bucket's node, not only from the main
# thread: MPI_THREAD_FUNNELED is not enough. init() asks for MPI_THREAD_MULTIPLE (mpi4py's
# default) and accepts MPI_THREAD_SERIALIZED; below that it raises. Either way every MPI call
# dagrad makes goes through `_lock`, so at most one thread of a process is inside MPI at a time
# (what SERIALIZED requires, and it keeps a user's own Python thread calling all_reduce from
# interleaving its collective with a bucket's). The lock is not what orders collectives across
# ranks: MPI needs every rank to start the same collectives in the same order, and a parallel
# run may reach the buckets in another order on each rank; the bucket nodes are therefore
# chained in the graph (each bucket's node waits for the previous bucket's), so they run in
# bucket order on every rank whatever the thread count, and nothing else calls MPI during a run.
# A bucket's reduction is blocking: its worker waits inside MPI with the GIL released (mpi4py
# drops it around blocking calls) while the other workers go on with the rest of backward. A
# nonblocking Iallreduce would need a progress thread (MPICH progresses requests only inside MPI
# calls) for no gain here: the waiting worker is that thread. With one thread (a 1-core budget)
# the run is serial and nothing overlaps, which the example and the benchmark report as it is.
_lock = threading.RLock()

_comm = None
_MPI = None
_prev_hooks = None


def _mpi():
    global _MPI
    if _MPI is None:
        try:
            import mpi4py
        except ImportError as e:
            raise ImportError(_INSTALL) from e
        mpi4py.rc.thread_level = "multiple"  # only read if MPI is not initialized yet
        try:
            from mpi4py import MPI
        except (ImportError, RuntimeError) as e:  # mpi4py without a loadable MPI library
            raise ImportError(f"{_INSTALL} ({e})") from e
        _MPI = MPI
    return _MPI


def _require(fn):
    if _comm is None:
        raise RuntimeError(f"dagrad.distributed.{fn}(): the process group is not initialized; "
                           "call dagrad.distributed.init() first")
    return _comm


# Note [A failing rank aborts the job]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# When one rank dies of an exception the others are blocked in a collective that will never
# complete: they would hang until a human kills the job. init() therefore installs
# sys.excepthook and threading.excepthook: an exception that nothing caught (on the main thread
# or any Python thread) prints its traceback as usual, then calls MPI_Abort on the world
# communicator, which makes mpiexec end every rank with a non-zero status within seconds. A
# rank that exits by a signal is ended the same way by mpiexec itself. An error inside a bucket's
# node (a scheduler worker) reaches the thread that called backward as a RuntimeError and goes
# the same way if uncaught. finalize() restores the previous hooks.
def _abort_hook(prev):
    def hook(*args):
        try:
            prev(*args)
        finally:
            try:
                sys.stderr.flush()
                sys.stdout.flush()
            finally:
                _MPI.COMM_WORLD.Abort(1)
    return hook


def _thread_abort_hook(prev):
    def hook(args):
        try:
            prev(args)
        finally:
            try:
                sys.stderr.flush()
            finally:
                _MPI.COMM_WORLD.Abort(1)
    return hook


def init(abort_on_error=True):
    """Joins the process group of the MPI job this process belongs to (``mpiexec -n N``; a
    process started without mpiexec is a group of one). Safe to call twice.

    Parameters
    ----------
    abort_on_error : bool
        Install the hooks that abort every rank when one dies of an uncaught exception
        (Note [A failing rank aborts the job]), so a failure never leaves the others hanging.

    Raises ImportError naming what to install when mpi4py or MPI is missing, and RuntimeError
    when the MPI library cannot call from several threads (Note [MPI thread level]).

    >>> import dagrad.distributed as dist
    >>> dist.init()  # doctest: +SKIP
    >>> dist.rank(), dist.world_size()  # doctest: +SKIP
    (0, 1)
    """
    global _comm, _prev_hooks
    abort_on_error = _args.boolean(abort_on_error, "init", "abort_on_error")
    MPI = _mpi()
    if _comm is not None:
        return
    provided = MPI.Query_thread()
    if provided < MPI.THREAD_SERIALIZED:
        raise RuntimeError(
            "dagrad.distributed.init(): the MPI library was initialized with thread level "
            f"{provided} (below MPI_THREAD_SERIALIZED); dagrad reduces gradients on its worker threads and needs "
            "at least SERIALIZED (see Note [MPI thread level]); initialize MPI with MPI_THREAD_MULTIPLE")
    with _lock:
        _comm = MPI.COMM_WORLD.Dup()  # dagrad's own traffic stays apart from the user's
    if abort_on_error:
        _prev_hooks = (sys.excepthook, threading.excepthook)
        sys.excepthook = _abort_hook(sys.excepthook)
        threading.excepthook = _thread_abort_hook(threading.excepthook)


def is_initialized():
    """Whether ``init()`` has been called (and ``finalize()`` not since)."""
    return _comm is not None


def is_available():
    """Whether mpi4py and an MPI library can be loaded (so that ``init()`` can work)."""
    try:
        _mpi()
    except ImportError:
        return False
    return True


def finalize():
    """Leaves the process group: frees dagrad's communicator and restores the exception
    hooks. MPI itself is finalized by mpi4py when the interpreter exits."""
    global _comm, _prev_hooks
    if _comm is None:
        return
    with _lock:
        _comm.Free()
        _comm = None
    if _prev_hooks is not None:
        sys.excepthook, threading.excepthook = _prev_hooks
        _prev_hooks = None


def rank():
    """This process's index in the group, 0 to ``world_size() - 1``."""
    return _require("rank").Get_rank()


def world_size():
    """The number of processes in the group."""
    return _require("world_size").Get_size()


def is_main_process():
    """True on rank 0 (and when the group is not initialized: a single process)."""
    return _comm is None or _comm.Get_rank() == 0


def barrier():
    """Waits until every rank has reached this call."""
    comm = _require("barrier")
    with _lock:
        comm.Barrier()


def _reduce_inplace(buf, op, comm, scratch=None):
    """Reduces the contiguous array `buf` across ranks in place, the same bits on every rank.

    Note [Reductions give every rank the same bits]: MPI_Allreduce does not promise that every
    rank gets bitwise the same result (an implementation may add in another order on each rank).
    dagrad reduces in two steps instead: MPI_Reduce_scatter_block gives each rank the reduced
    values of its own slice of the buffer (each element reduced once, on one rank, in an order
    MPI asks to be the same whenever the arguments are, so the same every step), "mean" divides
    that slice there, and MPI_Allgather copies every slice to every rank, so all ranks hold the
    same bits by construction. It moves as many bytes as a bandwidth-optimal allreduce (about as
    fast as MPICH's MPI_Allreduce here; a Reduce to rank 0 and a Bcast took 2.5 times as long). The
    buffer is padded to a multiple of the world size (DistributedDataParallel sizes its bucket
    buffers so, to skip that copy). `scratch`, if given, is where this rank's slice is reduced
    (DistributedDataParallel keeps one per bucket: a fresh array every call costs page faults
    that made a 2.7 MB reduction twice as slow)."""
    MPI = _MPI
    mpi_op = {"sum": MPI.SUM, "mean": MPI.SUM, "max": MPI.MAX, "min": MPI.MIN}[op]
    flat = buf.reshape(-1)
    n, world = flat.size, comm.Get_size()
    if n == 0:
        return
    chunk = -(-n // world)
    work = flat if chunk * world == n else np.zeros(chunk * world, dtype=flat.dtype)
    if work is not flat:
        work[:n] = flat
    part = scratch if scratch is not None and scratch.shape == (chunk,) else np.empty(chunk, dtype=flat.dtype)
    with _lock:
        comm.Reduce_scatter_block(work, part, op=mpi_op)
        if op == "mean":
            np.divide(part, world, out=part)
        comm.Allgather(part, work)
    if work is not flat:
        flat[:] = work[:n]


_OPS = ("sum", "mean", "max", "min")


def _array_of(tensor, fn):
    _args.tensor(tensor, fn, "tensor")
    return np.ascontiguousarray(tensor.detach().numpy()).copy()


def all_reduce(tensor, op="sum"):
    """Reduces ``tensor`` over all ranks and writes the result into it (as PyTorch's
    ``dist.all_reduce``); returns it. ``op`` is ``"sum"``, ``"mean"``, ``"max"`` or ``"min"``.
    Every rank gets the same bits (Note [Reductions give every rank the same bits]).

    >>> t = dagrad.tensor([float(dist.rank())])  # doctest: +SKIP
    >>> dist.all_reduce(t, op="max").item() == dist.world_size() - 1  # doctest: +SKIP
    True
    """
    op = _args.choice(op, "all_reduce", "op", _OPS)
    _args.tensor(tensor, "all_reduce", "tensor")
    if tensor.dtype == _dtype.bool and op in ("sum", "mean"):
        raise TypeError(f"all_reduce(): op '{op}' is not defined for a bool tensor")
    if op == "mean" and tensor.dtype == _dtype.int64:
        raise TypeError("all_reduce(): op 'mean' needs a floating tensor, got dagrad.int64")
    comm = _require("all_reduce")
    buf = _array_of(tensor, "all_reduce")
    if buf.dtype == np.bool_:
        buf = buf.view(np.uint8)
    _reduce_inplace(buf, op, comm)
    from .. import autograd
    with autograd.no_grad():
        tensor.copy_(_creation.tensor(buf.view(np.bool_) if tensor.dtype == _dtype.bool else buf,
                                      dtype=tensor.dtype))
    return tensor


def _same_everywhere(comm, buf, fn):
    # A collective over buffers of different sizes is undefined in MPI (a truncation error, or
    # worse): compare shapes and dtypes first, and raise the same ValueError on every rank.
    with _lock:
        sigs = comm.allgather((buf.shape, buf.dtype.str))
    if any(s != sigs[0] for s in sigs):
        raise ValueError(f"{fn}(): every rank must pass a tensor of the same shape and dtype, got "
                         + ", ".join(f"rank {r}: {s} {np.dtype(d).name}" for r, (s, d) in enumerate(sigs)))


def all_gather(tensor):
    """Every rank's ``tensor`` (all of one shape and dtype), in rank order, as a list of new
    tensors on every rank.

    >>> parts = dist.all_gather(dagrad.tensor([dist.rank()]))  # doctest: +SKIP
    >>> [p.item() for p in parts]  # doctest: +SKIP
    [0, 1]
    """
    comm = _require("all_gather")
    buf = _array_of(tensor, "all_gather")
    _same_everywhere(comm, buf, "all_gather")
    out = np.empty((comm.Get_size(),) + buf.shape, dtype=buf.dtype)
    raw = buf.view(np.uint8) if buf.dtype == np.bool_ else buf
    with _lock:
        comm.Allgather(raw, out.view(np.uint8) if buf.dtype == np.bool_ else out)
    return [_creation.tensor(out[r], dtype=tensor.dtype) for r in range(out.shape[0])]


def broadcast(tensor, root=0):
    """Overwrites ``tensor`` on every rank with its value on ``root``; returns it."""
    comm = _require("broadcast")
    root = _check_root(root, comm, "broadcast")
    buf = _array_of(tensor, "broadcast")
    _same_everywhere(comm, buf, "broadcast")
    raw = buf.view(np.uint8) if buf.dtype == np.bool_ else buf
    with _lock:
        comm.Bcast(raw, root=root)
    from .. import autograd
    with autograd.no_grad():
        tensor.copy_(_creation.tensor(buf, dtype=tensor.dtype))
    return tensor


def _check_root(root, comm, fn):
    root = _args.integer(root, fn, "root", allow_bool=False)
    if not 0 <= root < comm.Get_size():
        raise ValueError(f"{fn}(): argument 'root' must be a rank between 0 and {comm.Get_size() - 1}, got {root}")
    return root


def _named_state(model, fn):
    if isinstance(model, Tensor):
        return [("tensor", model)]
    if hasattr(model, "named_parameters") and hasattr(model, "named_buffers"):
        return list(model.named_parameters()) + [(n, b) for n, b in model.named_buffers() if b is not None]
    try:
        items = list(model)
    except TypeError:
        raise TypeError(f"{fn}(): expected a Module or an iterable of Tensors, got {_args.type_name(model)}") from None
    for i, t in enumerate(items):
        if not isinstance(t, Tensor):
            raise TypeError(f"{fn}(): element {i} is a {_args.type_name(t)}, not a Tensor")
    return [(str(i), t) for i, t in enumerate(items)]


def broadcast_parameters(model, root=0):
    """Copies the parameters and buffers of ``model`` (a Module, or an iterable of tensors) on
    ``root`` into the same tensors on every other rank, in place, so every rank starts from the
    same values. Every rank must pass a model of the same structure: names, shapes and dtypes
    are compared first, and a difference is a ValueError on every rank.

    >>> model = dagrad.nn.Linear(4, 2)  # doctest: +SKIP
    >>> dist.broadcast_parameters(model)  # doctest: +SKIP
    """
    comm = _require("broadcast_parameters")
    root = _check_root(root, comm, "broadcast_parameters")
    named = _named_state(model, "broadcast_parameters")
    sig = [(n, tuple(t.shape), t.dtype.name) for n, t in named]
    with _lock:
        sigs = comm.allgather(sig)
    for r, s in enumerate(sigs):
        if s != sigs[root]:
            diff = next((a, b) for a, b in zip(s + [None] * len(sigs[root]), sigs[root] + [None] * len(s)) if a != b)
            raise ValueError(f"broadcast_parameters(): rank {r}'s model differs from rank {root}'s: "
                             f"{diff[0]} against {diff[1]} (name, shape, dtype)")
    if not named:
        return
    from .. import autograd
    arrays = [_array_of(t, "broadcast_parameters") for _, t in named]
    with _lock:
        for a in arrays:
            comm.Bcast(a.view(np.uint8) if a.dtype == np.bool_ else a, root=root)
    with autograd.no_grad():
        for (_, t), a in zip(named, arrays):
            t.copy_(_creation.tensor(a, dtype=t.dtype))


def reduce_metrics(metrics):
    """Averages a dict of numbers (or one-element tensors), such as a loss and an accuracy,
    over all ranks onto rank 0: rank 0 gets a dict of floats, the other ranks ``None``. Every
    rank must pass the same keys.

    >>> m = dist.reduce_metrics({"loss": 0.5, "accuracy": 0.9})  # doctest: +SKIP
    >>> m if dist.is_main_process() else None  # doctest: +SKIP
    {'loss': 0.5, 'accuracy': 0.9}
    """
    comm = _require("reduce_metrics")
    if not isinstance(metrics, dict):
        raise TypeError(f"reduce_metrics(): expected a dict of numbers, got {_args.type_name(metrics)}")
    keys = sorted(metrics)
    values = []
    for k in keys:
        v = metrics[k]
        if isinstance(v, Tensor):
            if v.numel() != 1:
                raise ValueError(f"reduce_metrics(): metric {k!r} has {v.numel()} elements, expected one")
            v = v.item()
        values.append(float(_args.number(v, "reduce_metrics", repr(k))))
    with _lock:
        all_keys = comm.allgather(keys)
    if any(ks != keys for ks in all_keys):
        raise ValueError("reduce_metrics(): every rank must pass the same keys, got "
                         + "; ".join(f"rank {r}: {ks}" for r, ks in enumerate(all_keys)))
    buf = np.asarray(values, dtype=np.float64)
    MPI = _MPI
    with _lock:
        if comm.Get_rank() == 0:
            comm.Reduce(MPI.IN_PLACE, buf, op=MPI.SUM, root=0)
        else:
            comm.Reduce(buf, None, op=MPI.SUM, root=0)
    if comm.Get_rank() != 0:
        return None
    buf /= comm.Get_size()
    return {k: float(v) for k, v in zip(keys, buf)}


def print_rank0(*args, **kwargs):
    """``print`` on rank 0 only (every process prints when the group is not initialized)."""
    if is_main_process():
        kwargs.setdefault("flush", True)
        print(*args, **kwargs)


def save_rank0(obj, f):
    """``dagrad.save(obj, f)`` on rank 0 only, then a barrier, so that every rank may read the
    checkpoint once this returns (a single process just saves)."""
    from .. import serialization
    if is_main_process():
        serialization.save(obj, f)
    if _comm is not None:
        barrier()

