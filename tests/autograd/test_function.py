"""dagrad.autograd.Function against torch.autograd.Function."""
import numpy as np
import pytest

import dagrad

torch = pytest.importorskip("torch")


def _make(lib):
    class Cube(lib.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            ctx.save_for_backward(x)
            ctx.k = k
            return x * x * x * k

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return g * 3.0 * ctx.k * x * x, None

    class SplitMax(lib.autograd.Function):  # two outputs, one non-differentiable
        @staticmethod
        def forward(ctx, x):
            idx = x.argmax()
            ctx.save_for_backward(x)
            out = x * 2.0
            ctx.mark_non_differentiable(idx)
            return out, idx

        @staticmethod
        def backward(ctx, g, g_idx):
            return g * 2.0

    return Cube, SplitMax


def test_function_matches_pytorch_values_and_gradients():
    a = np.array([0.5, -1.5, 2.0])
    out = {}
    for lib, T in ((dagrad, lambda v: dagrad.tensor(v, dtype=dagrad.float64, requires_grad=True)),
                   (torch, lambda v: torch.tensor(v, dtype=torch.float64, requires_grad=True))):
        Cube, SplitMax = _make(lib)
        x = T(a)
        y = Cube.apply(x, 2.0)
        o, idx = SplitMax.apply(y)
        assert not idx.requires_grad and o.requires_grad
        (o.sum() + y.sum()).backward()
        plain = Cube.apply(x.detach(), 2.0).requires_grad
        out[lib.__name__] = (y.detach().numpy(), x.grad.numpy(), int(idx.item()), plain)
    d, t = out["dagrad"], out["torch"]
    np.testing.assert_allclose(d[0], t[0], rtol=1e-12)
    np.testing.assert_allclose(d[1], t[1], rtol=1e-12)
    assert d[2] == t[2] and d[3] == t[3] is False


def test_function_with_numpy_passes_gradcheck_and_needs_input_grad():
    seen = []

    class NpSin(dagrad.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            seen.append(ctx.needs_input_grad)
            ctx.save_for_backward(x)
            return dagrad.tensor(np.sin(x.numpy()) * y.numpy())

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return dagrad.tensor(g.numpy() * np.cos(x.numpy())), None

    x = dagrad.tensor(np.linspace(-1, 1, 5), requires_grad=True)
    y = dagrad.tensor(np.ones(5))
    assert dagrad.autograd.gradcheck(lambda t: NpSin.apply(t, y), (x,)) is True
    assert seen[0] == (True, False)
    assert NpSin.apply(x, y)._op == "NpSin" and NpSin.apply(x, y).grad_fn.name() == "NpSinBackward"


def test_function_errors_reach_the_caller_and_the_library_still_works():
    class Bad(dagrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2.0

        @staticmethod
        def backward(ctx, g):
            return dagrad.ones(5)

    class Boom(dagrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            raise KeyError("forward boom")

    class BoomBack(dagrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x + 1.0

        @staticmethod
        def backward(ctx, g):
            raise ValueError("backward boom")

    x = dagrad.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"backward of 'Bad' returned a gradient of shape \(5,\)"):
        Bad.apply(x).sum().backward()
    with pytest.raises(KeyError, match="forward boom"):
        Boom.apply(x)
    with pytest.raises(ValueError, match="backward boom") as info:
        BoomBack.apply(x).sum().backward()
    assert any("backward" in str(f.name) for f in info.traceback)  # the user's frame is in the traceback
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [2.0, 4.0])


def test_function_is_refused_inside_compile():
    class Twice(dagrad.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2.0

        @staticmethod
        def backward(ctx, g):
            return g * 2.0

    step = dagrad.compile(lambda t: Twice.apply(t).sum())
    with pytest.raises(RuntimeError, match="not supported inside dagrad.compile"):
        step(dagrad.tensor([1.0], requires_grad=True))
