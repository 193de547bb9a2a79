"""DistributedSampler: each rank's share of a dataset's indices, with PyTorch's padding rule."""
import math

import numpy as np

from .. import _args
from . import _group


class DistributedSampler:
    """The indices of ``dataset`` that this rank reads in an epoch, for
    ``dagrad.data.DataLoader(dataset, sampler=...)``, as PyTorch's DistributedSampler.

    Every rank gets the same number of indices: with ``drop_last=False`` the (shuffled) index
    list is padded by repeating its beginning up to a multiple of the number of replicas; with
    ``drop_last=True`` its tail is dropped instead. Rank r reads every num_replicas-th index
    starting at r, so in an epoch the ranks together read every sample once (plus the padding).
    With ``shuffle`` the order is a permutation drawn from ``seed + epoch``: call
    ``set_epoch(epoch)`` at the start of each epoch for a new order, the same on every rank.

    Parameters
    ----------
    dataset : Dataset (anything with ``len``)
    num_replicas, rank : int, optional
        Default to the process group's world size and rank.
    shuffle : bool
    seed : int
    drop_last : bool

    >>> s = dagrad.distributed.DistributedSampler(range(5), num_replicas=2, rank=1, shuffle=False)
    >>> list(s)
    [1, 3, 0]
    """

    def __init__(self, dataset, num_replicas=None, rank=None, shuffle=True, seed=0, drop_last=False):
        if num_replicas is None:
            num_replicas = _group.world_size()
        if rank is None:
            rank = _group.rank()
        num_replicas = _args.integer(num_replicas, "DistributedSampler", "num_replicas", allow_bool=False)
        rank = _args.integer(rank, "DistributedSampler", "rank", allow_bool=False)
        if num_replicas < 1:
            raise ValueError(f"DistributedSampler(): argument 'num_replicas' must be at least 1, got {num_replicas}")
        if not 0 <= rank < num_replicas:
            raise ValueError(f"DistributedSampler(): invalid rank {rank}, rank should be in the interval "
                             f"[0, {num_replicas - 1}]")
        self.dataset = dataset
        self.num_replicas, self.rank = num_replicas, rank
        self.shuffle = _args.boolean(shuffle, "DistributedSampler", "shuffle")
        self.seed = _args.integer(seed, "DistributedSampler", "seed", allow_bool=False)
        self.drop_last = _args.boolean(drop_last, "DistributedSampler", "drop_last")
        self.epoch = 0
        n = len(dataset)
        if self.drop_last and n % num_replicas != 0:
            self.num_samples = math.ceil((n - num_replicas) / num_replicas)
        else:
            self.num_samples = math.ceil(n / num_replicas)
        self.total_size = self.num_samples * num_replicas

    def set_epoch(self, epoch):
        """Sets the epoch, which with ``seed`` picks the shuffled order (the same on every rank)."""
        self.epoch = _args.integer(epoch, "set_epoch", "epoch", allow_bool=False)

    def __len__(self):
        return self.num_samples

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            indices = np.random.default_rng(self.seed + self.epoch).permutation(n).tolist()
        else:
            indices = list(range(n))
        if not self.drop_last:
            pad = self.total_size - len(indices)
            if pad <= len(indices):
                indices += indices[:pad]
            elif indices:
                indices += (indices * math.ceil(pad / len(indices)))[:pad]
        else:
            indices = indices[:self.total_size]
        return iter(indices[self.rank:self.total_size:self.num_replicas])
