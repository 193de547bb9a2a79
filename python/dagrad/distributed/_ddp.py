"""DistributedDataParallel: gradients averaged across ranks in buckets that are nodes of backward's graph."""
import contextlib
import time
import weakref

import numpy as np

from .. import _args, _core, _dtype
from ..nn.modules.module import Module
from . import _group

# Note [Gradient buckets are graph nodes]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# DistributedDataParallel puts its parameters into buckets of about bucket_mb megabytes, in
# reverse order of model.parameters() (as PyTorch does: the last layers' gradients are final
# first), and adds one group gradient hook on all of them (Note [Group gradient hooks]). When
# backward has built the gradient graph, the hook records one node per bucket (a Python node,
# Note [Python nodes run Python while the graph runs]) whose inputs are the bucket's gradients:
# the scheduler starts it as soon as those are final, while the rest of backward still runs,
# which is the overlap of communication with computation. The node packs the gradients into its
# own flat buffer (its output, seen through a writable numpy view, as its inputs are through
# read-only ones: no copy but the pack), reduces that buffer across ranks in place (a
# reduce-scatter and an all-gather) and divides by the world size; one split node then gives each
# parameter its slice (dagrad's values own their buffers, so that is a copy, as is backward's
# write into .grad: PyTorch's gradient_as_bucket_view, .grad living inside the bucket, would
# save both and is not done). Each bucket's
# node also takes the previous bucket's node as an input, so the buckets are reduced in the same
# order on every rank, every step (Note [MPI thread level]); the reduction itself gives every
# rank the same bits (Note [Reductions give every rank the same bits]). Because the buckets are
# graph nodes, dagrad.compile records them with the rest of the step and a replay reduces them
# again.
#
# no_sync(): a backward whose forward ran under no_sync() adds its gradients into .grad locally.
# The next synchronised backward then reduces .grad plus the new gradient (the bucket node adds
# them, in the order backward's own accumulation would) and .grad becomes that average, as in
# PyTorch.


