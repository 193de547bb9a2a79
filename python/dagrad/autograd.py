"""Autodiff with PyTorch's names and semantics: grad mode (``no_grad``, ``enable_grad``,
``set_grad_enabled``), ``grad``, ``backward`` and ``gradcheck``."""
import contextlib

from . import _args, _core
from ._core import Tensor
from ._creation import tensor
from ._dtype import float64

# The grad-mode names dagrad also exports at the top level, as torch does.
GRAD_MODE = ("no_grad", "enable_grad", "set_grad_enabled", "is_grad_enabled")

# ----------------------------------------------------------------------------- grad mode

class _GradMode(contextlib.ContextDecorator):
    """Sets grad mode to ``_mode`` on entry and restores the previous mode on exit: a context
    manager and, through ContextDecorator, a decorator. Grad mode is per thread (the core
    keeps it thread-local), so one thread's ``no_grad`` leaves the others recording."""

    _mode = True

    def __enter__(self):
        self._prev = _core.is_grad_enabled()
        _core.set_grad_enabled(self._mode)
        return self

    def __exit__(self, *exc):
        _core.set_grad_enabled(self._prev)
        return False


class no_grad(_GradMode):
    """Context manager and decorator that stops ops from recording what backward needs.

    >>> with dagrad.no_grad():
    ...     y = dagrad.ones(2, requires_grad=True) * 2
    >>> y.requires_grad
    False
    """

    _mode = False


class enable_grad(_GradMode):
    """Re-enables grad recording inside a no_grad block.

    >>> with dagrad.no_grad(), dagrad.enable_grad():
    ...     y = dagrad.ones(2, requires_grad=True) * 2
    >>> y.requires_grad
    True
    """

    _mode = True


class set_grad_enabled(_GradMode):
    """Sets grad mode; usable as a function call or a context manager.

    The mode is set when the object is made, so a plain call switches grad mode; leaving a
    ``with`` block restores the mode from before the call.

    >>> with dagrad.set_grad_enabled(False):
    ...     dagrad.is_grad_enabled()
    False
    >>> dagrad.is_grad_enabled()
    True
    """

    def __init__(self, mode):
        self._mode = _args.boolean(mode, "set_grad_enabled", "mode")
        self._prev = _core.is_grad_enabled()
        _core.set_grad_enabled(self._mode)

    def __enter__(self):
        return self


def is_grad_enabled():
    """Whether ops record what backward needs, in this thread.

    >>> dagrad.is_grad_enabled()
    True
    """
    return _core.is_grad_enabled()


# ----------------------------------------------------------------------------- grad, backward, gradcheck

def _as_list(x, fn="grad", name="outputs", optional=False):
    """A tensor or a sequence of tensors (None entries too where `optional`), as a list."""
    if x is None:
        return []
    if isinstance(x, Tensor):
        return [x]
    if not isinstance(x, (list, tuple)):
        raise TypeError(f"{fn}(): argument '{name}' must be a Tensor or a sequence of Tensors, "
                        f"not {_args.type_name(x)}")
    for t in x:
        if not (isinstance(t, Tensor) or (optional and t is None)):
            raise TypeError(f"{fn}(): argument '{name}' must be a Tensor or a sequence of Tensors, "
                            f"but holds a {_args.type_name(t)}")
    return list(x)


