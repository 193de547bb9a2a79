"""Tensor.__getitem__ against numpy: shapes, values and gradients for keys that mix None,
Ellipsis, ints, slices, integer arrays, boolean arrays and bare bools (issue #15, item 8).

numpy is the reference for the placement of advanced-index dims (see Note [Where advanced
indexing puts its dims] in dagrad/_indexing.py). The gradient reference is an independent
scatter-add: index an array of flat positions with the same key, then np.bincount the
upstream gradient into those positions.
"""
import numpy as np
import pytest

import dagrad


def _grad_reference(shape, key, g):
    pos = np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)[key]
    return np.bincount(pos.ravel(), weights=g.ravel(), minlength=int(np.prod(shape))).reshape(shape)


def _check(shape, key, dkey=None, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.standard_normal(shape)
    ref = a[key]
    x = dagrad.tensor(a, requires_grad=True)
    y = x[key if dkey is None else dkey]
    assert y.shape == ref.shape, (shape, key)
    np.testing.assert_array_equal(y.numpy(), ref)
    g = rng.standard_normal(ref.shape)
    (y * dagrad.tensor(g)).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), _grad_reference(shape, key, g), rtol=1e-12, atol=1e-12)


def test_issue_reproducer_none_before_separated_arrays():
    a = np.arange(24.).reshape(2, 3, 4)
    key = (None, [0, 1], slice(None), [1, 2])
    assert dagrad.tensor(a)[key].shape == a[key].shape == (2, 1, 3)
    _check((2, 3, 4), key)


A = np.array([0, 2])
B = np.array([[1], [0]])
M34 = np.array([[True, False, True, False], [False, False, True, True], [True, True, False, False]])

KEYS = [  # (shape, key): each one a placement rule numpy applies
    ((2, 3, 4), (None, [0, 1], slice(None), [1, 2])),     # separated by a slice: B first
    ((2, 3, 4), ([0, 1], None, [1, 2])),                  # separated by None: B first
    ((2, 3, 4), ([0, 1], [1, 2], None)),                  # adjacent, None after
    ((2, 3, 4), (None, [0, 1], [1, 2])),                  # adjacent, None before
    ((2, 3, 4), (slice(None), None, A, [1, 3])),          # adjacent after a None
    ((2, 3, 4), (slice(None), A, None, [1, 3])),          # None between: B first
    ((2, 3, 4), (0, None, [1, 2])),                       # int counts as advanced
    ((2, 3, 4), (0, slice(None), [1, 2])),                # int and array separated by a slice
    ((2, 3, 4), ([1], slice(None), 0)),
    ((2, 3, 4), (slice(None), [0], Ellipsis, [0])),       # an Ellipsis of no dims still separates
    ((2, 3, 4), (Ellipsis, [0], [0])),
    ((2, 3, 4), ([0, 1], Ellipsis, None)),
    ((2, 3, 4), (None, Ellipsis, None, [1, 3])),
    ((2, 3, 4), (B, slice(None), A)),                     # broadcast (2, 2) goes first
    ((2, 3, 4), (slice(1, None), B, A)),                  # broadcast (2, 2) in place
    ((2, 3, 4), (None, slice(None), M34)),                # a 2-d mask covers two dims
    ((2, 3, 4), (M34[0:2, 0:3], None, [1, 2, 3])),
    ((2, 3, 4), (np.array([True, False]), slice(None), [0, 3])),
    ((2, 3, 4), (True,)),                                 # a bare bool is a 0-d boolean array
    ((2, 3, 4), (False, Ellipsis)),
    ((2, 3, 4), (0, slice(None), True)),
    ((2, 3, 4), (True, 0, None)),
    ((2, 3, 4), (None,)),
    ((2, 3, 4), (Ellipsis, None)),
    ((2, 3, 4), (None, 1, None, slice(1, 3), None, -1)),  # basic only: ints drop their dims
    ((2, 3, 4), (slice(None, None, 2), None, slice(3, 0, 1))),
    ((2, 3, 4), (np.array(1), None, [0, 2])),            # a 0-d array beside an array
    ((2, 3, 4), ([], slice(None), [])),
    ((3,), ([[0, 1], [2, 2]], None)),
    ((), (None, Ellipsis, None)),
    ((), (True,)),
]


@pytest.mark.parametrize("shape,key", KEYS, ids=[str(i) for i in range(len(KEYS))])
def test_key_matches_numpy(shape, key):
    _check(shape, key)


@pytest.mark.parametrize("shape,key", [k for k in KEYS if any(isinstance(i, np.ndarray) for i in k[1])],
                         ids=str)
def test_tensor_indices_match_numpy(shape, key):
    dkey = tuple(dagrad.tensor(k) if isinstance(k, np.ndarray) else k for k in key)
    _check(shape, key, dkey)


def _random_key(rng, shape):
    """A random key of None, Ellipsis, ints, slices, int arrays, lists, masks and bare bools."""
    nd, key, d = len(shape), [], 0
    ellipsis = rng.random() < 0.3
    while True:
        r = rng.random()
        if r < 0.12:
            key.append(None)
            continue
        if ellipsis and r < 0.25:
            key.append(Ellipsis)
            ellipsis = False
            d = max(d, nd - int(rng.integers(0, nd - d + 1)))
            continue
        if d >= nd or r < 0.2:
            return tuple(key)
        s, c = shape[d], int(rng.integers(0, 6))
        if c == 0:
            key.append(int(rng.integers(-s, s)))
            d += 1
        elif c == 1:
            key.append(slice(int(rng.integers(-s - 1, s + 2)), int(rng.integers(-s - 1, s + 2)),
                             int(rng.integers(1, 4))))
            d += 1
        elif c == 2:
            key.append(rng.integers(-s, s, size=tuple(rng.integers(1, 3, size=int(rng.integers(0, 3))))))
            d += 1
        elif c == 3:
            m = int(rng.integers(1, min(2, nd - d) + 1))
            key.append(rng.random(shape[d:d + m]) < 0.5)
            d += m
        elif c == 4:
            key.append([int(v) for v in rng.integers(0, s, size=int(rng.integers(1, 3)))])
            d += 1
        else:
            key.append(bool(rng.random() < 0.7))


@pytest.mark.parametrize("seed", range(8))
def test_random_keys_match_numpy(seed):
    rng = np.random.default_rng(1000 + seed)
    checked = 0
    for _ in range(150):
        shape = tuple(int(v) for v in rng.integers(1, 4, size=int(rng.integers(0, 5))))
        key = _random_key(rng, shape)
        try:
            np.zeros(shape)[key]
        except IndexError:  # broadcast mismatch between index arrays: dagrad must agree
            with pytest.raises(IndexError):
                dagrad.zeros(*shape)[key]
            continue
        _check(shape, key, seed=seed)
        checked += 1
    assert checked > 100


@pytest.mark.parametrize("key", [
    (5,), (slice(None), -5), ([0, 3],), (np.array([0, 1]), np.array([0, 1, 2])),
    (np.array([True, False]),), (0, 0, 0, 0), (Ellipsis, Ellipsis), (1.5,), ("a",),
    (np.array([0.5]),),
], ids=str)
def test_bad_keys_raise_index_error_like_numpy(key):
    with pytest.raises(IndexError):
        np.zeros((3, 4, 2))[key]
    with pytest.raises(IndexError, match="getitem|index"):
        dagrad.zeros(3, 4, 2)[key]
