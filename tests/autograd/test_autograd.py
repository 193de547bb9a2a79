"""Autograd semantics, with PyTorch's behaviour as the specification."""
import gc

import numpy as np
import pytest

import dagrad
from torch_helpers import check_backward, make_input, positive_input, to_np


def leaf(a, requires_grad=True):
    return dagrad.tensor(np.asarray(a, dtype=np.float64), requires_grad=requires_grad)


# ----------------------------------------------------------------------------- accumulation

def test_grad_accumulates_across_backward_calls():
    a = make_input((2, 3), seed=1)
    x = leaf(a)
    (x * x).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), 2 * a, rtol=1e-12)
    (x * 3.0).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), 2 * a + 3.0, rtol=1e-12)


def test_grad_reset_to_none_starts_fresh():
    a = make_input((3,), seed=2)
    x = leaf(a)
    (x * x).sum().backward()
    x.grad = None
    (x * 5.0).sum().backward()
    np.testing.assert_allclose(to_np(x.grad), np.full(3, 5.0), rtol=1e-12)


def test_grad_accumulates_in_place_like_pytorch():
    # PyTorch's AccumulateGrad adds into the existing .grad tensor: a handle taken after the
    # first backward sees the second one's accumulation (and .grad keeps its identity, which
    # compiled steps rely on).
    x = leaf([1.0, 2.0])
    (x * 2.0).sum().backward()
    g1 = x.grad
    first = np.array(to_np(g1), copy=True)
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(first, [2.0, 2.0])
    np.testing.assert_array_equal(to_np(x.grad), [5.0, 5.0])
    np.testing.assert_array_equal(to_np(g1), [5.0, 5.0])


def test_grad_does_not_alias_the_gradient_argument():
    # The tensor passed as `gradient` must not become .grad (a later in-place update of .grad
    # would write into the caller's tensor).
    x = leaf([1.0, 2.0])
    seed = dagrad.tensor([1.0, 1.0], dtype=dagrad.float64)
    x.backward(seed)
    with dagrad.no_grad():
        x.grad.zero_()
    np.testing.assert_array_equal(to_np(seed), [1.0, 1.0])


def test_fan_in_sums_every_use():
    a = positive_input((2, 3), seed=3)
    x = leaf(a)
    y = x * x + x * 3.0 + x.exp() + x
    y.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), 2 * a + 3 + np.exp(a) + 1, rtol=1e-12)


def test_fan_in_matches_finite_differences():
    check_backward(lambda x: (x * x.tanh() + x.sum(dim=1, keepdim=True) * x) @ x.T,
                   [make_input((3, 4), seed=4)])


def test_diamond_graph():
    a = make_input((4,), seed=5)
    x = leaf(a)
    h = x.tanh()
    y = h * 2.0 + h.exp()  # two paths from h to y
    y.sum().backward()
    dh = 2.0 + np.exp(np.tanh(a))
    np.testing.assert_allclose(to_np(x.grad), dh * (1 - np.tanh(a) ** 2), rtol=1e-12)


# ----------------------------------------------------------------------------- backward arguments

def test_backward_with_explicit_gradient():
    a = make_input((2, 3), seed=6)
    g = make_input((2, 3), seed=7)
    x = leaf(a)
    (x * x).backward(dagrad.tensor(g))
    np.testing.assert_allclose(to_np(x.grad), 2 * a * g, rtol=1e-12)


def test_backward_of_scalar_defaults_to_one():
    x = leaf(3.0)
    (x * x * x).backward()
    assert x.grad.shape == () and x.grad.item() == pytest.approx(27.0, rel=1e-14)


def test_backward_of_one_element_non_scalar():
    x = leaf([[2.0]])
    (x * 4.0).backward()
    np.testing.assert_array_equal(to_np(x.grad), [[4.0]])


def test_several_roots_in_one_backward():
    a = make_input((3,), seed=8)
    x = leaf(a)
    y1, y2 = (x * x).sum(), (x * 2.0).sum()
    dagrad.autograd.backward([y1, y2])
    np.testing.assert_allclose(to_np(x.grad), 2 * a + 2, rtol=1e-12)


# ----------------------------------------------------------------------------- retain_graph

