"""Datasets and a DataLoader that yields batches as dagrad tensors.

>>> import dagrad, numpy as np
>>> ds = dagrad.data.TensorDataset(np.arange(10.0).reshape(5, 2), np.arange(5))
>>> [tuple(x.shape) for x, y in dagrad.data.DataLoader(ds, batch_size=2)]
[(2, 2), (2, 2), (1, 2)]
"""
import numpy as np

from . import _args, _creation
from ._core import Tensor


class Dataset:
    """An indexable collection of samples: subclasses define __getitem__ and __len__."""

    def __getitem__(self, index):
        raise NotImplementedError

    def __len__(self):
        raise NotImplementedError


def _as_array(t):
    return t.numpy() if isinstance(t, Tensor) else np.asarray(t)


class TensorDataset(Dataset):
    """Samples are the i-th rows of each given tensor (or array); all must have the same length."""

    def __init__(self, *tensors):
        if not tensors:
            raise ValueError("TensorDataset needs at least one tensor")
        self.arrays = [_as_array(t) for t in tensors]
        self.dtypes = [t.dtype if isinstance(t, Tensor) else None for t in tensors]
        n = len(self.arrays[0])
        if any(len(a) != n for a in self.arrays):
            raise ValueError("Size mismatch between tensors: "
                             + ", ".join(str(len(a)) for a in self.arrays))

    def __getitem__(self, index):
        return tuple(_creation.tensor(a[index], dtype=d) for a, d in zip(self.arrays, self.dtypes))

    def __len__(self):
        return len(self.arrays[0])


class Subset(Dataset):
    def __init__(self, dataset, indices):
        self.dataset = dataset
        self.indices = list(indices)

    def __getitem__(self, i):
        return self.dataset[self.indices[i]]

    def __len__(self):
        return len(self.indices)


def random_split(dataset, lengths, seed=None, generator=None):
    """Splits a dataset into non-overlapping subsets of the given lengths (or fractions)."""
    n = len(dataset)
    lengths = list(lengths)
    if all(isinstance(x, float) for x in lengths) and abs(sum(lengths) - 1.0) < 1e-9:
        counts = [int(np.floor(n * f)) for f in lengths]
        for i in range(n - sum(counts)):
            counts[i % len(counts)] += 1
        lengths = counts
    if sum(lengths) != n:
        raise ValueError("Sum of input lengths does not equal the length of the input dataset!")
    rng = generator if generator is not None else (
        np.random.default_rng(seed) if seed is not None else _creation._rng)
    perm = rng.permutation(n)
    out, at = [], 0
    for k in lengths:
        out.append(Subset(dataset, perm[at:at + k].tolist()))
        at += k
    return out


def default_collate(samples):
    """Stacks samples into batch tensors, recursing into tuples, lists and dicts (as PyTorch)."""
    first = samples[0]
    if isinstance(first, dict):
        return {k: default_collate([s[k] for s in samples]) for k in first}
    if isinstance(first, (tuple, list)):
        return tuple(default_collate([s[i] for s in samples]) for i in range(len(first)))
    if isinstance(first, Tensor):
        return _creation.tensor(np.stack([s.numpy() for s in samples]), dtype=first.dtype)
    return _creation.tensor(np.stack([np.asarray(s) for s in samples]))


class DataLoader:
    """Iterates over a dataset in batches.

    Parameters
    ----------
    dataset : Dataset
    batch_size : int
    shuffle : bool
        Reshuffle at every epoch, from ``seed`` (or dagrad's generator, which
        ``dagrad.manual_seed`` resets).
    drop_last : bool
        Drop the last incomplete batch.
    sampler : iterable of int, optional
        The indices to read, in order, at each epoch (such as
        ``dagrad.distributed.DistributedSampler``); not together with ``shuffle``.
    """

    def __init__(self, dataset, batch_size=1, shuffle=False, drop_last=False, seed=None,
                 collate_fn=None, sampler=None):
        if batch_size is None or _args.integer(batch_size, "DataLoader", "batch_size", allow_bool=False) <= 0:
            raise ValueError(f"DataLoader(): argument 'batch_size' should be a positive integer, got {batch_size}")
        self.dataset, self.batch_size = dataset, int(batch_size)
        self.shuffle = _args.boolean(shuffle, "DataLoader", "shuffle")
        self.drop_last = _args.boolean(drop_last, "DataLoader", "drop_last")
        self.collate_fn = collate_fn or default_collate
        self._rng = np.random.default_rng(seed) if seed is not None else None
        if sampler is not None and self.shuffle:
            raise ValueError("DataLoader(): sampler option is mutually exclusive with shuffle")
        if sampler is not None and not hasattr(sampler, "__iter__"):
            raise TypeError(f"DataLoader(): argument 'sampler' must be an iterable of indices, "
                            f"not {_args.type_name(sampler)}")
        self.sampler = sampler

    def __len__(self):
        n = len(self.dataset) if self.sampler is None else len(self.sampler)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        if self.sampler is not None:
            order = np.fromiter(iter(self.sampler), dtype=np.int64)
            n = len(order)
        elif self.shuffle:
            n = len(self.dataset)
            order = (self._rng or _creation._rng).permutation(n)
        else:
            n = len(self.dataset)
            order = np.arange(n)
        for at in range(0, n, self.batch_size):
            idx = order[at:at + self.batch_size]
            if len(idx) < self.batch_size and self.drop_last:
                break
            ds = self.dataset
            if isinstance(ds, TensorDataset) and self.collate_fn is default_collate:
                # Fast path: one fancy-indexing copy per tensor instead of one per sample.
                yield tuple(_creation.tensor(a[idx], dtype=d) for a, d in zip(ds.arrays, ds.dtypes))
            else:
                yield self.collate_fn([ds[int(i)] for i in idx])
