"""The fused Elman, LSTM and GRU steps (Notes [Fused LSTM cell], [Fused GRU cell]) and the one-GEMM
weight gradient over time steps (Note [Sums of products over time]): against PyTorch in float64
(forward, every input's gradient through every output block), gradcheck, nn.RNN / LSTM / GRU
and their cells with initial states against torch.nn, compiled steps, and the same bits at 1 to 8
threads with fusion on and off."""
import numpy as np
import pytest
import torch

import dagrad
import dagrad.nn.functional as DF
from dagrad import nn
from torch_helpers import TOL64, assert_same, check_double_backward, helper_test_op, to_np


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("n,h,k,rows,row", [(3, 4, 4, 3, 0), (2, 3, 5, 6, 2), (1, 2, 2, 4, 3)])
def test_rnn_cell_matches_torch_and_gradcheck(relu, n, h, k, rows, row):
    def ref(gi, hh, w):
        pre = gi[row:row + n] + hh @ w.T
        return pre.relu() if relu else pre.tanh()
    helper_test_op([(rows, h), (n, k), (h, k)], ref, lambda gi, hh, w: dagrad._core.rnn_cell(gi, hh, w, row, relu),
                   kinks=(0.0,), seed=n + row + relu)


def test_rnn_cell_errors_name_the_shapes():
    z = lambda *s: dagrad.zeros(*s)  # noqa: E731
    cell = dagrad._core.rnn_cell
    with pytest.raises(ValueError, match=r"w_hh must be 2-d \(hidden_size, features\), got shape \(3,\)"):
        cell(z(2, 3), z(2, 3), z(3), 0, False)
    with pytest.raises(ValueError, match=r"h of shape \(2, 4\) does not fit w_hh of shape \(3, 3\)"):
        cell(z(2, 3), z(2, 4), z(3, 3), 0, False)
    with pytest.raises(ValueError, match=r"gi of shape \(3, 3\) has no rows \[2, 4\) of 3 columns"):
        cell(z(3, 3), z(2, 3), z(3, 3), 2, False)
    with pytest.raises(TypeError, match="one floating dtype, got float64, float32, float32"):
        cell(z(2, 3).double(), z(2, 3), z(3, 3), 0, True)


def torch_lstm_cell(c_offset):
    """The reference: PyTorch's LSTM step written with torch ops, packed as lstm_cell packs it."""
    def f(gi, h, state, w):
        H = w.shape[0] // 4
        i, fg, g, o = (gi + h @ w.T).chunk(4, 1)
        i, fg, g, o = i.sigmoid(), fg.sigmoid(), g.tanh(), o.sigmoid()
        c = fg * state[:, c_offset:c_offset + H] + i * g
        tc = c.tanh()
        return torch.cat([o * tc, c, i, fg, g, o, tc], 1)
    return f


# (N, H, K, state width, c offset): an initial c, a packed previous output, a projected h (K < H)
CELLS = {
    "initial_c": (3, 4, 4, 4, 0),
    "packed_state": (2, 3, 3, 21, 3),
    "projected_h": (4, 5, 2, 9, 2),
    "batch_1": (1, 2, 2, 2, 0),
}


@pytest.mark.parametrize("case", list(CELLS))
def test_lstm_cell_matches_torch_and_gradcheck(case):
    n, h, k, s, off = CELLS[case]
    helper_test_op([(n, 4 * h), (n, k), (n, s), (4 * h, k)], torch_lstm_cell(off),
                   lambda gi, hh, st, w: dagrad._core.lstm_cell(gi, hh, st, w, off, 0), seed=len(case))


@pytest.mark.parametrize("row", [0, 2, 4])
def test_lstm_cell_reads_its_rows_of_a_stacked_gi(row):
    # gi holds 3 steps of 2 rows; the step reads rows [row, row + 2) and only they get a gradient.
    ref = torch_lstm_cell(0)
    helper_test_op([(6, 12), (2, 3), (2, 3), (12, 3)],
                   lambda gi, hh, st, w: ref(gi[row:row + 2], hh, st, w),
                   lambda gi, hh, st, w: dagrad._core.lstm_cell(gi, hh, st, w, 0, row), seed=row)


def test_lstm_cell_saturated_gates_match_torch():
    # Pre-activations far out on both sides: sigmoid and tanh at 0 and 1, gradients underflowing.
    g = np.random.default_rng(4)
    gi = g.choice([-40.0, -8.0, 0.0, 8.0, 40.0], size=(3, 8)) + g.standard_normal((3, 8)) * 0.1
    helper_test_op(vals=[gi, g.standard_normal((3, 2)) * 0.1, g.standard_normal((3, 2)),
                         g.standard_normal((8, 2)) * 0.1],
                   torch_fn=torch_lstm_cell(0),
                   dagrad_fn=lambda a, b, c, d: dagrad._core.lstm_cell(a, b, c, d, 0, 0), gradcheck=False)


