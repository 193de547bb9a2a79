"""Every misuse raises a typed Python exception naming what went wrong, and the library
stays usable afterwards (checked by a small computation after each error)."""
import re

import numpy as np
import pytest

import dagrad
from torch_helpers import library_still_works


def raises(exc, fn, match=None):
    with pytest.raises(exc, match=match) as info:
        fn()
    library_still_works()
    return info


# ----------------------------------------------------------------------------- shapes

@pytest.mark.parametrize("op", ["add", "sub", "mul", "div"])
def test_broadcast_mismatch_names_op_and_shapes(op):
    a, b = dagrad.ones(2, 3), dagrad.ones(3, 2)
    info = raises(ValueError, lambda: getattr(dagrad, op)(a, b), match=op)
    msg = str(info.value)
    assert "(2, 3)" in msg and "(3, 2)" in msg


@pytest.mark.parametrize("sa,sb", [((2, 3), (4,)), ((4, 1, 3), (2, 2)), ((3,), (2,))], ids=str)
def test_broadcast_mismatch_operators(sa, sb):
    a, b = dagrad.ones(*sa), dagrad.ones(*sb)
    for fn, name in ((lambda: a + b, "add"), (lambda: a - b, "sub"),
                     (lambda: a * b, "mul"), (lambda: a / b, "div")):
        info = raises(ValueError, fn, match=name)
        assert str(tuple(sa)) in str(info.value) and str(tuple(sb)) in str(info.value)


def test_broadcast_error_is_raised_when_recorded_not_later():
    a = dagrad.ones(2, 3, requires_grad=True)
    h = a.exp()  # fine
    raises(ValueError, lambda: h + dagrad.ones(4))
    assert h.shape == (2, 3)


@pytest.mark.parametrize("sa,sb", [((2, 3), (2, 3)), ((3,), (4,)), ((5, 2, 3), (4, 3, 2)),
                                   ((2, 3), (4,)), ((4,), (3, 2))], ids=str)
def test_matmul_mismatch_names_both_shapes(sa, sb):
    a, b = dagrad.ones(*sa), dagrad.ones(*sb)
    info = raises(ValueError, lambda: a @ b, match="matmul")
    assert str(tuple(sa)) in str(info.value) and str(tuple(sb)) in str(info.value)


def test_matmul_of_scalar_raises():
    raises(ValueError, lambda: dagrad.ones(2) @ dagrad.tensor(1.0), match="matmul")


@pytest.mark.parametrize("shape", [(4, 2), (7,), (-1, 4), (5, -1), (-1, -1), (2, -3)], ids=str)
def test_reshape_mismatch(shape):
    x = dagrad.ones(2, 3)
    raises(ValueError, lambda: x.reshape(*shape), match="reshape")


def test_expand_mismatch():
    raises(ValueError, lambda: dagrad.ones(2).expand(3), match="expand")
    raises(ValueError, lambda: dagrad.ones(2, 3).expand(3), match="expand")


def test_dimension_errors():
    x = dagrad.ones(2, 3)
    raises(IndexError, lambda: x.sum(dim=2))
    raises(IndexError, lambda: x.mean(dim=-3))
    raises(IndexError, lambda: x.transpose(0, 2))
    raises((ValueError, IndexError), lambda: x.permute(0, 0))
    raises((ValueError, IndexError), lambda: x.permute(0))
    raises(ValueError, lambda: x.sum(dim=(0, 0)))


# ----------------------------------------------------------------------------- bad data

@pytest.mark.parametrize("data", [object(), [object()], None, "abc", [1.0, "a"], {"a": 1},
                                  [[1.0], [object()]]], ids=repr)
def test_non_numeric_input_raises_type_error(data):
    raises(TypeError, lambda: dagrad.tensor(data))


@pytest.mark.parametrize("data", [[[1.0, 2.0], [3.0]], [1.0, [2.0, 3.0]], [[[1.0]], [2.0]]],
                         ids=repr)
def test_ragged_input(data):
    raises((ValueError, TypeError), lambda: dagrad.tensor(data))


def test_bad_operand_types():
    x = dagrad.ones(2)
    raises(TypeError, lambda: x + "a")
    raises(TypeError, lambda: x * None)
    raises(TypeError, lambda: x ** dagrad.ones(2))
    raises(TypeError, lambda: x ** "2")


