"""Recurrent layers: ``RNN``, ``LSTM``, ``GRU`` and their one-step cells.

Note [RNNs are unrolled into the graph]: a recurrent layer records one node per time step,
so backward through time is ordinary backward through the unrolled graph. The
input-to-hidden products do not depend on the recurrence: a layer computes them for all steps
in one GEMM, (L*N, F) @ W_ih^T, with both biases (b_ih + b_hh; a GRU keeps b_hn, which r
multiplies, in the step), ahead of the chain of hidden-to-hidden steps (PyTorch does the same),
and its weight gradient is one GEMM too. Each step is one fused node (rnn_cell, lstm_cell,
gru_cell in csrc/dagrad/ops/rnn.cpp: the hidden product, the nonlinearities and, for an LSTM,
the cell update; Notes [Fused LSTM cell] and [Fused GRU cell]) that reads its rows of the
input projection in place; their gradients are gathered back with one embed_sum (O(L*N*G), not
one zero-padded copy per step), and w_hh's per-step gradients are summed as one GEMM over all
steps (Note [Sums of products over time] in autodiff.cpp). The two directions of a
bidirectional layer run side by side. A layer's per-step outputs are stacked into the next
layer's (L, N, H) input.

Parameter names, shapes, gate order (LSTM: i, f, g, o; GRU: r, z, n) and the initialisation
U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) are PyTorch's, so state_dicts are interchangeable.
"""
import math

from ... import _args, _core, _creation, _tensor
from .. import functional as F, init
from .linear import _empty_parameter, _factory_dtype
from .module import Module

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _rnn_step(gi, gi_row, h, w_hh, relu):
    """One fused Elman step on rows [gi_row, gi_row + batch) of gi, which carries both biases."""
    return _core.rnn_cell(gi, h, w_hh, gi_row, relu)