def test_lstm_cell_errors_name_the_shapes():
    z = lambda *s: dagrad.zeros(*s)  # noqa: E731
    cell = dagrad._core.lstm_cell
    with pytest.raises(ValueError, match=r"w_hh must be 2-d \(4 \* hidden_size"):
        cell(z(2, 8), z(2, 2), z(2, 2), z(7, 2), 0, 0)
    with pytest.raises(ValueError, match=r"h of shape \(2, 3\) does not fit w_hh of shape \(8, 2\)"):
        cell(z(2, 8), z(2, 3), z(2, 2), z(8, 2), 0, 0)
    with pytest.raises(ValueError, match=r"gi of shape \(2, 7\) has no rows \[0, 2\) of 8 columns"):
        cell(z(2, 7), z(2, 2), z(2, 2), z(8, 2), 0, 0)
    with pytest.raises(ValueError, match=r"gi of shape \(5, 8\) has no rows \[4, 6\)"):
        cell(z(5, 8), z(2, 2), z(2, 2), z(8, 2), 0, 4)
    with pytest.raises(ValueError, match=r"state of shape \(2, 14\) has no cell state of 2 columns at column 13"):
        cell(z(2, 8), z(2, 2), z(2, 14), z(8, 2), 13, 0)
    with pytest.raises(ValueError, match="at column -1"):
        cell(z(2, 8), z(2, 2), z(2, 2), z(8, 2), -1, 0)
    with pytest.raises(TypeError, match="one floating dtype, got float32, float64"):
        cell(z(2, 8), z(2, 2).double(), z(2, 2), z(8, 2), 0, 0)
    assert cell(z(2, 8), z(2, 2), z(2, 2), z(8, 2), 0, 0).shape == (2, 14)  # still usable


@pytest.mark.parametrize("off,width", [(0, 2), (2, 14)])
def test_lstm_cell_second_order_against_finite_differences(off, width):
    # Under create_graph the rule emits differentiable ops (Note [Fused cells under create_graph]).
    g = np.random.default_rng(off)
    arrays = [g.standard_normal(s) for s in [(2, 8), (2, 3), (2, width), (8, 3)]]
    check_double_backward(lambda gi, h, st, w: dagrad._core.lstm_cell(gi, h, st, w, off, 0), arrays)


def torch_gru_cell(row, n):
    """PyTorch's GRU step with torch ops (r applied to W_hn h + b_hn), packed as gru_cell packs it."""
    def f(gi, h, w, b=None):
        gh = h @ w.T
        gi_r, gi_z, gi_n = gi[row:row + n].chunk(3, 1)
        gh_r, gh_z, gh_n = gh.chunk(3, 1)
        if b is not None:
            gh_n = gh_n + b
        r, z = (gi_r + gh_r).sigmoid(), (gi_z + gh_z).sigmoid()
        nn_ = (gi_n + r * gh_n).tanh()
        return torch.cat([nn_ + z * (h - nn_), r, z, nn_, gh_n], 1)
    return f


@pytest.mark.parametrize("n,h,rows,row,bias", [(3, 4, 3, 0, True), (2, 3, 6, 4, False), (1, 2, 1, 0, True),
                                               (4, 5, 8, 2, True)])
def test_gru_cell_matches_torch_and_gradcheck(n, h, rows, row, bias):
    shapes = [(rows, 3 * h), (n, h), (3 * h, h)] + ([(h,)] if bias else [])
    helper_test_op(shapes, torch_gru_cell(row, n),
                   lambda gi, hh, w, b=None: dagrad._core.gru_cell(gi, hh, w, b, row), seed=n + row)


def test_gru_cell_errors_name_the_shapes():
    z = lambda *s: dagrad.zeros(*s)  # noqa: E731
    cell = dagrad._core.gru_cell
    with pytest.raises(ValueError, match=r"w_hh must be 2-d \(3 \* hidden_size, hidden_size\), got shape \(8, 2\)"):
        cell(z(2, 6), z(2, 2), z(8, 2), None, 0)
    with pytest.raises(ValueError, match=r"h of shape \(2, 3\) does not fit w_hh of shape \(6, 2\)"):
        cell(z(2, 6), z(2, 3), z(6, 2), None, 0)
    with pytest.raises(ValueError, match=r"gi of shape \(4, 6\) has no rows \[3, 5\)"):
        cell(z(4, 6), z(2, 2), z(6, 2), None, 3)
    with pytest.raises(ValueError, match=r"b_hn of shape \(6,\) is not \(2,\)"):
        cell(z(2, 6), z(2, 2), z(6, 2), z(6), 0)
    with pytest.raises(TypeError, match="one floating dtype, got float32, float32, float64"):
        cell(z(2, 6), z(2, 2), z(6, 2).double(), None, 0)
    assert cell(z(2, 6), z(2, 2), z(6, 2), z(2), 0).shape == (2, 10)


