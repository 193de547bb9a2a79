"""Functional autodiff: ``dagrad.autograd.grad``, PyTorch's names and semantics."""
from . import _core
from ._core import Tensor


def _as_list(x):
    if x is None:
        return []
    if isinstance(x, Tensor):
        return [x]
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
    outs = _as_list(outputs)
    ins = _as_list(inputs)
    gouts = _as_list(grad_outputs)
    if not gouts:
        gouts = [None] * len(outs)
    if retain_graph is None:
        retain_graph = create_graph
    return tuple(_core.grad(outs, ins, gouts, bool(retain_graph), bool(create_graph),
                            bool(allow_unused)))


def backward(tensors, grad_tensors=None, retain_graph=None, create_graph=False):
    """Like ``Tensor.backward`` for several roots at once, in one scheduler run."""
    ts = _as_list(tensors)
    gs = _as_list(grad_tensors) or [None] * len(ts)
    if retain_graph is None:
        retain_graph = create_graph
    _core.backward(ts, gs, bool(retain_graph), bool(create_graph))
