"""``Parameter``: a leaf tensor that a Module registers as one of its parameters.

Note [Parameters are marked tensors]: the C++ ops always return dagrad's own Tensor type
(Note [Tensor is a hand-written CPython type]), so a Python subclass could not come back from
them. A Parameter is therefore an ordinary leaf Tensor carrying the mark ``_is_param``;
``isinstance(t, Parameter)`` reads the mark (through the metaclass). The mark lives on the C++
node, so every handle on the same tensor agrees, and a tensor derived from a parameter
(``p.detach()``, ``p * 2``, ``p.data``) is a new node and not a parameter, as in PyTorch. Unlike
PyTorch's, ``Parameter(t)`` copies the value of ``t`` instead of sharing its storage: a
parameter is always a fresh leaf, whatever graph ``t`` came from.
"""
from .. import _creation
from .._core import Tensor


class _ParameterMeta(type):
    def __instancecheck__(cls, obj):
        return isinstance(obj, Tensor) and getattr(obj, "_is_param", False) is True


class Parameter(metaclass=_ParameterMeta):
    """A leaf tensor that requires grad and that a Module registers as a parameter.

    Parameters
    ----------
    data : Tensor or array_like, optional
        The initial value (copied). ``None`` gives an empty float32 tensor.
    requires_grad : bool
        Whether backward() accumulates a gradient into ``.grad`` (default True).

    Examples
    --------
    >>> import dagrad
    >>> from dagrad import nn
    >>> p = nn.Parameter(dagrad.zeros(2, 3))
    >>> isinstance(p, nn.Parameter), p.requires_grad, p.is_leaf
    (True, True, True)
    """

    def __new__(cls, data=None, requires_grad=True):
        if data is None:
            t = _creation.empty(0, requires_grad=requires_grad)
        elif isinstance(data, Tensor):
            t = _creation.tensor(data.detach(), dtype=data.dtype, requires_grad=requires_grad)
        else:
            t = _creation.tensor(data, requires_grad=requires_grad)
        t._is_param = True
        return t
