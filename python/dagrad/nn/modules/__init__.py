"""The layers of ``dagrad.nn``, one file per family as in PyTorch's ``torch/nn/modules``."""
from .module import Module
from .container import Sequential, ModuleList, ModuleDict
from .linear import Identity, Linear
from .conv import Conv1d, Conv2d
from .pooling import MaxPool1d, MaxPool2d, AvgPool1d, AvgPool2d
from .flatten import Flatten, Unflatten
from .dropout import Dropout
from .sparse import Embedding
from .normalization import LayerNorm, BatchNorm1d, BatchNorm2d
from .activation import (ReLU, ReLU6, SiLU, Tanh, Sigmoid, GELU, LeakyReLU, ELU, Softplus,
                         Softmax, LogSoftmax)
from .rnn import RNNBase, RNN, LSTM, GRU, RNNCellBase, RNNCell, LSTMCell, GRUCell
from .loss import (MSELoss, L1Loss, SmoothL1Loss, NLLLoss, CrossEntropyLoss, BCELoss,
                   BCEWithLogitsLoss)

__all__ = [
    "Module", "Sequential", "ModuleList", "ModuleDict", "Identity", "Linear", "Conv1d", "Conv2d",
    "MaxPool1d", "MaxPool2d", "AvgPool1d", "AvgPool2d", "Flatten", "Unflatten", "Dropout",
    "Embedding", "LayerNorm", "BatchNorm1d", "BatchNorm2d", "ReLU", "ReLU6", "SiLU", "Tanh",
    "Sigmoid", "GELU", "LeakyReLU", "ELU", "Softplus", "Softmax", "LogSoftmax", "RNNBase", "RNN",
    "LSTM", "GRU", "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell", "MSELoss", "L1Loss",
    "SmoothL1Loss", "NLLLoss", "CrossEntropyLoss", "BCELoss", "BCEWithLogitsLoss",
]
