"""``Identity`` and ``Linear``."""
import math

from ... import _args, _creation, _dtype
from .. import functional as F, init
from ..parameter import Parameter
from .module import Module


def _factory_dtype(dtype, device=None):
    """The parameter dtype of a layer built with ``dtype=`` (float32 by default)."""
    if device is not None and str(device) != "cpu":
        raise ValueError(f"dagrad runs on the CPU only, got device {device!r}")
    return _dtype._dtype_arg(dtype) or _dtype._DEFAULT_FLOAT


def _empty_parameter(*shape, dtype):
    return Parameter(_creation.empty(*shape, dtype=dtype))


class Identity(Module):
    """Returns its input; takes and ignores any arguments.

    >>> import dagrad
    >>> from dagrad import nn
    >>> nn.Identity(54, unused='x')(dagrad.ones(2)).tolist()
    [1.0, 1.0]
    """

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, input):
        return input


class Linear(Module):
    """``y = x @ weight.T + bias``, with weight of shape (out_features, in_features).

    Weight and bias start as U(-1/sqrt(in_features), 1/sqrt(in_features)), PyTorch's
    ``kaiming_uniform_(a=sqrt(5))``.

    >>> import dagrad
    >>> from dagrad import nn
    >>> nn.Linear(3, 2)(dagrad.ones(4, 3)).shape
    (4, 2)
    """

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        dt = _factory_dtype(dtype, device)
        self.in_features = _args.count(in_features, "Linear", "in_features")
        self.out_features = _args.count(out_features, "Linear", "out_features")
        self.weight = _empty_parameter(self.out_features, self.in_features, dtype=dt)
        if bias:
            self.bias = _empty_parameter(self.out_features, dtype=dt)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, input):
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self):
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"