def test_retain_graph_allows_second_backward():
    a = make_input((3,), seed=9)
    x = leaf(a)
    y = (x.exp() * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(to_np(x.grad), 2 * (np.exp(a) * (1 + a)), rtol=1e-12)


def test_second_backward_without_retain_graph_raises():
    x = leaf([1.0, 2.0])
    y = (x.exp() * x).sum()
    y.backward()
    g = to_np(x.grad)
    with pytest.raises(RuntimeError):
        y.backward()
    np.testing.assert_array_equal(to_np(x.grad), g)  # the failed call changed nothing
    # The value of y is still readable after its graph is freed.
    assert y.item() == pytest.approx(float(np.sum(np.exp([1.0, 2.0]) * [1.0, 2.0])))


def test_retain_then_free_then_raise():
    x = leaf([1.0])
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    with pytest.raises(RuntimeError):
        y.backward()
    np.testing.assert_array_equal(to_np(x.grad), [4.0])


def test_backward_through_part_of_a_freed_graph_raises():
    x = leaf([1.0, 2.0])
    h = x.exp()
    (h * 2.0).sum().backward()
    with pytest.raises(RuntimeError):
        (h * 3.0).sum().backward()


# ----------------------------------------------------------------------------- grad mode

def test_no_grad_context_manager():
    x = leaf([1.0, 2.0])
    assert dagrad.is_grad_enabled()
    with dagrad.no_grad():
        assert not dagrad.is_grad_enabled()
        y = x * 2.0
    assert dagrad.is_grad_enabled()
    assert not y.requires_grad and y.grad_fn is None and y.is_leaf
    np.testing.assert_array_equal(to_np(y), [2.0, 4.0])
    with pytest.raises(RuntimeError):
        y.sum().backward()


def test_no_grad_decorator():
    @dagrad.no_grad()
    def double(t):
        assert not dagrad.is_grad_enabled()
        return t * 2.0

    x = leaf([1.0])
    y = double(x)
    assert not y.requires_grad
    assert dagrad.is_grad_enabled()


def test_no_grad_restores_mode_after_exception():
    with pytest.raises(ZeroDivisionError):
        with dagrad.no_grad():
            1 / 0
    assert dagrad.is_grad_enabled()


def test_enable_grad_inside_no_grad_and_set_grad_enabled():
    x = leaf([1.0])
    with dagrad.no_grad():
        with dagrad.enable_grad():
            assert (x * 2.0).requires_grad
        assert not (x * 2.0).requires_grad
    with dagrad.set_grad_enabled(False):
        assert not (x * 2.0).requires_grad
    assert (x * 2.0).requires_grad


# ----------------------------------------------------------------------------- graph structure

def test_detach():
    a = make_input((3,), seed=10)
    x = leaf(a)
    y = x * x
    d = y.detach()
    assert not d.requires_grad and d.is_leaf and d.grad_fn is None
    np.testing.assert_array_equal(to_np(d), to_np(y))
    (x * d).sum().backward()  # d is a constant: d/dx = d = a**2
    np.testing.assert_allclose(to_np(x.grad), a ** 2, rtol=1e-12)


def test_requires_grad_propagation():
    a, b = leaf([1.0]), leaf([2.0], requires_grad=False)
    assert (a + b).requires_grad and (b * a).requires_grad
    assert not (b * b).requires_grad and not b.exp().requires_grad
    assert (a @ b).requires_grad and a.sum().requires_grad and a.reshape(1, 1).requires_grad


def test_is_leaf_and_grad_fn():
    x = leaf([1.0, 2.0])
    c = leaf([1.0, 2.0], requires_grad=False)
    assert x.is_leaf and x.grad_fn is None
    assert c.is_leaf and c.grad_fn is None
    y = x * 2.0
    assert not y.is_leaf and y.grad_fn is not None
    assert "mul" in y.grad_fn.name().lower()
    # A result that needs no grad is a leaf (PyTorch's rule).
    assert (c * 2.0).is_leaf and (c * 2.0).grad_fn is None


def test_non_leaf_grad_stays_none():
    x = leaf([1.0, 2.0])
    y = x * 2.0
    (y * y).sum().backward()
    assert y.grad is None
    np.testing.assert_array_equal(to_np(x.grad), [8.0, 16.0])


def test_requires_grad_setter_and_method():
    x = leaf([1.0], requires_grad=False)
    x.requires_grad_()
    assert x.requires_grad
    (x * 3.0).sum().backward()
    np.testing.assert_array_equal(to_np(x.grad), [3.0])
    x.requires_grad = False
    assert not (x * 2.0).requires_grad


def test_changing_requires_grad_of_non_leaf_raises():
    y = leaf([1.0]) * 2.0
    with pytest.raises(RuntimeError):
        y.requires_grad = False


def test_leaf_not_requiring_grad_gets_no_grad():
    x, c = leaf(make_input((2, 3), seed=11)), leaf(make_input((3, 2), seed=12), requires_grad=False)
    (x @ c).sum().backward()
    assert c.grad is None
    np.testing.assert_allclose(to_np(x.grad), np.ones((2, 2)) @ to_np(c).T, rtol=1e-12)


def test_gradient_only_built_for_needed_inputs():
    # Same graph; the run with fewer leaves requiring grad must run fewer nodes.
    a, b = make_input((8, 8), seed=13), make_input((8, 8), seed=14)

    def nodes_run(b_requires_grad):
        x, w = leaf(a), leaf(b, requires_grad=b_requires_grad)
        ((x @ w).tanh() * w.exp()).sum().backward()
        return dagrad._core.last_run_stats()["nodes"], w.grad

    both, w_grad = nodes_run(True)
    only_x, no_grad = nodes_run(False)
    assert w_grad is not None and no_grad is None
    assert only_x < both


# ----------------------------------------------------------------------------- autograd.grad

def test_autograd_grad_does_not_touch_dot_grad():
    a, b = make_input((3,), seed=15), make_input((3,), seed=16)
    x, w = leaf(a), leaf(b)
    z = (x * w).sum()
    gx, gw = dagrad.autograd.grad(z, [x, w])
    np.testing.assert_allclose(to_np(gx), b, rtol=1e-12)
    np.testing.assert_allclose(to_np(gw), a, rtol=1e-12)
    assert x.grad is None and w.grad is None


def test_autograd_grad_with_grad_outputs():
    a, g = make_input((2, 3), seed=17), make_input((2, 3), seed=18)
    x = leaf(a)
    (gx,) = dagrad.autograd.grad(x.tanh(), x, grad_outputs=dagrad.tensor(g))
    np.testing.assert_allclose(to_np(gx), g * (1 - np.tanh(a) ** 2), rtol=1e-12)


def test_autograd_grad_unused_input():
    x, u = leaf([1.0]), leaf([2.0])
    y = (x * 2.0).sum()
    with pytest.raises(RuntimeError):
        dagrad.autograd.grad(y, [x, u], retain_graph=True)
    gx, gu = dagrad.autograd.grad(y, [x, u], allow_unused=True)
    assert gu is None
    np.testing.assert_array_equal(to_np(gx), [2.0])


def test_autograd_grad_second_derivative():
    a = make_input((4,), seed=19)
    x = leaf(a)
    (g,) = dagrad.autograd.grad((x ** 3).sum(), x, create_graph=True)
    np.testing.assert_allclose(to_np(g), 3 * a ** 2, rtol=1e-12)
    (g2,) = dagrad.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(to_np(g2), 6 * a, rtol=1e-12)


def test_autograd_grad_without_retain_frees_graph():
    x = leaf([1.0, 2.0])
    y = x.exp().sum()
    dagrad.autograd.grad(y, x)
    with pytest.raises(RuntimeError):
        dagrad.autograd.grad(y, x)


# ----------------------------------------------------------------------------- in-place

def test_in_place_sgd_step_under_no_grad():
    a = make_input((3,), seed=20)
    w = leaf(a)
    (w * w).sum().backward()
    lr = 0.1
    with dagrad.no_grad():
        w -= lr * w.grad
    expected = a - lr * 2 * a
    np.testing.assert_allclose(to_np(w), expected, rtol=1e-12)
    assert w.is_leaf and w.requires_grad and w.grad_fn is None
    # The next step sees the updated value.
    w.grad = None
    (w * w).sum().backward()
    np.testing.assert_allclose(to_np(w.grad), 2 * expected, rtol=1e-12)


def test_in_place_method_forms_under_no_grad():
    w = leaf([1.0, 2.0])
    with dagrad.no_grad():
        w.mul_(3.0)
        w.add_(dagrad.tensor(np.array([1.0, 1.0])), alpha=2.0)
        w.sub_(1.0)
        w.div_(2.0)
    np.testing.assert_allclose(to_np(w), [2.0, 3.5], rtol=1e-12)
    with dagrad.no_grad():
        w.zero_()
    np.testing.assert_array_equal(to_np(w), [0.0, 0.0])


def test_in_place_on_leaf_requiring_grad_raises():
    w = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError):
        w -= 0.1
    with pytest.raises(RuntimeError):
        w.mul_(2.0)
    np.testing.assert_array_equal(to_np(w), [1.0, 2.0])  # unchanged