def grad(outputs, inputs, grad_outputs=None, retain_graph=None, create_graph=False,
         allow_unused=False):
    """Gradients of ``outputs`` with respect to ``inputs``, without touching ``.grad``.

    Returns a tuple with one entry per input (None for an unused input with
    ``allow_unused=True``).

    >>> import dagrad
    >>> x = dagrad.tensor(2.0, requires_grad=True)
    >>> (g,) = dagrad.autograd.grad(x ** 3, x)
    >>> g.item()
    12.0
    """
    outs = _as_list(outputs, "grad", "outputs")
    ins = _as_list(inputs, "grad", "inputs")
    gouts = _as_list(grad_outputs, "grad", "grad_outputs", optional=True)
    if not gouts:
        gouts = [None] * len(outs)
    create_graph = _args.boolean(create_graph, "grad", "create_graph")
    retain_graph = create_graph if retain_graph is None else _args.boolean(retain_graph, "grad", "retain_graph")
    return tuple(_core.grad(outs, ins, gouts, retain_graph, create_graph,
                            _args.boolean(allow_unused, "grad", "allow_unused")))


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Like ``Tensor.backward`` for several roots at once, in one scheduler run.

    >>> x = dagrad.tensor(2.0, requires_grad=True)
    >>> dagrad.autograd.backward([x * 3.0, x * x])
    >>> x.grad.item()
    7.0
    """
    ts = _as_list(tensors, "backward", "tensors")
    gs = _as_list(grad_tensors, "backward", "grad_tensors", optional=True) or [None] * len(ts)
    create_graph = _args.boolean(create_graph, "backward", "create_graph")
    retain_graph = create_graph if retain_graph is None else _args.boolean(retain_graph, "backward", "retain_graph")
    _core.backward(ts, gs, retain_graph, create_graph)


class GradcheckError(RuntimeError):
    """Raised by gradcheck when analytical and numerical Jacobians differ."""


def gradcheck(fn, inputs, eps=1e-6, atol=1e-5, rtol=1e-3, raise_exception=True):
    """Checks the gradients of ``fn`` at ``inputs`` against float64 central differences.

    Every input that requires grad must be float64. The analytical Jacobian is built one
    output element at a time with ``grad``; the numerical one perturbs each input element by
    +-eps. They must agree within ``|a - n| <= atol + rtol * |n|`` (PyTorch's gradcheck rule).

    >>> import dagrad
    >>> x = dagrad.tensor([0.3, -1.2], dtype=dagrad.float64, requires_grad=True)
    >>> dagrad.autograd.gradcheck(lambda t: (t * t).tanh(), (x,))
    True
    """
    import numpy as np

    if isinstance(inputs, Tensor):
        inputs = (inputs,)
    inputs = tuple(inputs)
    diff = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    for i in diff:
        if inputs[i].dtype != float64:
            raise ValueError(f"gradcheck: input {i} must be float64 for finite differences, got {inputs[i].dtype}")

    def run(args):
        out = fn(*args)
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return [o for o in outs if isinstance(o, Tensor)]

    outs = run(inputs)
    base = [o.numpy().astype(np.float64).ravel() for o in outs]
    values = [inputs[i].numpy().astype(np.float64) for i in diff]

    def shifted(i, value, e, delta):
        """fn's outputs with element e of input i (whose value is ``value``) moved by delta."""
        arr = value.ravel().copy()
        arr[e] += delta
        args = list(inputs)
        # Grad mode stays on: fn may itself differentiate (grad with create_graph).
        args[i] = tensor(arr.reshape(value.shape), dtype=float64, requires_grad=True)
        return [o.detach().numpy().astype(np.float64).ravel() for o in run(args)]

    # Numerical Jacobians: d(out k)/d(input j), one column per input element.
    numerical = [[np.zeros((b.size, v.size)) for v in values] for b in base]
    for j, i in enumerate(diff):
        for e in range(values[j].size):
            plus, minus = shifted(i, values[j], e, eps), shifted(i, values[j], e, -eps)
            for k in range(len(base)):
                numerical[k][j][:, e] = (plus[k] - minus[k]) / (2 * eps)

    # Analytical Jacobians, one row per output element.
    for k, o in enumerate(outs):
        if not o.requires_grad:
            if any(np.any(numerical[k][j] != 0) for j in range(len(diff))):
                return _fail(raise_exception, f"output {k} does not require grad but depends on the inputs")
            continue
        for r in range(base[k].size):
            seed = np.zeros(base[k].size)
            seed[r] = 1.0
            g_out = tensor(seed.reshape(o.shape), dtype=o.dtype)
            fresh = run(inputs)[k]
            grads = grad(fresh, [inputs[i] for i in diff], g_out, allow_unused=True)
            for j, g in enumerate(grads):
                a = np.zeros(values[j].size) if g is None else g.numpy().astype(np.float64).ravel()
                n = numerical[k][j][r]
                bad = np.abs(a - n) > atol + rtol * np.abs(n)
                if np.any(bad):
                    e = int(np.argmax(bad))
                    return _fail(raise_exception,
                                 f"Jacobian mismatch for output {k} element {r} with respect to input "
                                 f"{diff[j]} element {e}: analytical {a[e]!r}, numerical {n[e]!r}")
    return True


def _fail(raise_exception, msg):
    if raise_exception:
        raise GradcheckError("gradcheck: " + msg)
    return False