@pytest.mark.parametrize("bias", [True, False])
def test_gru_cell_second_order_against_finite_differences(bias):
    g = np.random.default_rng(5)
    arrays = [g.standard_normal(s) for s in [(4, 6), (2, 2), (6, 2)] + ([(2,)] if bias else [])]
    check_double_backward(lambda gi, h, w, b=None: dagrad._core.gru_cell(gi, h, w, b, 2), arrays)


@pytest.mark.parametrize("relu", [False, True])
def test_rnn_cell_second_order_against_finite_differences(relu):
    g = np.random.default_rng(6)
    arrays = [g.standard_normal(s) + 0.3 for s in [(3, 3), (3, 2), (3, 2)]]
    check_double_backward(lambda gi, h, w: dagrad._core.rnn_cell(gi, h, w, 0, relu), arrays)


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN"])
def test_layers_second_order_match_torch(mode):
    # A gradient penalty through a 2-layer layer: d/dparams of |d loss / d x|^2, as PyTorch's.
    t = getattr(torch.nn, mode)(3, 4, num_layers=2, dtype=torch.float64)
    d = getattr(nn, mode)(3, 4, num_layers=2, dtype=dagrad.float64)
    _load(d, t)
    x = np.random.default_rng(2).standard_normal((5, 2, 3))
    tx, dx = torch.tensor(x, requires_grad=True), dagrad.tensor(x, requires_grad=True)
    (tg,) = torch.autograd.grad(t(tx)[0].sin().sum(), [tx], create_graph=True)
    (dgr,) = dagrad.autograd.grad(d(dx)[0].sin().sum(), [dx], create_graph=True)
    assert_same(dgr, tg, TOL64, "first gradient")
    (tg * tg).sum().backward()
    (dgr * dgr).sum().backward()
    dparams = dict(d.named_parameters())
    for name, p in t.named_parameters():
        assert_same(dparams[name].grad, p.grad, TOL64, f"second-order gradient of {name}")


# ----------------------------------------------------------------------------- nn.LSTM / GRU / cells

def _load(d, t):
    d.load_state_dict({k: dagrad.tensor(v.detach().numpy()) for k, v in t.state_dict().items()})


def _check_against_torch(t, d, tin, din, touts, douts, names, g):
    """Backward of sum(out * R) over the outputs (R random, the same for both frameworks) in
    torch and dagrad; asserts the outputs, the inputs' gradients and every parameter's gradient
    agree to TOL64."""
    Rs = [g.standard_normal(tuple(o.shape)) for o in touts]
    sum((o * torch.tensor(r)).sum() for o, r in zip(touts, Rs)).backward()
    dl = None
    for o, r in zip(douts, Rs):
        term = (o * dagrad.tensor(r)).sum()
        dl = term if dl is None else dl + term
    dl.backward()
    for name, a, b in zip(names, douts, touts):
        assert_same(a, b, TOL64, name)
    for i, (a, b) in enumerate(zip(din, tin)):
        assert_same(a.grad, b.grad, TOL64, f"gradient of input {i}")
    dparams = dict(d.named_parameters())
    for name, p in t.named_parameters():
        assert_same(dparams[name].grad, p.grad, TOL64, f"gradient of {name}")