def test_in_place_after_use_is_not_silently_wrong():
    # y was recorded from a's old value. PyTorch computes eagerly, so y = [2, 4]. A lazy
    # graph must either give that value or refuse with a RuntimeError; never [4, 6].
    a = dagrad.tensor(np.array([1.0, 2.0]))
    y = a * 2.0
    try:
        a += 1.0
        value = to_np(y)
    except RuntimeError:
        return
    np.testing.assert_array_equal(value, [2.0, 4.0])
    np.testing.assert_array_equal(to_np(a), [2.0, 3.0])


def test_in_place_on_value_needed_by_backward_is_detected():
    # PyTorch: "one of the variables needed for gradient computation has been modified
    # by an inplace operation". Silently using the new value would give a wrong gradient.
    x = leaf([1.0, 2.0])
    c = dagrad.tensor(np.array([3.0, 4.0]))
    y = (x * c).sum()
    y.item()
    with pytest.raises(RuntimeError):
        c += 1.0
        y.backward()


def test_input_numpy_buffer_is_not_written():
    a = np.array([1.0, 2.0])
    t = dagrad.tensor(a)
    with dagrad.no_grad():
        t += 5.0
    np.testing.assert_array_equal(a, [1.0, 2.0])
    np.testing.assert_array_equal(to_np(t), [6.0, 7.0])


