"""Pooling layers: ``MaxPool1d``, ``MaxPool2d``, ``AvgPool1d``, ``AvgPool2d``.

The 1-d pools run the 2-d kernels on a height-1 view of the input.
"""
from ... import _args
from .. import functional as F
from .module import Module


def _one(v, name="kernel_size", owner="pool1d"):
    return _args.integer(v[0] if isinstance(v, (tuple, list)) and len(v) == 1 else v, owner, name)


class _MaxPoolNd(Module):
    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__()
        if return_indices or ceil_mode:
            raise NotImplementedError(f"{type(self).__name__}: return_indices and ceil_mode are not supported")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def extra_repr(self):
        return ("kernel_size={kernel_size}, stride={stride}, padding={padding}"
                ", dilation={dilation}, ceil_mode={ceil_mode}".format(**self.__dict__))


class MaxPool2d(_MaxPoolNd):
    """Maximum over kH x kW windows of (N, C, H, W) input; stride defaults to kernel_size.

    >>> import dagrad
    >>> from dagrad import nn
    >>> nn.MaxPool2d(2)(dagrad.ones(1, 1, 4, 4)).shape
    (1, 1, 2, 2)
    """

    def forward(self, input):
        return F.max_pool2d(input, self.kernel_size, self.stride, self.padding, self.dilation)


class MaxPool1d(_MaxPoolNd):
    """Maximum over windows of k along the last dim of (N, C, L) input."""

    def forward(self, input):
        out = F.max_pool2d(input.unsqueeze(-2), (1, _one(self.kernel_size)), (1, _one(self.stride)),
                           (0, _one(self.padding)), (1, _one(self.dilation)))
        return out.squeeze(-2)


class _AvgPoolNd(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True,
                 divisor_override=None):
        super().__init__()
        if ceil_mode or divisor_override is not None:
            raise NotImplementedError(f"{type(self).__name__}: ceil_mode and divisor_override are not supported")
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(_AvgPoolNd):
    """Mean over kH x kW windows of (N, C, H, W) input; stride defaults to kernel_size.

    >>> import dagrad
    >>> from dagrad import nn
    >>> nn.AvgPool2d(2)(dagrad.ones(1, 1, 4, 4)).sum().item()
    4.0
    """

    def forward(self, input):
        return F.avg_pool2d(input, self.kernel_size, self.stride, self.padding,
                            count_include_pad=self.count_include_pad)


class AvgPool1d(_AvgPoolNd):
    """Mean over windows of k along the last dim of (N, C, L) input."""

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        # PyTorch keeps the 1-d pool's arguments as 1-tuples.
        self.kernel_size = (_one(self.kernel_size),)
        self.stride = (_one(self.stride),)
        self.padding = (_one(self.padding),)

    def forward(self, input):
        out = F.avg_pool2d(input.unsqueeze(-2), (1, self.kernel_size[0]), (1, self.stride[0]),
                           (0, self.padding[0]), count_include_pad=self.count_include_pad)
        return out.squeeze(-2)
