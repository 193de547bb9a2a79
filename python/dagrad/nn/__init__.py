"""Neural-network building blocks with PyTorch's names: layers (``Module`` and its subclasses),
``Parameter``, ``functional`` and ``init``.

>>> import dagrad
>>> from dagrad import nn
>>> net = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
>>> net(dagrad.ones(4, 2)).shape
(4, 3)
>>> list(net.state_dict().keys())
['0.weight', '0.bias']
"""
from . import functional  # noqa: F401
from . import init  # noqa: F401
from .parameter import Parameter
from . import modules  # noqa: F401
from .modules import *  # noqa: F401,F403
from .modules import __all__ as _modules_all

__all__ = ["functional", "init", "Parameter", "modules"] + list(_modules_all)