# ----------------------------------------------------------------------------- deep graphs

def test_million_node_chain_builds_runs_and_frees():
    """1,000,000 chained nodes: iterative topo sort, backward and teardown (no stack overflow)."""
    n = 1_000_000
    c_val = 1.0 + 1e-6

    # A chain dropped without ever running it.
    y = dagrad.tensor(1.0, dtype=dagrad.float64)
    c = dagrad.tensor(c_val, dtype=dagrad.float64)
    for _ in range(n):
        y = y * c
    del y
    gc.collect()

    # A chain run forward and backward, then dropped.
    x = dagrad.tensor(2.0, dtype=dagrad.float64, requires_grad=True)
    y = x
    for _ in range(n):
        y = y * c
    expected = 2.0 * c_val ** n  # exact power; the chain rounds once per step
    assert y.item() == pytest.approx(expected, rel=1e-8)
    y.backward()
    assert x.grad.item() == pytest.approx(c_val ** n, rel=1e-8)
    del y
    gc.collect()
    assert (x * 2.0).item() == 4.0


def test_zero_size_backward():
    x = leaf(np.zeros((0, 3)))
    w = leaf(np.ones((3, 2)))
    ((x * 2.0).sum() + (x @ w).sum()).backward()
    assert x.grad.shape == (0, 3)
    np.testing.assert_array_equal(to_np(w.grad), np.zeros((3, 2)))


def test_tensor_copies_numpy_input_and_numpy_output_is_read_only():
    a = np.array([1.0, 2.0])
    t = dagrad.tensor(a)
    a[0] = 9.0
    np.testing.assert_array_equal(to_np(t), [1.0, 2.0])
    view = t.numpy()
    with pytest.raises(ValueError):
        view[0] = 5.0
    np.testing.assert_array_equal(to_np(t), [1.0, 2.0])


def test_backward_create_graph_gives_differentiable_grad():
    a = make_input((3,), seed=21)
    x = leaf(a)
    (x ** 3).sum().backward(create_graph=True)
    g = x.grad
    assert g.requires_grad
    np.testing.assert_allclose(to_np(g), 3 * a ** 2, rtol=1e-12)
    (g2,) = dagrad.autograd.grad(g.sum(), x)
    np.testing.assert_allclose(to_np(g2), 6 * a, rtol=1e-12)
