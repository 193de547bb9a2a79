"""Data-parallel training across processes and machines, on MPI (mpi4py).

Start one process per rank with ``mpiexec -n N python train.py``; each calls ``init()``,
wraps its model in ``DistributedDataParallel`` and reads its share of the data through a
``DistributedSampler``. Needs the ``distributed`` extra: ``pip install 'dagrad[distributed]'``
(mpi4py, and MPICH from PyPI) or mpi4py built against a system MPI.

>>> import dagrad.distributed as dist
>>> dist.DistributedSampler(range(4), num_replicas=2, rank=0, shuffle=False).total_size
4
"""
from ._ddp import DistributedDataParallel
from ._group import (
    all_gather, all_reduce, barrier, broadcast, broadcast_parameters, finalize, init, is_available,
    is_initialized, is_main_process, print_rank0, rank, reduce_metrics, save_rank0, world_size,
)
from ._sampler import DistributedSampler

__all__ = [
    "init", "finalize", "is_initialized", "is_available", "rank", "world_size", "is_main_process", "barrier",
    "broadcast", "broadcast_parameters", "all_reduce", "all_gather", "reduce_metrics", "print_rank0",
    "save_rank0", "DistributedDataParallel", "DistributedSampler",
]
