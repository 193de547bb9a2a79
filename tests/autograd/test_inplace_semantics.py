"""Autograd semantics of in-place ops and of backward twice (#12), every in-place op."""
import numpy as np
import pytest

import dagrad

INPLACE = {
    "add_": lambda t: t.add_(1.0),
    "sub_": lambda t: t.sub_(1.0),
    "mul_": lambda t: t.mul_(2.0),
    "div_": lambda t: t.div_(2.0),
    "zero_": lambda t: t.zero_(),
    "fill_": lambda t: t.fill_(3.0),
    "copy_": lambda t: t.copy_(dagrad.ones(3)),
    "iadd": lambda t: t.__iadd__(1.0),
    "isub": lambda t: t.__isub__(1.0),
    "imul": lambda t: t.__imul__(2.0),
    "itruediv": lambda t: t.__itruediv__(2.0),
    "setitem": lambda t: t.__setitem__(slice(0, 2), 5.0),
    "setitem_all": lambda t: t.__setitem__(Ellipsis, 5.0),
}


@pytest.mark.parametrize("op", sorted(INPLACE))
def test_inplace_on_a_tensor_backward_saved_raises(op):
    x = dagrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    a = dagrad.tensor([0.5, 1.5, 2.5])
    y = (x * a).sum()  # mul saves a for x's gradient
    a.numpy()
    INPLACE[op](a)
    with pytest.raises(RuntimeError, match="modified by an in-place operation"):
        y.backward()
    # the library still works
    z = (x * 2.0).sum()
    z.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0, 2.0])


@pytest.mark.parametrize("op", sorted(INPLACE))
def test_inplace_on_a_leaf_that_requires_grad_raises_outside_no_grad(op):
    x = dagrad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="requires grad"):
        INPLACE[op](x)
    with dagrad.no_grad():
        INPLACE[op](x)  # allowed: an optimizer-style update
    assert x.requires_grad and x.is_leaf


def test_second_backward_mentions_retain_graph_and_retained_graphs_accumulate():
    x = dagrad.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).sum()
    y.backward()
    with pytest.raises(RuntimeError, match="retain_graph=True"):
        y.backward()
    x.grad = None
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_array_equal(x.grad.numpy(), [4.0, 8.0])  # 2 * 2x


def test_setitem_matches_pytorch():
    torch = pytest.importorskip("torch")
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    cases = [
        (lambda m: (slice(1, 3),), 9.0),
        (lambda m: (0,), np.arange(6, dtype=np.float32)),
        (lambda m: (Ellipsis, 2), -1.0),
        (lambda m: (m.tensor([0, 3]),), 5.0),
        (lambda m: (m.tensor(a > 10),), 0.0),
        (lambda m: (slice(None), slice(None, None, 2)), np.ones((4, 3), np.float32)),
    ]
    for key, value in cases:
        d, t = dagrad.tensor(a), torch.tensor(a)
        kd, kt = key(dagrad), key(torch)
        d[kd if len(kd) > 1 else kd[0]] = dagrad.tensor(value) if isinstance(value, np.ndarray) else value
        t[kt if len(kt) > 1 else kt[0]] = torch.tensor(value) if isinstance(value, np.ndarray) else value
        np.testing.assert_array_equal(d.numpy(), t.numpy())
    with pytest.raises(RuntimeError, match="cannot assign"):
        x = dagrad.zeros(3)
        x[0:2] = dagrad.ones(3)
