"""``Dropout``."""
from ... import _args
from .. import functional as F
from .module import Module


class Dropout(Module):
    """In training, zeroes each element with probability p and scales the rest by 1/(1-p);
    in eval mode, the identity. The mask comes from dagrad's seeded generator.

    >>> import dagrad
    >>> from dagrad import nn
    >>> nn.Dropout(0.5).eval()(dagrad.ones(3)).tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if _args.number(p, type(self).__name__, "p") < 0 or p > 1:
            raise ValueError(f"{type(self).__name__}(): dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def forward(self, input):
        return F.dropout(input, self.p, self.training)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"
