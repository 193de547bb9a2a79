"""Datasets, DataLoader and random_split, with PyTorch's torch.utils.data as the specification.

Every sample carries its own index in the label column, so a batch tells exactly which
samples it holds and coverage can be checked without trusting the loader's bookkeeping.
"""
import numpy as np
import pytest

import dagrad
from dagrad.data import DataLoader, Dataset, Subset, TensorDataset, default_collate, random_split


def indexed_dataset(n=10, features=3, x_dtype=np.float64):
    """x[i] = i * 10 + [0, 1, 2, ...] and y[i] = i: a sample knows its index twice over."""
    x = (np.arange(n)[:, None] * 10 + np.arange(features)[None, :]).astype(x_dtype)
    y = np.arange(n, dtype=np.int64)
    return x, y


def epoch_indices(loader):
    """The label column of every batch of one epoch (checking x agrees with y)."""
    out = []
    for xb, yb in loader:
        ys = np.asarray(yb.numpy())
        xs = np.asarray(xb.numpy())
        np.testing.assert_array_equal(xs[:, 0], ys * 10, err_msg="x and y of a batch disagree")
        out.append(ys.tolist())
    return out


# ----------------------------------------------------------------------------- TensorDataset

def test_tensor_dataset_items_shapes_and_dtypes():
    x, y = indexed_dataset(6)
    ds = TensorDataset(dagrad.tensor(x), dagrad.tensor(y))
    assert len(ds) == 6
    xi, yi = ds[4]
    assert xi.shape == (3,) and xi.dtype == dagrad.float64
    assert yi.shape == () and yi.dtype == dagrad.int64
    np.testing.assert_array_equal(xi.numpy(), x[4])
    assert yi.item() == 4


def test_tensor_dataset_accepts_numpy_arrays():
    x, y = indexed_dataset(5, x_dtype=np.float32)
    ds = TensorDataset(x, y)
    xi, yi = ds[2]
    assert xi.dtype == dagrad.float32 and yi.dtype == dagrad.int64
    np.testing.assert_array_equal(xi.numpy(), x[2])


def test_tensor_dataset_size_mismatch_raises():
    with pytest.raises(ValueError, match="Size mismatch"):
        TensorDataset(np.zeros((5, 2)), np.zeros(4))


def test_tensor_dataset_needs_a_tensor():
    with pytest.raises(ValueError):
        TensorDataset()


# ----------------------------------------------------------------------------- DataLoader

@pytest.mark.parametrize("n,batch_size", [(10, 1), (10, 3), (10, 5), (10, 10), (10, 16), (17, 4)])
@pytest.mark.parametrize("shuffle", [False, True])
def test_every_sample_exactly_once_per_epoch(n, batch_size, shuffle):
    x, y = indexed_dataset(n)
    loader = DataLoader(TensorDataset(dagrad.tensor(x), dagrad.tensor(y)), batch_size=batch_size,
                        shuffle=shuffle, seed=3)
    expected_batches = -(-n // batch_size)
    assert len(loader) == expected_batches
    for _ in range(3):
        batches = epoch_indices(loader)
        assert len(batches) == expected_batches
        sizes = [len(b) for b in batches]
        assert sizes == [batch_size] * (n // batch_size) + ([n % batch_size] if n % batch_size else [])
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(n))
        if not shuffle:
            assert flat == list(range(n))


@pytest.mark.parametrize("x_dtype,dg_dtype", [(np.float64, dagrad.float64), (np.float32, dagrad.float32)])
def test_batch_shapes_and_dtypes(x_dtype, dg_dtype):
    x, y = indexed_dataset(7, features=4, x_dtype=x_dtype)
    mask = (np.arange(7) % 2 == 0)
    ds = TensorDataset(dagrad.tensor(x), dagrad.tensor(y), dagrad.tensor(mask))
    batches = list(DataLoader(ds, batch_size=3))
    assert len(batches) == 3
    for b, rows in zip(batches, ([0, 1, 2], [3, 4, 5], [6])):
        xb, yb, mb = b
        assert xb.shape == (len(rows), 4) and xb.dtype == dg_dtype
        assert yb.shape == (len(rows),) and yb.dtype == dagrad.int64
        assert mb.shape == (len(rows),) and mb.dtype == dagrad.bool
        np.testing.assert_array_equal(xb.numpy(), x[rows])
        np.testing.assert_array_equal(yb.numpy(), y[rows])
        np.testing.assert_array_equal(mb.numpy(), mask[rows])


@pytest.mark.parametrize("shuffle", [False, True])
def test_drop_last(shuffle):
    x, y = indexed_dataset(10)
    ds = TensorDataset(x, y)
    loader = DataLoader(ds, batch_size=4, shuffle=shuffle, drop_last=True, seed=1)
    assert len(loader) == 2
    for _ in range(2):
        batches = epoch_indices(loader)
        assert [len(b) for b in batches] == [4, 4]
        flat = [i for b in batches for i in b]
        assert len(set(flat)) == 8 and set(flat) <= set(range(10))
    # A batch size that divides the dataset drops nothing.
    assert [len(b) for b in epoch_indices(DataLoader(ds, batch_size=5, drop_last=True))] == [5, 5]
    # A batch size above the dataset size with drop_last leaves no batch at all.
    big = DataLoader(ds, batch_size=11, drop_last=True)
    assert len(big) == 0 and list(big) == []


def test_drop_last_matches_torch_lengths():
    torch = pytest.importorskip("torch")
    for n, bs in [(10, 3), (9, 3), (1, 2), (17, 5)]:
        for drop in (False, True):
            ours = DataLoader(TensorDataset(np.zeros(n)), batch_size=bs, drop_last=drop)
            theirs = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.zeros(n)),
                                                 batch_size=bs, drop_last=drop)
            assert len(ours) == len(theirs), (n, bs, drop)
            assert [len(b[0]) for b in ours] == [len(b[0]) for b in theirs], (n, bs, drop)


