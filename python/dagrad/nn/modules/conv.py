"""``Conv1d`` and ``Conv2d`` with PyTorch's arguments, parameter shapes and initialisation."""
import math

from ... import _args
from .. import functional as F, init
from .linear import _empty_parameter, _factory_dtype
from .module import Module


def _ntuple(v, n, name, owner="Conv"):
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise ValueError(f"{owner}(): argument '{name}' must be an int or a tuple of {n} ints, got {v!r}")
        return tuple(_args.integer(a, owner, name) for a in v)
    if not _args._is_int(v):
        raise TypeError(f"{owner}(): argument '{name}' must be an int or a tuple of {n} ints, not {_args.type_name(v)}")
    return (_args.integer(v, owner, name),) * n


class _ConvNd(Module):
    _n = 0

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", device=None, dtype=None):
        super().__init__()
        n = self._n
        dt = _factory_dtype(dtype, device)
        owner = type(self).__name__
        in_channels = _args.count(in_channels, owner, "in_channels")
        out_channels = _args.count(out_channels, owner, "out_channels")
        groups = _args.integer(groups, owner, "groups")
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode != "zeros":
            raise NotImplementedError(f"padding_mode {padding_mode!r} is not supported (only 'zeros')")
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size = _ntuple(kernel_size, n, "kernel_size", owner)
        self.stride = _ntuple(stride, n, "stride", owner)
        self.dilation = _ntuple(dilation, n, "dilation", owner)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}")
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = _ntuple(padding, n, "padding", owner)
        self.output_padding = (0,) * n
        self.transposed = False
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self.weight = _empty_parameter(self.out_channels, self.in_channels // self.groups,
                                       *self.kernel_size, dtype=dt)
        if bias:
            self.bias = _empty_parameter(self.out_channels, dtype=dt)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in, _ = init._calculate_fan_in_and_fan_out(self.weight)
            if fan_in != 0:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)

    def _padded(self, input):
        """The input and the symmetric padding to pass to the conv.

        'same' pads dilation*(kernel-1) in total per dim, the odd element at the end (as
        PyTorch); an uneven split is applied with F.pad first.
        """
        if self.padding == "valid":
            return input, (0,) * self._n
        if self.padding != "same":
            return input, self.padding
        sym, extra = [], []
        for d, k in zip(self.dilation, self.kernel_size):
            total = d * (k - 1)
            sym.append(total // 2)
            extra.append(total - 2 * (total // 2))
        if any(extra):
            pads = []
            for e in reversed(extra):  # F.pad lists the last dim first
                pads += [0, e]
            input = F.pad(input, pads)
        return input, tuple(sym)

    def extra_repr(self):
        s = "{in_channels}, {out_channels}, kernel_size={kernel_size}, stride={stride}"
        if self.padding != (0,) * self._n:
            s += ", padding={padding}"
        if self.dilation != (1,) * self._n:
            s += ", dilation={dilation}"
        if self.groups != 1:
            s += ", groups={groups}"
        if self.bias is None:
            s += ", bias=False"
        return s.format(**self.__dict__)


class Conv1d(_ConvNd):
    """1-d convolution over (N, C_in, L) input; weight (C_out, C_in / groups, k).

    >>> import dagrad
    >>> from dagrad import nn
    >>> nn.Conv1d(2, 4, 3, padding=1)(dagrad.ones(1, 2, 5)).shape
    (1, 4, 5)
    """

    _n = 1

    def forward(self, input):
        x, padding = self._padded(input)
        return F.conv1d(x, self.weight, self.bias, self.stride[0], padding[0], self.dilation[0],
                        self.groups)


class Conv2d(_ConvNd):
    """2-d convolution over (N, C_in, H, W) input; weight (C_out, C_in / groups, kH, kW).

    >>> import dagrad
    >>> from dagrad import nn
    >>> nn.Conv2d(3, 8, 3, stride=2, padding=1)(dagrad.ones(1, 3, 8, 8)).shape
    (1, 8, 4, 4)
    """

    _n = 2

    def forward(self, input):
        x, padding = self._padded(input)
        return F.conv2d(x, self.weight, self.bias, self.stride, padding, self.dilation, self.groups)