@pytest.mark.parametrize("kw,shape,states", [
    (dict(), (5, 3, 4), True),
    (dict(num_layers=2), (6, 2, 4), False),
    (dict(num_layers=2, batch_first=True), (2, 6, 4), True),
    (dict(bidirectional=True), (4, 3, 4), True),
    (dict(num_layers=2, bidirectional=True, batch_first=True), (3, 5, 4), True),
    (dict(proj_size=2, num_layers=2), (5, 3, 4), True),
    (dict(bias=False), (5, 2, 4), True),
    (dict(), (7, 4), True),  # unbatched
])
def test_lstm_outputs_and_all_gradients_match_torch(kw, shape, states):
    t = torch.nn.LSTM(4, 6, dtype=torch.float64, **kw)
    d = nn.LSTM(4, 6, dtype=dagrad.float64, **kw)
    _load(d, t)
    g = np.random.default_rng(len(shape) + len(kw))
    x = g.standard_normal(shape)
    D, L = (2 if kw.get("bidirectional") else 1), kw.get("num_layers", 1)
    hsz = kw.get("proj_size") or 6
    lead = (D * L,) if len(shape) == 2 else (D * L, shape[0] if kw.get("batch_first") else shape[1])
    arrays = [x] + ([g.standard_normal(lead + (hsz,)) * 0.5, g.standard_normal(lead + (6,)) * 0.5] if states else [])
    tin = [torch.tensor(a, requires_grad=True) for a in arrays]
    din = [dagrad.tensor(a, requires_grad=True) for a in arrays]
    tout, (th, tc) = t(tin[0], tuple(tin[1:])) if states else t(tin[0])
    dout, (dh, dc) = d(din[0], tuple(din[1:])) if states else d(din[0])
    _check_against_torch(t, d, tin, din, (tout, th, tc), (dout, dh, dc), ("output", "h_n", "c_n"), g)


@pytest.mark.parametrize("kw,shape,states", [
    (dict(), (5, 3, 4), True),
    (dict(num_layers=2, batch_first=True), (2, 6, 4), False),
    (dict(num_layers=2, bidirectional=True), (4, 3, 4), True),
    (dict(bias=False, bidirectional=True, batch_first=True), (3, 5, 4), True),
    (dict(), (7, 4), True),  # unbatched
])
def test_gru_outputs_and_all_gradients_match_torch(kw, shape, states):
    t = torch.nn.GRU(4, 6, dtype=torch.float64, **kw)
    d = nn.GRU(4, 6, dtype=dagrad.float64, **kw)
    _load(d, t)
    g = np.random.default_rng(len(shape) + 3 * len(kw))
    D, L = (2 if kw.get("bidirectional") else 1), kw.get("num_layers", 1)
    lead = (D * L,) if len(shape) == 2 else (D * L, shape[0] if kw.get("batch_first") else shape[1])
    arrays = [g.standard_normal(shape)] + ([g.standard_normal(lead + (6,)) * 0.5] if states else [])
    tin = [torch.tensor(a, requires_grad=True) for a in arrays]
    din = [dagrad.tensor(a, requires_grad=True) for a in arrays]
    _check_against_torch(t, d, tin, din, t(*tin), d(*din), ("output", "h_n"), g)


@pytest.mark.parametrize("bias", [True, False])
def test_gru_cell_module_gradients_match_torch(bias):
    t, d = torch.nn.GRUCell(3, 5, bias=bias, dtype=torch.float64), nn.GRUCell(3, 5, bias=bias, dtype=dagrad.float64)
    _load(d, t)
    g = np.random.default_rng(3)
    arrays = [g.standard_normal((4, 3)), g.standard_normal((4, 5))]
    tin = [torch.tensor(a, requires_grad=True) for a in arrays]
    din = [dagrad.tensor(a, requires_grad=True) for a in arrays]
    _check_against_torch(t, d, tin, din, (t(*tin),), (d(*din),), ("h",), g)


@pytest.mark.parametrize("kw", [dict(), dict(nonlinearity="relu", num_layers=2, batch_first=True),
                                dict(bidirectional=True, bias=False)])
def test_rnn_initial_state_and_all_gradients_match_torch(kw):
    t, d = torch.nn.RNN(4, 6, dtype=torch.float64, **kw), nn.RNN(4, 6, dtype=dagrad.float64, **kw)
    _load(d, t)
    g = np.random.default_rng(9)
    L = kw.get("num_layers", 1) * (2 if kw.get("bidirectional") else 1)
    arrays = [g.standard_normal((5, 3, 4)), g.standard_normal((L, 5 if kw.get("batch_first") else 3, 6)) * 0.5]
    tin = [torch.tensor(a, requires_grad=True) for a in arrays]
    din = [dagrad.tensor(a, requires_grad=True) for a in arrays]
    _check_against_torch(t, d, tin, din, t(*tin), d(*din), ("output", "h_n"), g)


def test_lstm_cell_module_gradients_match_torch():
    t, d = torch.nn.LSTMCell(3, 5, dtype=torch.float64), nn.LSTMCell(3, 5, dtype=dagrad.float64)
    _load(d, t)
    g = np.random.default_rng(2)
    arrays = [g.standard_normal((4, 3)), g.standard_normal((4, 5)), g.standard_normal((4, 5))]
    tin = [torch.tensor(a, requires_grad=True) for a in arrays]
    din = [dagrad.tensor(a, requires_grad=True) for a in arrays]
    touts, douts = t(tin[0], (tin[1], tin[2])), d(din[0], (din[1], din[2]))
    _check_against_torch(t, d, tin, din, touts, douts, ("h", "c"), g)


