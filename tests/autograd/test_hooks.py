"""Tensor.register_hook, retain_grad and grad_fn.next_functions against PyTorch."""
import numpy as np
import pytest

import dagrad

torch = pytest.importorskip("torch")


def _both(fn):
    """Runs fn(lib, tensor_ctor) for dagrad and torch; returns both results."""
    return fn(dagrad, lambda v: dagrad.tensor(v, dtype=dagrad.float64, requires_grad=True)), fn(
        torch, lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True))


def _val(t):
    return None if t is None else np.asarray(t.detach().numpy() if hasattr(t, "detach") else t.numpy())


def test_hook_replaces_the_gradient_and_sees_the_summed_one():
    def run(lib, T):
        x, w = T([1.0, -2.0, 3.0]), T([0.5, 0.5, 0.5])
        y = x * w
        seen = []
        y.register_hook(lambda g: seen.append(_val(g).copy()) or g * 3.0)
        z = (y * y).sum() + y.sum()  # y fans out: the hook sees the sum of both contributions
        z.backward()
        return seen, _val(x.grad), _val(w.grad)

    (d_seen, dx, dw), (t_seen, tx, tw) = _both(run)
    np.testing.assert_allclose(d_seen[0], t_seen[0], rtol=1e-12)
    np.testing.assert_allclose(dx, tx, rtol=1e-12)
    np.testing.assert_allclose(dw, tw, rtol=1e-12)


def test_hook_reading_a_gradient_that_needs_pending_forward_nodes():
    # Reading g in the hook runs part of the graph (b and a, still pending, which g depends on)
    # while backward is building the gradients: x must still get its gradient through them
    # (Note [Backward walks compact arrays]).
    def run(lib, T):
        x = T([1.5, -2.0])
        a = x * 2.0
        b = a * 3.0
        seen = []
        b.register_hook(lambda g: seen.append(_val(g).copy()))
        (b * b).sum().backward()
        return seen, _val(x.grad)

    (d_seen, dx), (t_seen, tx) = _both(run)
    np.testing.assert_allclose(d_seen[0], t_seen[0], rtol=1e-12)
    assert dx is not None
    np.testing.assert_allclose(dx, tx, rtol=1e-12)


def test_hooks_run_in_order_none_keeps_and_remove_stops():
    def run(lib, T):
        x = T([2.0, 3.0])
        order = []
        y = x * 2.0
        y.register_hook(lambda g: order.append("a"))  # returns None: keeps the gradient
        h = y.register_hook(lambda g: (order.append("b"), g + 1.0)[1])
        y.sum().backward()
        first = _val(x.grad).copy()
        h.remove()
        x.grad = None
        (x * 2.0).sum().backward()  # a new graph: no hooks
        y2 = x * 2.0
        y2.register_hook(lambda g: g * 0.0).remove()
        x.grad = None
        y2.sum().backward()
        return order, first, _val(x.grad)

    (do, d1, d2), (to, t1, t2) = _both(run)
    assert do == to == ["a", "b"]
    np.testing.assert_allclose(d1, t1)
    np.testing.assert_allclose(d2, t2)


def test_hook_on_a_leaf_runs_before_accumulation():
    def run(lib, T):
        x = T([1.0, 2.0])
        x.register_hook(lambda g: g * 10.0)
        (x * x).sum().backward()
        (x * 3.0).sum().backward()
        return _val(x.grad)

    d, t = _both(run)
    np.testing.assert_allclose(d, t)


def test_retain_grad_keeps_and_accumulates_a_non_leaf_gradient():
    def run(lib, T):
        x = T([1.0, -1.0, 2.0])
        y = x.exp()
        y.retain_grad()
        z = y * y
        assert y.retains_grad and not z.retains_grad
        z.sum().backward(retain_graph=True)
        first = _val(y.grad).copy()
        z.sum().backward()
        return first, _val(y.grad), z.grad is None

    (d1, d2, dnone), (t1, t2, tnone) = _both(run)
    np.testing.assert_allclose(d1, t1, rtol=1e-12)
    np.testing.assert_allclose(d2, t2, rtol=1e-12)
    assert dnone and tnone


def _names(fn):
    if fn is None:
        return None
    return (type(fn).__name__ if not hasattr(fn, "name") else fn.name(),
            tuple(_names(f) for f, _ in fn.next_functions))


def test_next_functions_follow_the_graph_as_in_pytorch():
    def run(lib, T):
        x, w = T(2.0), T(3.0)
        b = lib.tensor(1.0, dtype=x.dtype)  # no grad: (None, 0)
        z = (x * w + b).tanh()
        return _names(z.grad_fn)

    d, t = _both(run)
    # torch names its nodes TanhBackward0, AddBackward0, ...: compare without the counter.
    def strip(n):
        if n is None:
            return None
        return (n[0].rstrip("0123456789").split("::")[-1], tuple(strip(c) for c in n[1]))
    assert strip(d) == strip(t)
    assert dagrad.tensor(1.0, requires_grad=True).grad_fn is None


def test_hook_errors():
    x = dagrad.tensor([1.0, 2.0])
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        x.register_hook(lambda g: g)
    y = dagrad.tensor([1.0, 2.0], requires_grad=True) * 2.0
    y.register_hook(lambda g: dagrad.ones(3))
    with pytest.raises(RuntimeError, match="shape"):
        y.sum().backward()
    z = dagrad.tensor([1.0], requires_grad=True) * 2.0
    z.register_hook(lambda g: "no")
    with pytest.raises(TypeError, match="Tensor or None"):
        z.sum().backward()
    with pytest.raises(TypeError, match="callable"):
        z.register_hook(3)
    # the library still works after a hook raised
    w = dagrad.tensor(2.0, requires_grad=True)
    (w * w).backward()
    assert w.grad.item() == 4.0