def _lstm_step(gi, gi_row, h, state, c_offset, w_hh, w_hr=None):
    """One fused step (Note [Fused LSTM cell] in csrc/dagrad/ops/rnn.cpp): the step's input
    projection is rows [gi_row, gi_row + batch) of gi and carries both biases; the cell state is
    read from ``state`` at column ``c_offset``. Returns (h', packed output)."""
    out = _core.lstm_cell(gi, h, state, w_hh, c_offset, gi_row)
    h = out[:, :w_hh.shape[0] // 4]
    if w_hr is not None:
        h = F.linear(h, w_hr)
    return h, out


def _gru_biases(b_ih, b_hh, hidden):
    """(the input projection's bias, b_hn): b_hh's r and z parts join b_ih; b_hn stays in the
    cell, where r multiplies it (Note [Fused GRU cell] in csrc/dagrad/ops/rnn.cpp)."""
    if b_ih is None:
        return None, None
    two = 2 * hidden
    return _tensor.cat([b_ih[:two] + b_hh[:two], b_ih[two:]], 0), b_hh[two:]


def _gru_step(gi, gi_row, h, w_hh, b_hn):
    """One fused GRU step on rows [gi_row, gi_row + batch) of gi; returns h'."""
    return _core.gru_cell(gi, h, w_hh, b_hn, gi_row)[:, :w_hh.shape[1]]


class RNNBase(Module):
    """Shared code of RNN, LSTM and GRU: parameters, shapes, and the loop over layers."""

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__()
        dt = _factory_dtype(dtype, device)
        _args.count(input_size, mode, "input_size")
        if not isinstance(dropout, (int, float)) or isinstance(dropout, bool) or not 0 <= dropout <= 1:
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             "probability of an element being zeroed")
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError("hidden_size must be a positive integer")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError("num_layers must be a positive integer")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable projections")
        if proj_size >= hidden_size:
            raise ValueError("proj_size has to be smaller than hidden_size")
        if proj_size and mode != "LSTM":
            raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
        self.mode = mode
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bias = bias
        self.batch_first = batch_first
        self.dropout = float(dropout)
        self.bidirectional = bidirectional
        self.proj_size = proj_size
        gate_size = _GATES[mode] * hidden_size
        num_directions = 2 if bidirectional else 1
        real_hidden = proj_size if proj_size > 0 else hidden_size
        self._all_weights = []
        for layer in range(num_layers):
            for direction in range(num_directions):
                layer_input = input_size if layer == 0 else real_hidden * num_directions
                suffix = "_reverse" if direction == 1 else ""
                names = [f"weight_ih_l{layer}{suffix}", f"weight_hh_l{layer}{suffix}"]
                shapes = [(gate_size, layer_input), (gate_size, real_hidden)]
                if bias:
                    names += [f"bias_ih_l{layer}{suffix}", f"bias_hh_l{layer}{suffix}"]
                    shapes += [(gate_size,), (gate_size,)]
                if proj_size > 0:
                    names.append(f"weight_hr_l{layer}{suffix}")
                    shapes.append((proj_size, hidden_size))
                for name, shape in zip(names, shapes):
                    setattr(self, name, _empty_parameter(*shape, dtype=dt))
                self._all_weights.append(names)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    @property
    def all_weights(self):
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def _layer_params(self, layer, direction):
        suffix = "_reverse" if direction == 1 else ""
        get = lambda n: getattr(self, f"{n}_l{layer}{suffix}")  # noqa: E731
        w_ih, w_hh = get("weight_ih"), get("weight_hh")
        b_ih, b_hh = (get("bias_ih"), get("bias_hh")) if self.bias else (None, None)
        w_hr = get("weight_hr") if self.proj_size > 0 else None
        return w_ih, w_hh, b_ih, b_hh, w_hr

    def _check_input(self, input, batched):
        expected = 3 if batched else 2
        if input.ndim != expected:
            raise ValueError(f"{type(self).__name__}: Expected input to be 2D or 3D, got "
                             f"{input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input.size(-1) must be equal to input_size. Expected "
                               f"{self.input_size}, got {input.shape[-1]}")

    def _check_hidden(self, hx, expected, what="hidden"):
        if tuple(hx.shape) != tuple(expected):
            raise RuntimeError(f"Expected {what} size {tuple(expected)}, got {tuple(hx.shape)}")

    def forward(self, input, hx=None):
        """Runs the layers over the sequence.

        input: (L, N, H_in), or (N, L, H_in) with batch_first, or unbatched (L, H_in).
        hx: (D * num_layers, N, H_out) (LSTM: a pair (h_0, c_0)); zeros when omitted.
        Returns (output, h_n) (LSTM: (output, (h_n, c_n))), output (L, N, D * H_out).
        """
        is_lstm = self.mode == "LSTM"
        batched = input.ndim == 3
        self._check_input(input, batched)
        if not batched:
            input = input.unsqueeze(1)
        elif self.batch_first:
            input = input.transpose(0, 1)
        seq_len, batch = input.shape[0], input.shape[1]
        if seq_len == 0:
            raise ValueError(f"{type(self).__name__}: expected a sequence of length at least 1")
        D = 2 if self.bidirectional else 1
        real_hidden = self.proj_size if self.proj_size > 0 else self.hidden_size
        h_shape = (self.num_layers * D, batch, real_hidden)
        c_shape = (self.num_layers * D, batch, self.hidden_size)
        if hx is None:
            h0 = _creation.zeros(h_shape, dtype=input.dtype)
            c0 = _creation.zeros(c_shape, dtype=input.dtype) if is_lstm else None
        else:
            h0, c0 = hx if is_lstm else (hx, None)
            if not batched:
                if h0.ndim != 2:
                    raise RuntimeError(f"For unbatched 2-D input, hx should also be 2-D but got "
                                       f"{h0.ndim}-D tensor")
                h0 = h0.unsqueeze(1)
                c0 = c0.unsqueeze(1) if c0 is not None else None
            self._check_hidden(h0, h_shape)
            if is_lstm:
                self._check_hidden(c0, c_shape, "cell")
        h0s = h0.split(1, 0)
        c0s = c0.split(1, 0) if is_lstm else None

        # The sequence enters each layer as one (L, N, features) tensor and leaves it as a list
        # of (N, features) steps: see Note [RNNs are unrolled into the graph].
        seq = input
        h_n, c_n = [], []
        for layer in range(self.num_layers):
            outs = []
            for direction in range(D):
                k = layer * D + direction
                w_ih, w_hh, b_ih, b_hh, w_hr = self._layer_params(layer, direction)
                h = h0s[k].squeeze(0)
                ys = [None] * seq_len
                # The input projection of every step in one GEMM, off the recurrence's critical path.
                # An LSTM's fused step adds no bias of its own: gi carries b_ih + b_hh.
                b_hn = None
                if self.mode == "GRU":
                    b_in, b_hn = _gru_biases(b_ih, b_hh, self.hidden_size)
                else:
                    b_in = b_ih + b_hh if b_ih is not None else None
                gis = F.linear(seq.reshape(seq_len * batch, seq.shape[2]), w_ih, b_in)
                order = range(seq_len - 1, -1, -1) if direction == 1 else range(seq_len)
                if is_lstm:
                    # Each step reads its rows of gis in place. The first step reads c_0 itself,
                    # every later step c' from the previous packed output.
                    state, c_offset = c0s[k].squeeze(0), 0
                    for t in order:
                        h, state = _lstm_step(gis, t * batch, h, state, c_offset, w_hh, w_hr)
                        c_offset = self.hidden_size
                        ys[t] = h
                    h_n.append(h)
                    c_n.append(state[:, c_offset:c_offset + self.hidden_size] if c_offset else state)
                elif self.mode == "GRU":
                    for t in order:
                        h = _gru_step(gis, t * batch, h, w_hh, b_hn)
                        ys[t] = h
                    h_n.append(h)
                else:
                    relu = self.mode == "RNN_RELU"
                    for t in order:
                        h = _rnn_step(gis, t * batch, h, w_hh, relu)
                        ys[t] = h
                    h_n.append(h)
                outs.append(ys)
            xs = outs[0] if D == 1 else [_tensor.cat([f, b], 1) for f, b in zip(*outs)]
            if self.dropout > 0 and self.training and layer < self.num_layers - 1:
                xs = [F.dropout(x, self.dropout, True) for x in xs]
            seq = _tensor.stack(xs, 0)
        output = seq
        h_n = _tensor.stack(h_n, 0)
        c_n = _tensor.stack(c_n, 0) if is_lstm else None
        if not batched:
            output = output.squeeze(1)
            h_n = h_n.squeeze(1)
            c_n = c_n.squeeze(1) if is_lstm else None
        elif self.batch_first:
            output = output.transpose(0, 1)
        return (output, (h_n, c_n)) if is_lstm else (output, h_n)

    def extra_repr(self):
        s = "{input_size}, {hidden_size}"
        if self.proj_size != 0:
            s += ", proj_size={proj_size}"
        if self.num_layers != 1:
            s += ", num_layers={num_layers}"
        if self.bias is not True:
            s += ", bias={bias}"
        if self.batch_first is not False:
            s += ", batch_first={batch_first}"
        if self.dropout != 0:
            s += ", dropout={dropout}"
        if self.bidirectional is not False:
            s += ", bidirectional={bidirectional}"
        return s.format(**self.__dict__)


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act tanh or relu.

    >>> import dagrad
    >>> from dagrad import nn
    >>> out, h = nn.RNN(3, 5, num_layers=2, batch_first=True)(dagrad.randn(4, 7, 3))
    >>> out.shape, h.shape
    ((4, 7, 5), (2, 4, 5))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None):
        if nonlinearity == "tanh":
            mode = "RNN_TANH"
        elif nonlinearity == "relu":
            mode = "RNN_RELU"
        else:
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        super().__init__(mode, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """Long short-term memory; returns (output, (h_n, c_n)). Gates i, f, g, o.

    >>> import dagrad
    >>> from dagrad import nn
    >>> out, (h, c) = nn.LSTM(3, 5)(dagrad.randn(7, 4, 3))
    >>> out.shape, h.shape, c.shape
    ((7, 4, 5), (1, 4, 5), (1, 4, 5))
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, proj_size, device=device, dtype=dtype)


class GRU(RNNBase):
    """Gated recurrent unit; returns (output, h_n). Gates r, z, n.

    >>> import dagrad
    >>> from dagrad import nn
    >>> nn.GRU(3, 5)(dagrad.randn(7, 4, 3))[0].shape
    (7, 4, 5)
    """

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device=device, dtype=dtype)


class RNNCellBase(Module):
    def __init__(self, input_size, hidden_size, bias, num_chunks, device=None, dtype=None):
        super().__init__()
        dt = _factory_dtype(dtype, device)
        self.input_size = _args.count(input_size, type(self).__name__, "input_size")
        self.hidden_size = _args.count(hidden_size, type(self).__name__, "hidden_size")
        self.bias = bias
        self.weight_ih = _empty_parameter(num_chunks * hidden_size, input_size, dtype=dt)
        self.weight_hh = _empty_parameter(num_chunks * hidden_size, hidden_size, dtype=dt)
        if bias:
            self.bias_ih = _empty_parameter(num_chunks * hidden_size, dtype=dt)
            self.bias_hh = _empty_parameter(num_chunks * hidden_size, dtype=dt)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self):
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for w in self.parameters():
            init.uniform_(w, -stdv, stdv)

    def extra_repr(self):
        s = "{input_size}, {hidden_size}"
        if self.bias is not True:
            s += ", bias={bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += ", nonlinearity={nonlinearity}"
        return s.format(**self.__dict__)

    def _prepare(self, input, hx, n_states):
        """Checks shapes; unbatched (H_in,) input gets a batch dim. Returns
        (input, states, batched) with missing states as zeros."""
        if input.ndim not in (1, 2):
            raise ValueError(f"{type(self).__name__}: Expected input to be 1D or 2D, got "
                             f"{input.ndim}D instead")
        if input.shape[-1] != self.input_size:
            raise RuntimeError(f"input has inconsistent input_size: got {input.shape[-1]} "
                               f"expected {self.input_size}")
        batched = input.ndim == 2
        if not batched:
            input = input.unsqueeze(0)
        if hx is None:
            z = _creation.zeros(input.shape[0], self.hidden_size, dtype=input.dtype)
            states = [z] * n_states
        else:
            states = list(hx) if n_states > 1 else [hx]
            if not batched:
                states = [s.unsqueeze(0) for s in states]
            for s in states:
                if tuple(s.shape) != (input.shape[0], self.hidden_size):
                    raise RuntimeError(f"hidden state has shape {tuple(s.shape)}, expected "
                                       f"{(input.shape[0], self.hidden_size)}")
        return input, states, batched



class RNNCell(RNNCellBase):
    """One step of an Elman RNN: h' = act(x W_ih^T + b_ih + h W_hh^T + b_hh).

    >>> import dagrad
    >>> from dagrad import nn
    >>> nn.RNNCell(3, 5)(dagrad.randn(4, 3)).shape
    (4, 5)
    """

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity="tanh", device=None,
                 dtype=None):
        super().__init__(input_size, hidden_size, bias, 1, device=device, dtype=dtype)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity: {nonlinearity}")
        self.nonlinearity = nonlinearity

    def forward(self, input, hx=None):
        input, (h,), batched = self._prepare(input, hx, 1)
        bias = self.bias_ih + self.bias_hh if self.bias else None
        out = _rnn_step(F.linear(input, self.weight_ih, bias), 0, h, self.weight_hh, self.nonlinearity == "relu")
        return out if batched else out.squeeze(0)


class LSTMCell(RNNCellBase):
    """One LSTM step; ``hx`` is (h, c) and the result is (h', c').

    >>> import dagrad
    >>> from dagrad import nn
    >>> h, c = nn.LSTMCell(3, 5)(dagrad.randn(4, 3))
    >>> h.shape, c.shape
    ((4, 5), (4, 5))
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        input, (h, c), batched = self._prepare(input, hx, 2)
        bias = self.bias_ih + self.bias_hh if self.bias else None
        h, out = _lstm_step(F.linear(input, self.weight_ih, bias), 0, h, c, 0, self.weight_hh)
        c = out[:, self.hidden_size:2 * self.hidden_size]
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(RNNCellBase):
    """One GRU step: r, z, n gates as PyTorch; h' = (1 - z) * n + z * h.

    >>> import dagrad
    >>> from dagrad import nn
    >>> nn.GRUCell(3, 5)(dagrad.randn(4, 3)).shape
    (4, 5)
    """

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, device=device, dtype=dtype)

    def forward(self, input, hx=None):
        input, (h,), batched = self._prepare(input, hx, 1)
        b_in, b_hn = _gru_biases(self.bias_ih, self.bias_hh, self.hidden_size)
        out = _gru_step(F.linear(input, self.weight_ih, b_in), 0, h, self.weight_hh, b_hn)
        return out if batched else out.squeeze(0)