class _Bucket:
    __slots__ = ("params", "numel", "padded", "dtype", "index", "scratch")

    def __init__(self, index, params, world):
        self.index, self.params = index, params
        self.numel = sum(p.numel() for p in params)
        self.padded = -(-self.numel // world) * world  # Note [Reductions give every rank the same bits]
        self.dtype = params[0].dtype
        self.scratch = None  # this rank's slice while reducing, kept from step to step


class DistributedDataParallel(Module):
    """Data-parallel training over the MPI process group: wraps ``module`` (its forward and
    ``parameters()`` are the module's), makes every rank start from rank 0's parameters and
    buffers, and averages the gradients of each backward across ranks, bucket by bucket, while
    the rest of backward still runs (Note [Gradient buckets are graph nodes]). After
    ``loss.backward()`` every rank holds the same averaged ``.grad``, bit for bit, so an optimizer
    step keeps every rank's parameters identical.

    Parameters
    ----------
    module : nn.Module
        The model; every rank builds the same one.
    bucket_mb : float
        Target size of a gradient bucket in MiB (PyTorch's bucket_cap_mb). Smaller buckets
        start reducing earlier; larger ones make fewer MPI calls.
    broadcast_buffers : bool
        Copy rank 0's buffers (such as BatchNorm's running statistics) to every rank at each
        forward, as PyTorch does.

    ``comm_seconds`` and ``comm_calls`` count the time the bucket reductions spent in MPI and
    how many there were, since construction (for measuring overlap; reset them freely).

    Every parameter that requires grad must get a gradient in every synchronised backward on
    every rank (PyTorch's default, find_unused_parameters=False); one that gets none is a
    RuntimeError, which aborts the job (Note [A failing rank aborts the job]) rather than leave
    the ranks' collectives mismatched.

    >>> import dagrad, dagrad.distributed as dist  # doctest: +SKIP
    >>> dist.init()  # doctest: +SKIP
    >>> model = dist.DistributedDataParallel(dagrad.nn.Linear(4, 2))  # doctest: +SKIP
    >>> model(dagrad.ones(3, 4)).sum().backward()  # gradients averaged over the ranks  # doctest: +SKIP
    """

    def __init__(self, module, bucket_mb=25.0, broadcast_buffers=True):
        super().__init__()
        if not isinstance(module, Module):
            raise TypeError(f"DistributedDataParallel(): argument 'module' must be an nn.Module, "
                            f"not {_args.type_name(module)}")
        bucket_mb = _args.number(bucket_mb, "DistributedDataParallel", "bucket_mb")
        if not bucket_mb > 0:
            raise ValueError(f"DistributedDataParallel(): argument 'bucket_mb' must be positive, got {bucket_mb}")
        self.broadcast_buffers = _args.boolean(broadcast_buffers, "DistributedDataParallel", "broadcast_buffers")
        self._comm = _group._require("DistributedDataParallel")
        self.module = module
        self.bucket_mb = float(bucket_mb)
        _group.broadcast_parameters(module)

        named = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
        self._names = {id(p): n for n, p in named}
        cap = self.bucket_mb * (1 << 20)
        buckets, cur, size = [], [], 0
        for _, p in reversed(named):
            nbytes = p.numel() * np.dtype(_dtype._NUMPY_OF[p.dtype]).itemsize
            if cur and (p.dtype != cur[0].dtype or size + nbytes > cap):
                buckets.append(_Bucket(len(buckets), cur, self._comm.Get_size()))
                cur, size = [], 0
            cur.append(p)
            size += nbytes
        if cur:
            buckets.append(_Bucket(len(buckets), cur, self._comm.Get_size()))
        self._buckets = buckets
        self._order = [p for b in buckets for p in b.params]
        self._require_sync = True        # no_sync() turns it off
        self._sync_next_backward = True  # the flag as the last forward saw it
        self._unsynced = False           # .grad holds local gradients not yet reduced
        self.comm_seconds = 0.0
        self.comm_calls = 0
        self._hook_handle = None
        # The buffers broadcast at each forward, found once (as PyTorch does).
        self._buffers_to_sync = [b for _, b in module.named_buffers() if b is not None]
        if self._order:
            ref = weakref.ref(self)

            def hook(grads):
                ddp = ref()
                return None if ddp is None else ddp._on_gradients(grads)

            self._hook_handle = _core._add_group_grad_hook(self._order, hook)
            weakref.finalize(self, _core._remove_group_grad_hook, self._hook_handle)

    # ------------------------------------------------------------------ the wrapped module

    def forward(self, *args, **kwargs):
        """The wrapped module's forward; notes whether the backward of its result reduces
        gradients (outside ``no_sync()``) and broadcasts rank 0's buffers first."""
        self._sync_next_backward = self._require_sync
        if self.broadcast_buffers:
            buffers = self._buffers_to_sync
            if buffers:
                if _core.is_tracing():
                    raise RuntimeError(
                        "DistributedDataParallel: broadcast_buffers=True copies rank 0's buffers at every forward, "
                        "which a dagrad.compile trace cannot replay; pass broadcast_buffers=False (and keep the "
                        "buffers in step another way) to compile a step of a model with buffers")
                _group.broadcast_parameters(buffers)
        return self.module(*args, **kwargs)

    @contextlib.contextmanager
    def no_sync(self):
        """Inside this block, a forward's backward only adds its gradients into ``.grad`` on this
        rank (no communication); the first backward of a forward outside it averages everything
        accumulated. Gradient accumulation over micro-batches, as PyTorch's no_sync.

        >>> with ddp.no_sync():  # doctest: +SKIP
        ...     ddp(x1).sum().backward()      # local
        >>> ddp(x2).sum().backward()          # averages the sum of both  # doctest: +SKIP
        """
        prev = self._require_sync
        self._require_sync = False
        try:
            yield
        finally:
            self._require_sync = prev

    @property
    def buckets(self):
        """The parameters' names, bucket by bucket, in the order they are reduced."""
        return [[self._names[id(p)] for p in b.params] for b in self._buckets]

    # ------------------------------------------------------------------ the buckets

    def _on_gradients(self, grads):
        # On the thread calling backward, under its graph lock, with the GIL (Note [Group
        # gradient hooks]); builds the bucket nodes (Note [Gradient buckets are graph nodes]).
        if not self._sync_next_backward:
            self._unsynced = True
            return None
        if _group._comm is not self._comm:
            raise RuntimeError("DistributedDataParallel: the process group this model was wrapped in has been "
                               "finalized (dagrad.distributed.finalize()); wrap the model again after init()")
        missing = [self._names[id(p)] for p, g in zip(self._order, grads) if g is None]
        if missing:
            raise RuntimeError(
                "DistributedDataParallel: parameters " + ", ".join(repr(m) for m in missing[:5])
                + (" and others" if len(missing) > 5 else "") + " got no gradient in this backward; every "
                "parameter that requires grad must take part in the loss on every rank (freeze the unused ones "
                "with requires_grad_(False) before wrapping the model)")
        out = []
        prev = None
        at = 0
        for b in self._buckets:
            gs = grads[at:at + len(b.params)]
            at += len(b.params)
            olds = [p.grad if self._unsynced else None for p in b.params]
            # The previous bucket's node comes first: the scheduler's walk then emits each bucket
            # right after its own gradients, so even a serial run reduces it as soon as they are final.
            inputs = ([prev] if prev is not None else []) + list(gs) + [o for o in olds if o is not None]
            has_old = tuple(o is not None for o in olds)
            sizes = tuple(p.numel() for p in b.params)
            node = _core._py_node(f"allreduce_bucket{b.index}", inputs, [b.padded], b.dtype,
                                  _BucketReduce(self, b, has_old, prev is not None), float(max(b.numel, 1) * 8))
            pieces = _core.split(node, list(sizes) + [b.padded - b.numel], 0)  # one node per parameter
            out.extend(piece.reshape(tuple(p.shape)) for piece, p in zip(pieces, b.params))
            prev = node
        if self._unsynced:
            # .grad becomes the average of (old .grad + new): clear it so backward sets it.
            for p in self._order:
                p.grad = None
            self._unsynced = False
        return out


class _BucketReduce:
    """The body of a bucket's node: pack, reduce in place, count the time spent in MPI."""

    __slots__ = ("ddp", "sizes", "has_old", "has_prev", "bucket")

    def __init__(self, ddp, bucket, has_old, has_prev):
        self.ddp, self.bucket, self.has_old, self.has_prev = weakref.proxy(ddp), bucket, has_old, has_prev
        self.sizes = tuple(p.numel() for p in bucket.params)

    def __call__(self, out, *ins):
        if self.has_prev:
            ins = ins[1:]  # the previous bucket's node: an input for the order only
        n = len(self.sizes)
        olds = iter(ins[n:])
        off = 0
        for a, size, old in zip(ins[:n], self.sizes, self.has_old):
            dst = out[off:off + size]
            if old:
                np.copyto(dst, next(olds).reshape(-1))
                dst += a.reshape(-1)  # old + new, as backward's in-place accumulation adds
            else:
                np.copyto(dst, a.reshape(-1))
            off += size
        out[off:] = 0  # the padding to a multiple of the world size
        t0 = time.perf_counter()
        b = self.bucket
        if b.scratch is None:
            b.scratch = np.empty(b.padded // self.ddp._comm.Get_size(), dtype=out.dtype)
        _group._reduce_inplace(out, "mean", self.ddp._comm, b.scratch)
        self.ddp.comm_seconds += time.perf_counter() - t0
        self.ddp.comm_calls += 1