def test_shuffle_reproducible_with_seed_and_different_across_epochs():
    x, y = indexed_dataset(20)
    ds = TensorDataset(x, y)
    a = DataLoader(ds, batch_size=6, shuffle=True, seed=42)
    b = DataLoader(ds, batch_size=6, shuffle=True, seed=42)
    epochs_a = [epoch_indices(a) for _ in range(4)]
    epochs_b = [epoch_indices(b) for _ in range(4)]
    assert epochs_a == epochs_b, "same seed, different order"
    orders = [tuple(i for batch in e for i in batch) for e in epochs_a]
    assert len(set(orders)) == 4, "epochs repeated the same order"
    assert all(o != tuple(range(20)) for o in orders), "shuffle left the data in order"
    c = DataLoader(ds, batch_size=6, shuffle=True, seed=43)
    assert epoch_indices(c) != epochs_a[0], "a different seed gave the same order"


def test_shuffle_without_seed_follows_manual_seed():
    x, y = indexed_dataset(15)
    ds = TensorDataset(x, y)
    dagrad.manual_seed(7)
    first = [epoch_indices(DataLoader(ds, batch_size=4, shuffle=True)) for _ in range(2)]
    dagrad.manual_seed(7)
    again = [epoch_indices(DataLoader(ds, batch_size=4, shuffle=True)) for _ in range(2)]
    assert first == again
    assert first[0] != first[1]


@pytest.mark.parametrize("bad", [0, -1, None])
def test_invalid_batch_size_raises(bad):
    with pytest.raises(ValueError):
        DataLoader(TensorDataset(np.zeros(3)), batch_size=bad)


# ----------------------------------------------------------------------------- custom datasets

class SquaresDataset(Dataset):
    """A map-style dataset that returns (features as a dagrad tensor, int label, float weight)."""

    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        feat = dagrad.tensor(np.array([i, i * i], dtype=np.float32))
        return feat, i % 3, float(i) / 2


def test_custom_dataset_with_default_collate():
    ds = SquaresDataset(7)
    batches = list(DataLoader(ds, batch_size=3))
    assert len(batches) == 3
    seen = []
    for b in batches:
        assert isinstance(b, (tuple, list)) and len(b) == 3
        feat, label, weight = b
        k = feat.shape[0]
        assert feat.shape == (k, 2) and feat.dtype == dagrad.float32
        # PyTorch's default_collate: python ints become int64, python floats float64.
        assert label.shape == (k,) and label.dtype == dagrad.int64
        assert weight.shape == (k,) and weight.dtype == dagrad.float64
        idx = feat.numpy()[:, 0].astype(int)
        np.testing.assert_array_equal(feat.numpy()[:, 1], idx.astype(np.float32) ** 2)
        np.testing.assert_array_equal(label.numpy(), idx % 3)
        np.testing.assert_array_equal(weight.numpy(), idx / 2)
        seen.extend(idx.tolist())
    assert seen == list(range(7))


