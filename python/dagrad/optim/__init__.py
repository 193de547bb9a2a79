"""Optimizers with PyTorch's names and semantics; each update is one fused C++ kernel per
parameter (``dagrad._core.optim_step``), never Python arithmetic on tensors."""
from .optimizer import Optimizer
from .sgd import SGD
from .adam import Adam, AdamW
from .rmsprop import RMSprop
from .adagrad import Adagrad
from . import lr_scheduler

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "Adagrad", "lr_scheduler"]
