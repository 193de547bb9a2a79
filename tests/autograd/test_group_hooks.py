"""The two core pieces data-parallel buckets are built from (Note [Group gradient hooks],
Note [Python nodes run Python while the graph runs]), checked against numpy: a hook on a group
of leaves that sees and replaces their gradients in one call, and a node whose value a Python
function computes while the graph runs (on a worker thread, inside backward's run, and again
when a compiled step replays)."""
import threading

import numpy as np
import pytest

import dagrad
from dagrad import _core


def _leaves():
    w = dagrad.tensor(np.arange(6.0).reshape(2, 3) / 7, dtype=dagrad.float64, requires_grad=True)
    b = dagrad.tensor([0.5, -1.0, 2.0], dtype=dagrad.float64, requires_grad=True)
    return w, b


X = np.array([[1.0, -2.0], [0.5, 3.0], [-1.5, 0.25], [2.0, 1.0]])


def _loss(w, b):
    return ((dagrad.tensor(X) @ w + b) ** 2).sum()


def _numpy_grads(w, b):
    y = X @ w.numpy() + b.numpy()
    return X.T @ (2 * y), (2 * y).sum(0)


def _scale_node(grads, factor, threads=None):
    """One Python node holding factor * (the grads, flattened and concatenated)."""
    def fn(out, *ins):
        if threads is not None:
            threads.append(threading.get_ident())
        at = 0
        for a in ins:
            out[at:at + a.size] = a.reshape(-1) * factor
            at += a.size
        assert not any(a.flags.writeable for a in ins) and out.flags.writeable
    n = sum(g.numel() for g in grads)
    return _core._py_node("scale", grads, [n], grads[0].dtype, fn, 1e5)


def _split(node, grads):
    out, at = [], 0
    for g in grads:
        out.append(node[at:at + g.numel()].reshape(g.shape))
        at += g.numel()
    return out


def test_group_hook_sees_every_gradient_once_and_replaces_them():
    w, b = _leaves()
    calls = []

    def hook(grads):
        calls.append([g.numpy().copy() for g in grads])
        return _split(_scale_node(grads, 10.0), grads)

    h = _core._add_group_grad_hook([w, b], hook)
    try:
        _loss(w, b).backward()
    finally:
        _core._remove_group_grad_hook(h)
    gw, gb = _numpy_grads(w, b)
    assert len(calls) == 1
    np.testing.assert_allclose(calls[0][0], gw, rtol=1e-13)
    np.testing.assert_allclose(calls[0][1], gb, rtol=1e-13)
    np.testing.assert_allclose(w.grad.numpy(), 10 * gw, rtol=1e-13)
    np.testing.assert_allclose(b.grad.numpy(), 10 * gb, rtol=1e-13)
    # Removed: the next backward accumulates the plain gradient.
    _loss(w, b).backward()
    np.testing.assert_allclose(w.grad.numpy(), 11 * gw, rtol=1e-13)


def test_group_hook_gets_none_for_a_leaf_backward_did_not_reach_and_is_skipped_when_none_is():
    w, b = _leaves()
    other = dagrad.ones(2, requires_grad=True)
    seen = []
    h = _core._add_group_grad_hook([w, other], lambda grads: seen.append([g is None for g in grads]))
    try:
        _loss(w, b).backward()
        (other * 2).sum().backward()
        (b * 3).sum().backward()  # reaches neither leaf of the group: not called
    finally:
        _core._remove_group_grad_hook(h)
    assert seen == [[False, True], [True, False]]
    assert other.grad.tolist() == [2.0, 2.0]


def test_group_hook_errors():
    w, b = _leaves()
    with pytest.raises(RuntimeError, match="not a leaf that requires grad"):
        _core._add_group_grad_hook([w, dagrad.ones(2)], lambda g: None)
    for bad, err, msg in (
            (lambda g: [g[0]], RuntimeError, "returned 1 gradients for a group of 2"),
            (lambda g: [g[0], dagrad.ones(2, dtype=dagrad.float64)], RuntimeError, r"shape \(2,\) for tensor 1"),
            (lambda g: [g[0], "x"], TypeError, "must return Tensors or None")):
        h = _core._add_group_grad_hook([w, b], bad)
        try:
            with pytest.raises(err, match=msg):
                _loss(w, b).backward()
        finally:
            _core._remove_group_grad_hook(h)
    assert w.grad is None and b.grad is None  # nothing ran


@pytest.mark.parametrize("schedule", ["serial", "parallel"])
def test_python_node_runs_inside_backward_and_its_error_is_raised(schedule):
    w, b = _leaves()
    threads = []
    h = _core._add_group_grad_hook([w, b], lambda g: _split(_scale_node(g, -1.0, threads), g))
    try:
        with dagrad.schedule(schedule):
            _loss(w, b).backward()
    finally:
        _core._remove_group_grad_hook(h)
    gw, _ = _numpy_grads(w, b)
    np.testing.assert_allclose(w.grad.numpy(), -gw, rtol=1e-13)
    assert len(threads) == 1

    def boom(out, *ins):
        raise KeyError("no such bucket")

    node = _core._py_node("boom", [dagrad.ones(2)], [2], dagrad.float32, boom, 1.0)
    with pytest.raises(RuntimeError, match="boom: KeyError: 'no such bucket'"):
        node.numpy()
    assert (dagrad.ones(2) * 2).tolist() == [2.0, 2.0]  # usable after the error


def test_python_node_is_replayed_by_a_compiled_step():
    w, b = _leaves()
    h = _core._add_group_grad_hook([w, b], lambda g: _split(_scale_node(g, 0.5), g))
    opt = dagrad.optim.SGD([w, b], lr=0.01)

    @dagrad.compile
    def step(x):
        opt.zero_grad()
        loss = ((x @ w + b) ** 2).sum()
        loss.backward()
        opt.step()
        return loss

    ref_w, ref_b = w.numpy().copy(), b.numpy().copy()
    try:
        for _ in range(4):
            step(dagrad.tensor(X))
            y = X @ ref_w + ref_b
            ref_w, ref_b = ref_w - 0.01 * 0.5 * X.T @ (2 * y), ref_b - 0.01 * 0.5 * (2 * y).sum(0)
    finally:
        _core._remove_group_grad_hook(h)
    assert step.cache_info().hits >= 2
    np.testing.assert_allclose(w.numpy(), ref_w, rtol=1e-12)
    np.testing.assert_allclose(b.numpy(), ref_b, rtol=1e-12)
