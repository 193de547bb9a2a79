"""Concurrency from Python (#12): many Python threads, each with its own graph, give the bytes
a single-threaded run gives; many threads running backward into one leaf lose no update."""
import threading

import numpy as np
import pytest

import dagrad


@pytest.fixture
def restore_threads():
    prev = dagrad.get_num_threads()
    yield
    dagrad.set_num_threads(prev)


def _model_step(seed):
    rng = np.random.default_rng(seed)
    x = dagrad.tensor(rng.standard_normal((32, 16)), requires_grad=True)
    w1 = dagrad.tensor(rng.standard_normal((16, 24)), requires_grad=True)
    w2 = dagrad.tensor(rng.standard_normal((24, 4)), requires_grad=True)
    h = (x @ w1).tanh()
    loss = ((h @ w2).sigmoid() * h.sum(dim=1, keepdim=True)).sum()
    loss.backward()
    return [loss.numpy().tobytes(), x.grad.numpy().tobytes(), w1.grad.numpy().tobytes(), w2.grad.numpy().tobytes()]


@pytest.mark.parametrize("budget", [1, 2, 4])
def test_eight_python_threads_match_a_single_threaded_run(budget, restore_threads):
    dagrad.set_num_threads(1)
    expected = [[_model_step(seed) for _ in range(3)] for seed in range(8)]
    dagrad.set_num_threads(budget)
    got = [None] * 8
    errors = []
    start = threading.Barrier(8)

    def work(seed):
        try:
            start.wait()
            got[seed] = [_model_step(seed) for _ in range(3)]
        except Exception as e:  # reported on the main thread
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(s,)) for s in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert got == expected  # byte-equal


def test_ten_threads_backward_into_one_leaf_lose_no_update(restore_threads):
    dagrad.set_num_threads(2)
    leaf = dagrad.tensor(np.zeros(1000), requires_grad=True)
    rounds = 20
    errors = []
    start = threading.Barrier(10)

    def work(k):
        try:
            start.wait()
            for _ in range(rounds):
                (leaf * float(k + 1)).sum().backward()
        except Exception as e:
            errors.append(repr(e))

    threads = [threading.Thread(target=work, args=(k,)) for k in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    # every backward adds (k+1) to each element: sum over k of (k+1) * rounds, exactly
    np.testing.assert_array_equal(leaf.grad.numpy(), np.full(1000, rounds * sum(range(1, 11)), np.float64))