def test_bad_sizes_and_dtypes():
    raises(TypeError, lambda: dagrad.ones(2.5))
    raises(TypeError, lambda: dagrad.zeros("3"))
    raises(TypeError, lambda: dagrad.zeros(2, dtype="str"))
    raises(TypeError, lambda: dagrad.randn(2, dtype=dagrad.int64))


# ----------------------------------------------------------------------------- backward misuse

def test_backward_on_non_scalar_without_gradient():
    y = dagrad.ones(2, 3, requires_grad=True) * 2.0
    raises(RuntimeError, lambda: y.backward())


def test_backward_on_tensor_not_requiring_grad():
    raises(RuntimeError, lambda: dagrad.ones(1).backward())
    raises(RuntimeError, lambda: (dagrad.ones(3) * 2.0).sum().backward())


@pytest.mark.parametrize("gshape", [(3,), (2, 1), (1, 2), ()], ids=str)
def test_backward_gradient_of_wrong_shape(gshape):
    x = dagrad.ones(2, requires_grad=True)
    y = x * 2.0
    raises(RuntimeError, lambda: y.backward(dagrad.ones(*gshape)))
    # The graph was not consumed by the failed call.
    y.backward(dagrad.ones(2))
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 2.0])


def test_assigning_grad_of_wrong_shape():
    x = dagrad.ones(2, requires_grad=True)

    def assign():
        x.grad = dagrad.ones(3)
    raises(RuntimeError, assign)


@pytest.mark.parametrize("make", [
    lambda: dagrad.tensor([1, 2], requires_grad=True),
    lambda: dagrad.zeros(2, dtype=dagrad.int64, requires_grad=True),
    lambda: dagrad.tensor([True, False], requires_grad=True),
    lambda: dagrad.arange(3).requires_grad_(),
], ids=["tensor-int", "zeros-int64", "tensor-bool", "requires_grad_-int"])
def test_requires_grad_on_integer_tensor_raises(make):
    raises(RuntimeError, make, match="floating point")


def test_item_of_many_elements():
    raises((RuntimeError, ValueError), lambda: dagrad.ones(2, 3).item())
    raises(TypeError, lambda: float(dagrad.ones(2)))


# ----------------------------------------------------------------------------- sizes

@pytest.mark.parametrize("make", [
    lambda: dagrad.zeros(-1), lambda: dagrad.ones(2, -3), lambda: dagrad.zeros((3, -1)),
    lambda: dagrad.full((-2,), 1.0), lambda: dagrad.randn(-2), lambda: dagrad.rand(2, -1),
], ids=["zeros", "ones", "zeros-tuple", "full", "randn", "rand"])
def test_negative_sizes(make):
    raises(ValueError, make, match="negative")


@pytest.mark.parametrize("make", [
    lambda: dagrad.zeros(2 ** 40, 2 ** 40),
    lambda: dagrad.ones(2 ** 62, 2 ** 62),
    lambda: dagrad.ones(2 ** 31, 2 ** 31, 2 ** 31),
    lambda: dagrad.ones(1).expand(2 ** 40, 2 ** 40),
    lambda: dagrad.ones(1, 1).expand(2 ** 32, 2 ** 32).sum(),
], ids=["zeros-2^80", "ones-2^124", "ones-2^93", "expand-2^80", "expand-2^64-sum"])
def test_overflowing_sizes(make):
    def run():
        t = make()
        dagrad.realize(t)
    raises((ValueError, MemoryError), run)


def test_huge_but_representable_size_is_memory_error():
    info = raises(MemoryError, lambda: dagrad.zeros(2 ** 45))
    assert re.search(r"bytes|memory", str(info.value))
    raises(MemoryError, lambda: dagrad.ones(2 ** 44, dtype=dagrad.float64))


def test_huge_lazy_result_fails_when_realized():
    big = dagrad.ones(1).expand(2 ** 23, 2 ** 23) * 2.0  # 2**48 bytes: beyond any address space
    assert big.shape == (2 ** 23, 2 ** 23)
    raises(MemoryError, lambda: big.numpy())
    raises(MemoryError, lambda: big.sum().item())


def test_many_errors_in_a_row_leave_library_usable():
    for _ in range(50):
        with pytest.raises(ValueError):
            dagrad.ones(2, 3) + dagrad.ones(4)
        with pytest.raises(MemoryError):
            dagrad.zeros(2 ** 45)
        with pytest.raises(RuntimeError):
            dagrad.ones(1).backward()
    library_still_works()
