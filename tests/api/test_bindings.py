"""The direct CPython paths of the operators and unary functions (Note [Fast calls]) behave like
the pybind11 definitions they shadow: same results, dtype rules and errors."""
import numpy as np
import pytest

import dagrad


def test_operators_in_both_orders_with_python_and_numpy_operands():
    x = dagrad.tensor(np.array([1.0, 2.0, 4.0], dtype=np.float32))
    a = np.array([1.0, 2.0, 4.0], dtype=np.float32)
    cases = [
        (x + 2, a + 2), (2 + x, 2 + a), (x - 1.5, a - 1.5), (1.5 - x, 1.5 - a),
        (x * 3, a * 3), (3 * x, 3 * a), (x / 4, a / 4), (4 / x, 4 / a), (-x, -a),
        (x * x, a * a), (x + np.float32(1), a + 1), (x * [1.0, 2.0, 3.0], a * [1.0, 2.0, 3.0]),
        (x.__mul__(x), a * a), (x.__radd__(1.0), a + 1.0),
    ]
    for got, want in cases:
        assert got.dtype == dagrad.float32  # weak Python scalars keep the tensor's dtype
        np.testing.assert_allclose(got.numpy(), want.astype(np.float32), rtol=1e-7)


def test_integer_tensors_follow_the_promotion_rules():
    i = dagrad.tensor(np.array([1, 2, 3]))
    assert (i + 1).dtype == dagrad.int64
    assert (i * 1.5).dtype == dagrad.float32
    assert (i / 2).dtype == dagrad.float32
    np.testing.assert_array_equal((i / 2).numpy(), np.array([0.5, 1.0, 1.5], dtype=np.float32))


def test_unary_functions_take_the_fast_path_and_reject_non_tensors():
    x = dagrad.tensor(np.array([-1.0, 0.5]))
    np.testing.assert_allclose(dagrad.relu(x).numpy(), [0.0, 0.5])
    np.testing.assert_allclose(dagrad.exp(x).numpy(), np.exp([-1.0, 0.5]), rtol=1e-15)
    np.testing.assert_allclose(dagrad.tanh(x).numpy(), np.tanh([-1.0, 0.5]), rtol=1e-15)
    # The message names the function and the argument (Note [Argument errors]).
    with pytest.raises(TypeError, match=r"relu\(\): argument 'input' .*must be Tensor, not float"):
        dagrad.relu(3.0)
    with pytest.raises(TypeError, match=r"sigmoid\(\): argument 'input' .*must be Tensor, not list"):
        dagrad._core.sigmoid([1.0])


def test_operator_errors_keep_their_types():
    x = dagrad.tensor(np.ones((2, 3)))
    with pytest.raises(ValueError, match="cannot be broadcast"):
        x + dagrad.tensor(np.ones((4,)))
    with pytest.raises(TypeError):
        x * "a"
    with pytest.raises(TypeError, match="not supported for bool"):
        -dagrad.tensor(np.ones(2, dtype=bool))
    # the library still works after the errors
    np.testing.assert_array_equal((x * 2).numpy(), np.full((2, 3), 2.0))


def test_gradients_flow_through_the_fast_operators():
    x = dagrad.tensor(np.array([0.5, -2.0]), requires_grad=True)
    y = (dagrad.relu(x * 3 - 1) / 2 + -x).sum()
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), [3 / 2 - 1, -1.0], rtol=1e-15)


def test_unary_methods_take_the_fast_path_and_match_numpy():
    a = np.array([0.25, 1.5, 3.0])
    x = dagrad.tensor(a)
    for name, ref in [("relu", a), ("tanh", np.tanh(a)), ("sigmoid", 1 / (1 + np.exp(-a))),
                      ("exp", np.exp(a)), ("log", np.log(a)), ("sqrt", np.sqrt(a))]:
        np.testing.assert_allclose(getattr(x, name)().numpy(), ref, rtol=1e-15, err_msg=name)
    with pytest.raises(TypeError):
        dagrad.Tensor.relu(3.0)
    uninitialised = dagrad.Tensor.__new__(dagrad.Tensor)
    with pytest.raises(TypeError, match="not initialised"):
        uninitialised.tanh()