# ----------------------------------------------------------------------------- one GEMM over time

def test_a_weight_shared_over_steps_gets_one_product_and_torchs_gradient():
    # An Elman recurrence through linear: w_hh's 9 per-step contributions become one product.
    g = np.random.default_rng(7)
    xs, h0, w, wx = g.standard_normal((9, 3, 4)), g.standard_normal((3, 5)), g.standard_normal((5, 5)) * 0.4, \
        g.standard_normal((5, 4)) * 0.4

    def run(F, lib, tensor):
        W, WX, H = tensor(w), tensor(wx), tensor(h0)
        h, total = H, 0
        for t in range(9):
            h = lib.tanh(F.linear(h, W) + F.linear(tensor(xs[t], False), WX))
            total = total + (h * tensor(np.cos(np.arange(15.0) + t).reshape(3, 5), False)).sum()
        total.backward()
        return W.grad, WX.grad, H.grad

    got = run(DF, dagrad, lambda a, rg=True: dagrad.tensor(a, requires_grad=rg))
    ref = run(torch.nn.functional, torch, lambda a, rg=True: torch.tensor(a, requires_grad=rg))
    for name, a, b in zip(("w", "wx", "h0"), got, ref):
        assert_same(a, b, TOL64, f"gradient of {name}")


def test_products_of_other_shapes_are_summed_as_before():
    # Contributions of different operand shapes (a weight used on batches of 2 and of 3 rows) are
    # not stacked; mixed with a non-product contribution they are not either.
    g = np.random.default_rng(8)
    w = g.standard_normal((4, 3))
    a, b = g.standard_normal((2, 3)), g.standard_normal((3, 3))
    wd, wt = dagrad.tensor(w, requires_grad=True), torch.tensor(w, requires_grad=True)
    for W, F, T in ((wd, DF, dagrad.tensor), (wt, torch.nn.functional, torch.tensor)):
        (F.linear(T(a), W).sin().sum() + F.linear(T(b), W).cos().sum() + (W * W).sum()).backward()
    assert_same(wd.grad, wt.grad, TOL64, "gradient of w")


# ----------------------------------------------------------------------------- compile, threads

def _rnn_train_grads(threads, dtype, fused, compiled=False):
    dagrad.set_num_threads(threads)
    dagrad._core._set_fusion_enabled(fused)
    dagrad.manual_seed(0)
    net = nn.LSTM(5, 16, num_layers=2, bidirectional=True, dtype=dtype)
    head = nn.Linear(32, 3, dtype=dtype)
    cell = nn.RNN(5, 8, dtype=dtype)
    gru = nn.GRU(5, 8, num_layers=2, batch_first=True, dtype=dtype)
    params = [*net.parameters(), *head.parameters(), *cell.parameters(), *gru.parameters()]
    g = np.random.default_rng(1)
    x = dagrad.tensor(g.standard_normal((12, 6, 5)), dtype=dtype)
    y = dagrad.tensor(g.integers(0, 3, size=6))

    def step(x, y):
        for p in params:
            p.grad = None
        out, _ = net(x)
        loss = DF.cross_entropy(head(out[-1]), y) + cell(x)[0].tanh().mean() + gru(x)[1].sin().sum()
        loss.backward()
        return loss

    run = dagrad.compile(step) if compiled else step
    losses = [to_np(run(x, y)) for _ in range(2)]
    return losses + [to_np(p.grad) for p in params]


@pytest.mark.parametrize("dtype", [dagrad.float32, dagrad.float64], ids=["float32", "float64"])
def test_rnn_steps_are_bitwise_the_same_at_1_to_8_threads_fused_or_not(dtype, restore_threads):
    prev = dagrad._core._fusion_enabled()
    try:
        ref = _rnn_train_grads(1, dtype, True)
        assert all(np.isfinite(r).all() for r in ref)
        for fused in (True, False):
            for n in (1, 2, 4, 8):
                for a, b in zip(ref, _rnn_train_grads(n, dtype, fused)):
                    assert a.tobytes() == b.tobytes(), f"differs at {n} threads, fusion {fused}"
    finally:
        dagrad._core._set_fusion_enabled(prev)


def test_compiled_rnn_step_matches_eager(restore_threads):
    eager = _rnn_train_grads(1, dagrad.float64, True)
    for n in (1, 2):
        compiled = _rnn_train_grads(n, dagrad.float64, True, compiled=True)
        for a, b in zip(eager, compiled):
            np.testing.assert_allclose(b, a, rtol=1e-12, atol=1e-14)