def test_custom_dataset_shuffled_covers_every_sample():
    ds = SquaresDataset(11)
    loader = DataLoader(ds, batch_size=4, shuffle=True, seed=0)
    for _ in range(2):
        idx = [int(v) for feat, _, _ in loader for v in feat.numpy()[:, 0]]
        assert sorted(idx) == list(range(11))


class NumpyDataset(Dataset):
    def __len__(self):
        return 5

    def __getitem__(self, i):
        return np.full((2, 2), i, dtype=np.float64), np.int64(i)


def test_custom_dataset_of_numpy_samples():
    (xb, yb), = list(DataLoader(NumpyDataset(), batch_size=5))
    assert xb.shape == (5, 2, 2) and xb.dtype == dagrad.float64
    assert yb.shape == (5,) and yb.dtype == dagrad.int64
    np.testing.assert_array_equal(xb.numpy()[:, 0, 0], np.arange(5))


class DictDataset(Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return {"x": dagrad.tensor(np.array([i, -i], dtype=np.float64)), "y": i}


def test_default_collate_of_dict_samples_like_torch():
    # PyTorch's default_collate collates a dict per key.
    batch = default_collate([DictDataset()[i] for i in range(3)])
    assert isinstance(batch, dict) and set(batch) == {"x", "y"}
    assert batch["x"].shape == (3, 2) and batch["x"].dtype == dagrad.float64
    assert batch["y"].dtype == dagrad.int64
    np.testing.assert_array_equal(batch["y"].numpy(), [0, 1, 2])


def test_custom_collate_fn():
    ds = SquaresDataset(5)
    loader = DataLoader(ds, batch_size=2, collate_fn=lambda samples: [s[1] for s in samples])
    assert list(loader) == [[0, 1], [2, 0], [1]]


# ----------------------------------------------------------------------------- random_split

def subset_indices(sub):
    # Each item is (x, y) with y the original index.
    return [int(sub[i][1].item()) for i in range(len(sub))]


@pytest.mark.parametrize("lengths", [[6, 4], [3, 3, 4], [10, 0], [1, 8, 1]])
def test_random_split_lengths_and_disjointness(lengths):
    x, y = indexed_dataset(10)
    ds = TensorDataset(x, y)
    parts = random_split(ds, lengths, seed=0)
    assert [len(p) for p in parts] == lengths
    assert all(isinstance(p, Subset) for p in parts)
    got = [subset_indices(p) for p in parts]
    flat = [i for g in got for i in g]
    assert sorted(flat) == list(range(10)), "parts overlap or miss samples"


def test_random_split_fractions_match_torch_lengths():
    torch = pytest.importorskip("torch")
    for n, fracs in [(10, [0.7, 0.3]), (11, [0.5, 0.5]), (10, [0.34, 0.33, 0.33]), (7, [0.25, 0.25, 0.5])]:
        ds = TensorDataset(*indexed_dataset(n))
        ours = [len(p) for p in random_split(ds, fracs, seed=0)]
        theirs = [len(p) for p in torch.utils.data.random_split(range(n), fracs)]
        assert ours == theirs, (n, fracs)
        flat = [i for p in random_split(ds, fracs, seed=1) for i in subset_indices(p)]
        assert sorted(flat) == list(range(n))


def test_random_split_reproducible_with_seed():
    ds = TensorDataset(*indexed_dataset(20))
    a = [subset_indices(p) for p in random_split(ds, [12, 8], seed=5)]
    b = [subset_indices(p) for p in random_split(ds, [12, 8], seed=5)]
    c = [subset_indices(p) for p in random_split(ds, [12, 8], seed=6)]
    assert a == b
    assert a != c
    assert a[0] != list(range(12)), "random_split did not shuffle"


def test_random_split_wrong_total_raises():
    ds = TensorDataset(*indexed_dataset(10))
    with pytest.raises(ValueError):
        random_split(ds, [5, 4], seed=0)
    with pytest.raises(ValueError):
        random_split(ds, [6, 6], seed=0)


def test_subset_in_a_dataloader():
    ds = TensorDataset(*indexed_dataset(12))
    train, test = random_split(ds, [9, 3], seed=2)
    train_idx = subset_indices(train)
    batches = epoch_indices(DataLoader(train, batch_size=4, shuffle=True, seed=0))
    assert [len(b) for b in batches] == [4, 4, 1]
    assert sorted(i for b in batches for i in b) == sorted(train_idx)
