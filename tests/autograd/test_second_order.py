"""Second derivatives (create_graph=True) against PyTorch.

For y = f(x) and fixed random R (output gradient) and v (one per input):
g = grad(y, x, R, create_graph=True), then h = grad(sum(g * v), x). Both frameworks do the
same, and h must agree. Central differences of x -> g (float64, gradcheck's eps and
tolerances) check the double backward by itself.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dagrad  # noqa: E402
from torch_helpers import (  # noqa: E402
    DT,
    GC,
    TOL32,
    TOL64,
    assert_same,
    dg,
    gradcheck_of_projection,
    make_input,
    rng,
    th,
)

CASES = {  # name: (input shapes, fn on both frameworks)
    "tanh": ([(3, 4)], lambda x: x.tanh()),
    "tanh_0d": ([()], lambda x: x.tanh()),
    "sigmoid": ([(3, 4)], lambda x: x.sigmoid()),
    "tanh_fn_sigmoid_fn": ([(5,)], "fns"),
    "mul": ([(3, 4), (3, 4)], lambda a, b: a * b),
    "mul_broadcast": ([(3, 4), (4,)], lambda a, b: a * b),
    "mul_self": ([(3, 4)], lambda x: x * x),
    "mul_chain": ([(2, 3), (2, 3)], lambda a, b: a * b * a),
    "matmul": ([(3, 4), (4, 2)], lambda a, b: a @ b),
    "matmul_self": ([(3, 4)], lambda x: x @ x.T),
    "matmul_vec": ([(4,), (4, 3)], lambda a, b: a @ b),
    "matmul_batched": ([(2, 3, 4), (4, 2)], lambda a, b: a @ b),
    "sum_squared": ([(3, 4)], lambda x: x.sum(1) * x.sum(1)),
    "sum_times_x": ([(3, 4)], lambda x: x.sum(0, keepdim=True) * x),
    "sum_all_tanh": ([(3, 4)], lambda x: (x * x).sum().tanh()),
    "tanh_of_matmul": ([(3, 4), (4, 2)], lambda a, b: (a @ b).tanh()),
    "sigmoid_of_mul": ([(3, 4), (3, 4)], lambda a, b: (a * b).sigmoid().sum(0)),
}

_FNS = (lambda x: torch.sigmoid(torch.tanh(x)), lambda x: dagrad.sigmoid(dagrad.tanh(x)))


def _fns(case):
    fn = CASES[case][1]
    return _FNS if fn == "fns" else (fn, fn)


def _second(lib, fn, leaves, R, V):
    y = fn(*leaves)
    if lib is torch:
        gs = torch.autograd.grad(y, leaves, R, create_graph=True)
    else:
        gs = dagrad.autograd.grad(y, leaves, R, create_graph=True)
    s = None
    for g, v in zip(gs, V):
        term = (g * v).sum()
        s = term if s is None else s + term
    hs = (torch.autograd.grad if lib is torch else dagrad.autograd.grad)(s, leaves)
    return gs, hs


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_second_derivative_matches_torch(case, dtype):
    shapes = CASES[case][0]
    tfn, dfn = _fns(case)
    d_dt, t_dt, n_dt = DT[dtype]
    tol = TOL64 if dtype == "float64" else TOL32
    xs = [make_input(s, 3 + i).astype(n_dt) for i, s in enumerate(shapes)]
    out_shape = tuple(tfn(*[th(x, torch.float64) for x in xs]).shape)
    R = rng(1).standard_normal(out_shape).astype(n_dt)
    V = [rng(2 + i).standard_normal(s).astype(n_dt) for i, s in enumerate(shapes)]

    # Reference in float64 on the dtype-rounded data.
    tl = [th(x, torch.float64, requires_grad=True) for x in xs]
    tg, th_ = _second(torch, tfn, tl, th(R, torch.float64), [th(v, torch.float64) for v in V])
    dl = [dg(x, d_dt, requires_grad=True) for x in xs]
    dgr, dh = _second(dagrad, dfn, dl, dg(R, d_dt), [dg(v, d_dt) for v in V])
    for i in range(len(xs)):
        assert dgr[i].requires_grad, f"first gradient {i} is not differentiable (create_graph=True)"
        assert_same(dgr[i], tg[i], tol, f"first gradient {i}", exp_dtype=dtype)
        assert_same(dh[i], th_[i], tol, f"second gradient {i}", exp_dtype=dtype)


@pytest.mark.parametrize("case", list(CASES))
def test_double_backward_against_central_differences(case):
    """x -> grad(f(x), x, R, create_graph=True), differentiated once more, against central
    differences of the first gradient."""
    shapes = CASES[case][0]
    _, dfn = _fns(case)
    xs = [make_input(s, 3 + i) for i, s in enumerate(shapes)]
    out_shape = tuple(dfn(*[dg(x, dagrad.float64) for x in xs]).shape)
    R = dg(rng(1).standard_normal(out_shape), dagrad.float64)

    def first_grads(*leaves):
        return dagrad.autograd.grad(dfn(*leaves), list(leaves), R, create_graph=True)
    gradcheck_of_projection(first_grads, xs, seed=2024)


def test_gradcheck_accepts_a_function_that_calls_grad():
    """PyTorch's gradgradcheck is gradcheck of a function that calls autograd.grad with
    create_graph=True; dagrad's gradcheck should allow the same."""
    x = dg(make_input((4,), 5), dagrad.float64, requires_grad=True)

    def first_grad(t):
        return dagrad.autograd.grad(t.tanh().sum(), [t], create_graph=True)[0]
    assert dagrad.autograd.gradcheck(first_grad, (x,), **GC) is True


def test_third_derivative_of_tanh_matches_torch():
    x = make_input((5,), 4)
    t = th(x, torch.float64, requires_grad=True)
    d = dg(x, dagrad.float64, requires_grad=True)
    outs = []
    for lib, leaf in ((torch, t), (dagrad, d)):
        grad = torch.autograd.grad if lib is torch else dagrad.autograd.grad
        y = leaf.tanh().sum()
        (g1,) = grad(y, [leaf], create_graph=True)
        (g2,) = grad(g1.sum(), [leaf], create_graph=True)
        (g3,) = grad(g2.sum(), [leaf])
        outs.append((g1, g2, g3))
    for k in range(3):
        assert_same(outs[1][k], outs[0][k], TOL64, f"derivative {k + 1}")
    tanh = np.tanh(x)  # d3/dx3 tanh = (1 - tanh^2)(6 tanh^2 - 2)
    np.testing.assert_allclose(outs[1][2].numpy(), (1 - tanh ** 2) * (6 * tanh ** 2 - 2), **TOL64)
