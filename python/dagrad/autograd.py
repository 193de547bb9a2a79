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


# ----------------------------------------------------------------------------- anomaly mode

class detect_anomaly(contextlib.ContextDecorator):
    """While on, every op remembers the Python line that recorded it, and every node's output is
    checked as it is computed: the first one, forward or backward, that holds NaN or Inf raises
    ``RuntimeError`` naming its op and that line; an error raised while running a node names the
    line too. Slower (no fusion, a scan of each output): for debugging. Also a decorator.

    >>> x = dagrad.tensor([1.0, -1.0], requires_grad=True)
    >>> with dagrad.autograd.detect_anomaly():
    ...     y = x.log()
    ...     try:
    ...         y.numpy()
    ...     except RuntimeError as e:
    ...         print(str(e).split(";")[0])
    anomaly: the output of 'log' (forward pass, shape (2,)) holds NaN or Inf
    """

    def __init__(self, check_nan=True):
        self._check = _args.boolean(check_nan, "detect_anomaly", "check_nan")
        self._prev = None

    def __enter__(self):
        self._prev = _core._is_anomaly_enabled()
        _core._set_detect_anomaly(self._check)
        return self

    def __exit__(self, *exc):
        _core._set_detect_anomaly(self._prev)


def set_detect_anomaly(mode):
    """Turns anomaly mode on or off for the whole process (see ``detect_anomaly``)."""
    _core._set_detect_anomaly(_args.boolean(mode, "set_detect_anomaly", "mode"))


def is_anomaly_enabled():
    """Whether anomaly mode is on."""
    return _core._is_anomaly_enabled()


# ----------------------------------------------------------------------------- user-defined ops

class FunctionCtx:
    """What ``forward`` hands to ``backward``: tensors saved with ``save_for_backward``
    (``saved_tensors``), ``needs_input_grad`` (one bool per argument of ``apply``), and any
    attribute set on it."""

    def __init__(self, needs_input_grad):
        self.needs_input_grad = needs_input_grad
        self._saved = ()
        self._non_differentiable = set()

    def save_for_backward(self, *tensors):
        for t in tensors:
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward(): expected Tensors or None, got {_args.type_name(t)}")
        self._saved = tensors

    @property
    def saved_tensors(self):
        return self._saved

    def mark_non_differentiable(self, *outputs):
        """These outputs of forward get no gradient (their requires_grad is False)."""
        self._non_differentiable.update(id(t) for t in outputs)


class Function:
    """A user-defined op with its own backward, as PyTorch's ``torch.autograd.Function``:
    subclass it with static ``forward(ctx, *args)`` and ``backward(ctx, *grad_outputs)`` and
    call ``YourFunction.apply(*args)``.

    ``forward`` runs when ``apply`` is called (inputs computed first, grad recording off), on
    Tensors or anything else; it may use numpy (``t.numpy()``, ``dagrad.tensor(array)``).
    ``backward`` gets one gradient per output and returns one per argument of ``forward``
    (None where there is none); it runs when a backward pass reaches the op, holding the GIL
    only around its own call, and may use dagrad ops (recorded into the backward graph) or
    numpy. Gradients are checked: a wrong shape or dtype is a RuntimeError naming the op.
    Not available inside ``dagrad.compile`` (forward runs once, when traced).

    >>> class Cube(dagrad.autograd.Function):
    ...     @staticmethod
    ...     def forward(ctx, x):
    ...         ctx.save_for_backward(x)
    ...         return x * x * x
    ...     @staticmethod
    ...     def backward(ctx, g):
    ...         (x,) = ctx.saved_tensors
    ...         return g * 3.0 * x * x
    >>> x = dagrad.tensor(2.0, requires_grad=True)
    >>> Cube.apply(x).backward(); x.grad.item()
    12.0
    """

    @staticmethod
    def forward(ctx, *args, **kwargs):
        raise NotImplementedError("a Function subclass must define forward(ctx, *args)")

    @staticmethod
    def backward(ctx, *grad_outputs):
        raise NotImplementedError("a Function subclass must define backward(ctx, *grad_outputs)")

    @classmethod
    def apply(cls, *args):
        # Note [Python ops hold the GIL only around their call] (init_runtime.cpp); the
        # gradients it returns are checked (Note [Backward rules are checked], autodiff.cpp).
        name = cls.__name__
        if _core.is_tracing():
            raise RuntimeError(f"{name}.apply(): an autograd.Function is not supported inside dagrad.compile: its "
                               "forward runs in Python when the step is traced and would not run again on replay; "
                               "call it outside the compiled function, or write it with dagrad ops")
        needs = tuple(isinstance(a, Tensor) and a.requires_grad and _core.is_grad_enabled() for a in args)
        ctx = FunctionCtx(needs)
        tensors = [a for a in args if isinstance(a, Tensor)]
        if tensors:
            _core.realize(tensors)
        with no_grad():
            out = cls.forward(ctx, *args)
        single = isinstance(out, Tensor)
        outs = (out,) if single else out
        if not isinstance(outs, tuple) or not all(isinstance(o, Tensor) for o in outs):
            raise TypeError(f"{name}.forward() must return a Tensor or a tuple of Tensors, not {_args.type_name(out)}")
        if not any(needs):
            return out
        positions = [i for i, a in enumerate(args) if isinstance(a, Tensor)]
        results = []
        for k, o in enumerate(outs):
            if id(o) in ctx._non_differentiable:
                results.append(o.detach())
                continue

            def rule(grad, need, k=k):
                grads = [None] * len(outs)
                grads[k] = grad
                got = cls.backward(ctx, *grads)
                got = got if isinstance(got, tuple) else (got,)
                if len(got) != len(args):
                    raise RuntimeError(f"{name}.backward() returned {len(got)} gradients, expected {len(args)} "
                                       "(one per argument of forward; None where there is none)")
                picked = []
                for i, n in zip(positions, need):
                    g = got[i]
                    if g is not None and not isinstance(g, Tensor):
                        raise TypeError(f"{name}.backward() must return Tensors or None, got {_args.type_name(g)} "
                                        f"for argument {i}")
                    picked.append(g if n else None)
                return picked

            results.append(_core._function_node(name, tensors, o, rule))
        return results[0] if single else tuple(results)


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
