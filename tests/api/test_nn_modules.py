"""dagrad.nn modules against PyTorch (the reference) and numpy.

Each layer test builds the same architecture in both libraries, copies PyTorch's weights into
dagrad through ``load_state_dict`` of the numpy-converted state, runs both in float64 and
compares the outputs, the input gradients and every parameter gradient under a random output
gradient (not ``.sum()``). Tolerances are float64 ones; do not loosen them.
"""
import math
from collections import OrderedDict

import numpy as np
import pytest

import dagrad
from dagrad import nn
from torch_helpers import TOL64 as TOL, assert_same, to_np

torch = pytest.importorskip("torch")


# ----------------------------------------------------------------------------- helpers

def torch_state_as_numpy(tmod):
    return OrderedDict((k, v.detach().numpy().copy()) for k, v in tmod.state_dict().items())


def load_from_torch(dmod, tmod):
    """Copies the torch module's state into the dagrad one; every key must match."""
    res = dmod.load_state_dict(torch_state_as_numpy(tmod))
    assert res.missing_keys == [] and res.unexpected_keys == []


def _flat(out):
    if isinstance(out, (tuple, list)):
        return [o for x in out for o in _flat(x)]
    return [out]


def check_against_torch(dmod, tmod, *arrays, seed=0, copy=True):
    """Forward, input gradients and parameter gradients of dmod vs tmod, in float64.

    Float arrays become inputs that require grad; integer arrays (indices) do not. The
    loss is sum_i (out_i * R_i).sum() over every output tensor, with fixed random R_i.
    """
    tmod.double()
    dmod.double()
    if copy:
        load_from_torch(dmod, tmod)
    t_in, d_in = [], []
    for a in arrays:
        if a is None:
            t_in.append(None)
            d_in.append(None)
            continue
        a = np.asarray(a)
        is_float = a.dtype.kind == "f"
        if is_float:
            a = a.astype(np.float64)
        t_in.append(torch.tensor(a, requires_grad=is_float))
        d_in.append(dagrad.tensor(a, requires_grad=is_float))
    t_outs = _flat(tmod(*t_in))
    d_outs = _flat(dmod(*d_in))
    assert len(t_outs) == len(d_outs)
    g = np.random.default_rng(seed + 100)
    t_loss, d_loss = 0.0, None
    for i, (to, do) in enumerate(zip(t_outs, d_outs)):
        assert_same(do, to, TOL, f"output {i}")
        R = g.standard_normal(tuple(to.shape))
        t_loss = t_loss + (to * torch.tensor(R)).sum()
        term = (do * dagrad.tensor(R)).sum()
        d_loss = term if d_loss is None else d_loss + term
    t_loss.backward()
    d_loss.backward()
    for i, (ti, di) in enumerate(zip(t_in, d_in)):
        if ti is not None and ti.requires_grad:
            assert_same(di.grad, ti.grad, TOL, f"gradient of input {i}")
    t_params = dict(tmod.named_parameters())
    d_params = dict(dmod.named_parameters())
    assert list(t_params) == list(d_params)
    for name, tp in t_params.items():
        dp = d_params[name]
        if tp.grad is None:
            assert dp.grad is None or np.all(to_np(dp.grad) == 0), name
        else:
            assert_same(dp.grad, tp.grad, TOL, f"gradient of {name}")
    return d_outs, t_outs


def rand(*shape, seed=0, low=-2.0, high=2.0):
    return np.random.default_rng(seed).uniform(low, high, size=shape)


# ----------------------------------------------------------------------------- Parameter

def test_parameter_is_a_marked_leaf_copy():
    src = dagrad.ones(2, 3, dtype=dagrad.float64) * 2.0  # a non-leaf
    p = nn.Parameter(src)
    assert isinstance(p, nn.Parameter) and isinstance(p, dagrad.Tensor)
    assert p.is_leaf and p.requires_grad and p.dtype == dagrad.float64
    np.testing.assert_array_equal(to_np(p), np.full((2, 3), 2.0))
    assert not isinstance(src, nn.Parameter)
    assert not isinstance(p.detach(), nn.Parameter)
    assert not isinstance(p * 1.0, nn.Parameter)
    q = nn.Parameter(np.zeros(3), requires_grad=False)
    assert isinstance(q, nn.Parameter) and not q.requires_grad and q.dtype == dagrad.float64
    with dagrad.no_grad():
        p.fill_(5.0)
    np.testing.assert_array_equal(to_np(src), np.full((2, 3), 2.0))  # a copy, not shared


# ----------------------------------------------------------------------------- registration

class _Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(dagrad.zeros(3))
        self.register_buffer("stat", dagrad.ones(2))
        self.register_buffer("scratch", dagrad.zeros(1), persistent=False)
        self.body = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
        self.plain = dagrad.zeros(5)  # a plain tensor attribute is not registered
        self.scale = 2.0

    def forward(self, x):
        return self.body(x * self.w) * self.scale


def test_module_registers_parameters_buffers_and_submodules_in_order():
    net = _Net()
    assert [n for n, _ in net.named_parameters()] == [
        "w", "body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"]
    assert [n for n, _ in net.named_buffers()] == ["stat", "scratch"]
    assert [n for n, _ in net.named_children()] == ["body"]
    assert [n for n, _ in net.named_modules()] == ["", "body", "body.0", "body.1", "body.2"]
    assert len(list(net.modules())) == 5 and list(net.children()) == [net.body]
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["w"]
    assert list(net.state_dict().keys()) == [
        "w", "stat", "body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias"]
    assert net.get_submodule("body.2") is net.body[2]
    assert net.get_parameter("body.0.bias") is net.body[0].bias
    assert "plain" not in net._parameters and "plain" not in net._buffers
    assert all(isinstance(p, nn.Parameter) for p in net.parameters())


def test_module_setattr_rules_and_errors():
    net = _Net()
    with pytest.raises(TypeError, match="parameter 'w'"):
        net.w = dagrad.zeros(3)  # a plain tensor cannot replace a parameter
    net.w = None
    assert net.w is None and [n for n, _ in net.named_parameters()][0] == "body.0.weight"
    net.stat = dagrad.zeros(2)  # buffers take plain tensors
    np.testing.assert_array_equal(to_np(net.stat), [0.0, 0.0])
    with pytest.raises(TypeError):
        net.stat = 3.0
    net.body = nn.Identity()
    assert [n for n, _ in net.named_modules()] == ["", "body"]
    del net.body
    assert "body" not in net._modules
    with pytest.raises(AttributeError, match="'_Net' object has no attribute 'nope'"):
        net.nope
    with pytest.raises(KeyError):
        net.register_parameter("a.b", None)
    with pytest.raises(KeyError, match="already exists"):
        net.register_buffer("scale", dagrad.zeros(1))

    class NoInit(nn.Module):
        def __init__(self):
            self.p = nn.Parameter(dagrad.zeros(1))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        NoInit()

    class NoForward(nn.Module):
        pass

    with pytest.raises(NotImplementedError, match="forward"):
        NoForward()(dagrad.ones(1))


def test_shared_parameters_come_once_and_survive_to():
    lin = nn.Linear(3, 3)
    net = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(net.parameters())) == 2
    assert list(net.state_dict().keys()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    net.double()
    assert net[0].weight is net[2].weight and net[0].weight.dtype == dagrad.float64


def test_train_eval_flags_propagate():
    net = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.Dropout(0.5), nn.BatchNorm1d(2)))
    assert all(m.training for m in net.modules())
    assert net.eval() is net
    assert not any(m.training for m in net.modules())
    net.train()
    assert all(m.training for m in net.modules())
    net[1].train(False)
    assert net.training and net[0].training and not net[1][0].training and not net[1][1].training
    with pytest.raises(ValueError):
        net.train("yes")


def test_zero_grad_apply_hooks_requires_grad():
    net = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    net(dagrad.ones(4, 3)).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(to_np(p.grad) == 0) and p.grad.shape == p.shape for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())

    seen = []
    assert net.apply(lambda m: seen.append(type(m).__name__)) is net
    assert seen == ["Linear", "Linear", "Sequential"]

    calls = []
    h = net[0].register_forward_hook(lambda m, args, out: calls.append(out.shape))
    net(dagrad.ones(5, 3))
    h.remove()
    net(dagrad.ones(5, 3))
    assert calls == [(5, 2)]
    with net.register_forward_pre_hook(lambda m, args: (args[0] * 0.0,)):
        np.testing.assert_array_equal(to_np(net(dagrad.ones(2, 3))),
                                      to_np(net(dagrad.zeros(2, 3))))

    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())


def test_to_double_float_convert_parameters_and_float_buffers():
    net = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    assert net.double() is net
    for _, p in net.named_parameters():
        assert isinstance(p, nn.Parameter) and p.dtype == dagrad.float64 and p.requires_grad
    assert net[1].running_mean.dtype == dagrad.float64
    assert net[1].num_batches_tracked.dtype == dagrad.int64
    out = net(dagrad.tensor(rand(5, 3)))
    assert out.dtype == dagrad.float64
    net.to(dagrad.float32)
    assert all(p.dtype == dagrad.float32 for p in net.parameters())
    net.to(dtype=np.float64)
    assert net[0].weight.dtype == dagrad.float64
    net.float()
    assert net[1].running_var.dtype == dagrad.float32
    with pytest.raises(TypeError):
        net.to(dagrad.int64)


def test_sequential_and_modulelist_containers():
    a, b, c = nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)
    seq = nn.Sequential(a, b, c)
    assert len(seq) == 3 and list(seq) == [a, b, c]
    assert seq[0] is a and seq[-1] is c
    sub = seq[1:]
    assert isinstance(sub, nn.Sequential) and list(sub) == [b, c]
    assert list(sub._modules.keys()) == ["1", "2"]  # PyTorch keeps the names
    with pytest.raises(IndexError):
        seq[3]
    seq.append(nn.Sigmoid())
    assert len(seq) == 4 and list(seq.state_dict().keys()) == [
        "0.weight", "0.bias", "2.weight", "2.bias"]
    del seq[1]
    assert list(seq._modules.keys()) == ["0", "1", "2"] and seq[1] is c
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.Tanh())]))
    assert list(named.state_dict().keys()) == ["fc.weight", "fc.bias"]
    assert named.fc is named[0]

    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(2)])
    ml.append(nn.Linear(2, 1))
    ml.extend([nn.ReLU()])
    assert len(ml) == 4 and isinstance(ml[1:], nn.ModuleList) and len(ml[1:]) == 3
    assert ml[-1].__class__ is nn.ReLU
    assert [type(m).__name__ for m in ml] == ["Linear", "Linear", "Linear", "ReLU"]
    assert list(ml.state_dict().keys()) == [f"{i}.{n}" for i in range(3) for n in ("weight", "bias")]

    tml = torch.nn.ModuleList([torch.nn.Linear(2, 2) for _ in range(2)])
    tml.append(torch.nn.Linear(2, 1))
    assert list(ml.state_dict().keys()) == list(tml.state_dict().keys())


# ----------------------------------------------------------------------------- state_dict

def _architectures():
    """(dagrad module, torch module) pairs of the same architecture."""
    def both(fn):
        return fn(nn), fn(torch.nn)
    return [
        both(lambda m: m.Sequential(m.Linear(4, 8), m.ReLU(), m.Linear(8, 3, bias=False))),
        both(lambda m: m.Sequential(m.Conv2d(3, 4, 3, padding=1), m.BatchNorm2d(4), m.ReLU(),
                                    m.MaxPool2d(2), m.Conv2d(4, 4, 3, groups=2, bias=False),
                                    m.Conv1d(4, 2, 3, groups=2), m.Flatten(),
                                    m.Dropout(0.1), m.LayerNorm(16), m.Linear(16, 2))),
        both(lambda m: m.RNN(3, 5, num_layers=2, bidirectional=True)),
        both(lambda m: m.LSTM(3, 6, num_layers=2, proj_size=4, bias=False)),
        both(lambda m: m.GRU(3, 4, batch_first=True)),
        both(lambda m: m.ModuleList([m.Embedding(10, 4, padding_idx=0), m.RNNCell(4, 5),
                                     m.LSTMCell(4, 5), m.GRUCell(4, 5), m.BatchNorm1d(3, affine=False)])),
        both(lambda m: m.CrossEntropyLoss(weight=None)),
    ]


def test_state_dict_keys_and_shapes_equal_torch():
    for dmod, tmod in _architectures():
        dsd, tsd = dmod.state_dict(), tmod.state_dict()
        assert isinstance(dsd, OrderedDict)
        assert list(dsd.keys()) == list(tsd.keys()), type(tmod).__name__
        for k in tsd:
            assert tuple(dsd[k].shape) == tuple(tsd[k].shape), k
            assert not dsd[k].requires_grad, k


def test_loss_weight_is_a_buffer_in_state_dict():
    w = np.array([1.0, 2.0, 0.5])
    d = nn.CrossEntropyLoss(weight=dagrad.tensor(w))
    t = torch.nn.CrossEntropyLoss(weight=torch.tensor(w))
    assert list(d.state_dict().keys()) == list(t.state_dict().keys()) == ["weight"]
    d = nn.BCEWithLogitsLoss(pos_weight=dagrad.tensor(w))
    t = torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w))
    assert list(d.state_dict().keys()) == list(t.state_dict().keys()) == ["pos_weight"]


def test_state_dict_values_share_storage_and_round_trip_to_torch():
    d = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)).double()
    sd = d.state_dict()
    with dagrad.no_grad():
        d[0].weight.fill_(0.5)
    np.testing.assert_array_equal(to_np(sd["0.weight"]), np.full((4, 3), 0.5))
    t = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2)).double()
    t.load_state_dict({k: torch.from_numpy(to_np(v)) for k, v in d.state_dict().items()})
    x = rand(5, 3)
    np.testing.assert_allclose(to_np(d(dagrad.tensor(x))), t(torch.tensor(x)).detach().numpy(), **TOL)


def test_load_state_dict_strict_errors_and_non_strict():
    net = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    good = {k: to_np(v) for k, v in net.state_dict().items()}
    before = {k: to_np(v) for k, v in net.state_dict().items()}

    missing = dict(good)
    del missing["1.bias"]
    with pytest.raises(RuntimeError, match=r'Missing key\(s\) in state_dict: "1.bias"'):
        net.load_state_dict(missing)

    extra = dict(good, **{"2.weight": np.zeros(1)})
    with pytest.raises(RuntimeError, match=r'Unexpected key\(s\) in state_dict: "2.weight"'):
        net.load_state_dict(extra)

    bad = {k: v + 1.0 for k, v in good.items()}
    bad["0.weight"] = np.zeros((3, 3))
    with pytest.raises(RuntimeError, match=r"size mismatch for 0.weight: .*\(3, 3\).*\(3, 2\)"):
        net.load_state_dict(bad)
    with pytest.raises(RuntimeError, match="size mismatch for 0.weight"):
        net.load_state_dict(bad, strict=False)  # shapes are checked even when not strict
    for k, v in net.state_dict().items():  # nothing was copied by the failed loads
        np.testing.assert_array_equal(to_np(v), before[k])

    res = net.load_state_dict({"0.bias": np.arange(3.0), "junk": np.zeros(2)}, strict=False)
    assert res.missing_keys == ["0.weight", "1.weight", "1.bias"]
    assert res.unexpected_keys == ["junk"]
    np.testing.assert_array_equal(to_np(net[0].bias), [0.0, 1.0, 2.0])
    res = net.load_state_dict(good)
    assert tuple(res) == ([], []) and repr(res) == "<All keys matched successfully>"
    p = net[0].weight
    net.load_state_dict({k: dagrad.tensor(v) for k, v in good.items()})
    assert net[0].weight is p  # copied in place, not replaced
    np.testing.assert_array_equal(to_np(net[0].weight), good["0.weight"])
    net.load_state_dict({k: v * 2.0 for k, v in good.items()}, assign=True)
    assert net[0].weight is not p and isinstance(net[0].weight, nn.Parameter)
    assert net[0].weight.requires_grad and net[0].weight.dtype == dagrad.float32
    np.testing.assert_array_equal(to_np(net[0].weight), good["0.weight"] * 2.0)


# ----------------------------------------------------------------------------- repr

def test_repr_matches_torch():
    def build(m):
        return m.Sequential(m.Linear(2, 3), m.ReLU())
    assert repr(build(nn)) == repr(build(torch.nn)) == (
        "Sequential(\n  (0): Linear(in_features=2, out_features=3, bias=True)\n  (1): ReLU()\n)")

    def big(m):
        return m.Sequential(
            m.Conv2d(1, 4, 3, padding=1), m.BatchNorm2d(4), m.MaxPool2d(2),
            m.Conv2d(4, 8, (3, 2), stride=2, dilation=2, groups=2, bias=False),
            m.AvgPool2d(2, padding=1), m.Conv1d(3, 6, 5), m.Flatten(), m.Dropout(0.25),
            m.Sequential(m.Linear(8, 10, bias=False), m.LeakyReLU(0.2), m.GELU(),
                         m.GELU(approximate="tanh")),
            m.ModuleList([m.Tanh(), m.Sigmoid(), m.Softmax(dim=1), m.LogSoftmax(dim=-1),
                          m.Identity()]),
            m.Embedding(10, 3, padding_idx=0), m.LayerNorm((4, 5), eps=1e-6),
            m.BatchNorm1d(7, momentum=None, affine=False), m.RNN(3, 4, 2, batch_first=True),
            m.LSTM(3, 4, bidirectional=True, dropout=0.5, num_layers=2), m.GRU(2, 3, bias=False),
            m.RNNCell(2, 3, nonlinearity="relu"), m.LSTMCell(2, 3), m.GRUCell(2, 3, bias=False),
            m.MSELoss(), m.CrossEntropyLoss(label_smoothing=0.1), m.BCEWithLogitsLoss(),
            m.ELU(), m.Softplus(), m.SiLU(), m.ReLU6(), m.Unflatten(1, (2, 3)),
            m.MaxPool1d(3), m.AvgPool1d(2))
    assert repr(big(nn)) == repr(big(torch.nn))


# ----------------------------------------------------------------------------- layers vs torch

def test_linear_matches_torch():
    check_against_torch(nn.Linear(5, 3), torch.nn.Linear(5, 3), rand(4, 5))
    check_against_torch(nn.Linear(5, 3, bias=False), torch.nn.Linear(5, 3, bias=False),
                        rand(2, 4, 5, seed=1))
    lin = nn.Linear(5, 3)
    assert lin.weight.shape == (3, 5) and lin.bias.shape == (3,)
    assert lin.weight.dtype == dagrad.float32


@pytest.mark.parametrize("kw", [
    dict(),
    dict(stride=2, padding=1),
    dict(groups=2, dilation=2, padding=2),
    dict(groups=4, bias=False, stride=3),
    dict(padding="same", dilation=1),
    dict(padding="valid"),
])
def test_conv1d_matches_torch(kw):
    check_against_torch(nn.Conv1d(4, 8, 3, **kw), torch.nn.Conv1d(4, 8, 3, **kw), rand(2, 4, 11))


@pytest.mark.parametrize("kw", [
    dict(kernel_size=3),
    dict(kernel_size=3, stride=2, padding=1),
    dict(kernel_size=(3, 2), groups=2, padding=(1, 2), dilation=(2, 1)),
    dict(kernel_size=2, groups=4, bias=False, stride=(1, 2)),
    dict(kernel_size=(4, 3), padding="same"),  # even kernel: asymmetric padding
])
@pytest.mark.filterwarnings("ignore:Using padding='same'")
def test_conv2d_matches_torch(kw):
    check_against_torch(nn.Conv2d(4, 8, **kw), torch.nn.Conv2d(4, 8, **kw), rand(2, 4, 9, 8))


def test_pools_and_flatten_match_torch():
    x = rand(2, 3, 8, 7)
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
               dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1))):
        check_against_torch(nn.MaxPool2d(**kw), torch.nn.MaxPool2d(**kw), x)
    for kw in (dict(kernel_size=2), dict(kernel_size=3, stride=2, padding=1),
               dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)):
        check_against_torch(nn.AvgPool2d(**kw), torch.nn.AvgPool2d(**kw), x)
    check_against_torch(nn.MaxPool1d(3, stride=2, padding=1),
                        torch.nn.MaxPool1d(3, stride=2, padding=1), rand(2, 3, 9))
    check_against_torch(nn.AvgPool1d(2), torch.nn.AvgPool1d(2), rand(2, 3, 9))
    check_against_torch(nn.Flatten(), torch.nn.Flatten(), x)
    check_against_torch(nn.Flatten(0, 2), torch.nn.Flatten(0, 2), x)
    check_against_torch(nn.Unflatten(1, (2, 2)), torch.nn.Unflatten(1, (2, 2)), rand(3, 4, 2))


def test_embedding_matches_torch():
    idx = np.array([[1, 2, 0, 4], [4, 3, 2, 1], [0, 0, 9, 4]])
    check_against_torch(nn.Embedding(10, 3), torch.nn.Embedding(10, 3), idx)
    d, t = nn.Embedding(10, 3, padding_idx=0), torch.nn.Embedding(10, 3, padding_idx=0)
    np.testing.assert_array_equal(to_np(d.weight)[0], np.zeros(3))  # padding row zeroed at init
    check_against_torch(d, t, idx)
    np.testing.assert_array_equal(to_np(d.weight.grad)[0], np.zeros(3))
    e = nn.Embedding(5, 2, padding_idx=-1)
    assert e.padding_idx == 4
    pre = nn.Embedding.from_pretrained(dagrad.ones(4, 2))
    assert pre.weight.shape == (4, 2) and not pre.weight.requires_grad


def test_embedding_init_is_standard_normal():
    dagrad.manual_seed(0)
    w = to_np(nn.Embedding(400, 100).weight)
    assert abs(w.mean()) < 0.02 and abs(w.std() - 1.0) < 0.02


def test_layernorm_matches_torch():
    check_against_torch(nn.LayerNorm(6), torch.nn.LayerNorm(6), rand(3, 4, 6))
    # Non-trivial affine parameters: copied from a torch module whose weight/bias we set.
    t = torch.nn.LayerNorm((4, 6), eps=1e-3)
    with torch.no_grad():
        t.weight.copy_(torch.tensor(rand(4, 6, seed=5)))
        t.bias.copy_(torch.tensor(rand(4, 6, seed=6)))
    check_against_torch(nn.LayerNorm((4, 6), eps=1e-3), t, rand(3, 4, 6, seed=2))
    check_against_torch(nn.LayerNorm(6, elementwise_affine=False),
                        torch.nn.LayerNorm(6, elementwise_affine=False), rand(5, 6, seed=3))
    check_against_torch(nn.LayerNorm(6, bias=False), torch.nn.LayerNorm(6, bias=False),
                        rand(5, 6, seed=4))


def _bn_steps(dmod, tmod, shapes):
    """Two training steps then an eval step; outputs, grads and running stats each time."""
    tmod.double()
    dmod.double()
    with torch.no_grad():
        if tmod.weight is not None:
            tmod.weight.copy_(torch.tensor(rand(tmod.num_features, seed=11, low=0.5, high=1.5)))
            tmod.bias.copy_(torch.tensor(rand(tmod.num_features, seed=12)))
    load_from_torch(dmod, tmod)
    for step, shape in enumerate(shapes):
        x = rand(*shape, seed=20 + step) * (step + 1) + step
        dmod.zero_grad()
        tmod.zero_grad()
        check_against_torch(dmod, tmod, x, seed=step, copy=False)
        for name, tb in tmod.named_buffers():
            db = dict(dmod.named_buffers())[name]
            if name == "num_batches_tracked":
                assert db.item() == tb.item() == step + 1
            else:
                assert_same(db, tb, TOL, f"step {step}: buffer {name}")
    dmod.eval()
    tmod.eval()
    x = rand(*shapes[0], seed=99)
    check_against_torch(dmod, tmod, x, copy=False)
    assert dict(dmod.named_buffers()).get("num_batches_tracked", dagrad.tensor(2)).item() == 2


def test_batchnorm1d_train_then_eval_matches_torch():
    _bn_steps(nn.BatchNorm1d(4), torch.nn.BatchNorm1d(4), [(8, 4), (5, 4)])
    _bn_steps(nn.BatchNorm1d(3, momentum=0.3), torch.nn.BatchNorm1d(3, momentum=0.3),
              [(4, 3, 5), (2, 3, 7)])


def test_batchnorm2d_train_then_eval_matches_torch():
    _bn_steps(nn.BatchNorm2d(3), torch.nn.BatchNorm2d(3), [(2, 3, 4, 5), (3, 3, 2, 2)])
    # momentum=None: cumulative moving average (1 / num_batches_tracked).
    _bn_steps(nn.BatchNorm2d(3, momentum=None), torch.nn.BatchNorm2d(3, momentum=None),
              [(2, 3, 4, 5), (3, 3, 2, 2)])


def test_batchnorm_without_affine_or_running_stats_matches_torch():
    d = nn.BatchNorm1d(4, affine=False, track_running_stats=False)
    t = torch.nn.BatchNorm1d(4, affine=False, track_running_stats=False)
    assert d.running_mean is None and list(d.state_dict()) == []
    check_against_torch(d, t, rand(6, 4))
    d.eval()
    t.eval()
    check_against_torch(d, t, rand(6, 4, seed=3))  # still the batch statistics
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(4)(dagrad.ones(2, 4))


def test_dropout_train_and_eval():
    x = dagrad.tensor(rand(200, 50, low=0.5, high=1.5), requires_grad=True)
    drop = nn.Dropout(0.3)
    dagrad.manual_seed(7)
    y = to_np(drop(x))
    dagrad.manual_seed(7)
    y2 = drop(x)
    np.testing.assert_array_equal(y, to_np(y2))  # repeatable under manual_seed
    kept = y != 0
    assert abs(1 - kept.mean() - 0.3) < 0.02
    np.testing.assert_allclose(y[kept], to_np(x)[kept] / 0.7, **TOL)
    y2.sum().backward()
    np.testing.assert_allclose(to_np(x.grad), kept / 0.7, **TOL)
    drop.eval()
    assert drop(x) is x
    with pytest.raises(ValueError):
        nn.Dropout(1.5)


@pytest.mark.parametrize("mk", [
    lambda m: m.ReLU(), lambda m: m.Tanh(), lambda m: m.Sigmoid(), lambda m: m.GELU(),
    lambda m: m.GELU(approximate="tanh"), lambda m: m.LeakyReLU(0.2), lambda m: m.ELU(0.7),
    lambda m: m.Softplus(beta=2.0), lambda m: m.SiLU(), lambda m: m.Softmax(dim=1),
    lambda m: m.LogSoftmax(dim=-1), lambda m: m.Identity(), lambda m: m.ReLU6(),
])
def test_activations_match_torch(mk):
    x = rand(4, 5, seed=3, low=-7.0, high=7.0)
    x[np.abs(x) < 1e-3] = 0.5  # away from the kinks
    check_against_torch(mk(nn), mk(torch.nn), x)


def test_sequential_mlp_matches_torch_and_trains_identically():
    def build(m):
        return m.Sequential(m.Linear(6, 16), m.Tanh(), m.Linear(16, 16), m.GELU(), m.Linear(16, 4))
    d, t = build(nn), build(torch.nn)
    check_against_torch(d, t, rand(8, 6))
    x, y = rand(10, 6, seed=4), np.random.default_rng(5).integers(0, 4, size=10)
    dl, tl = nn.CrossEntropyLoss(), torch.nn.CrossEntropyLoss()
    for _ in range(3):  # plain SGD, the same in both
        d.zero_grad()
        t.zero_grad()
        dloss = dl(d(dagrad.tensor(x)), dagrad.tensor(y))
        tloss = tl(t(torch.tensor(x)), torch.tensor(y))
        np.testing.assert_allclose(dloss.item(), tloss.item(), **TOL)
        dloss.backward()
        tloss.backward()
        with dagrad.no_grad():
            for p in d.parameters():
                p -= p.grad * 0.5
        with torch.no_grad():
            for p in t.parameters():
                p -= p.grad * 0.5
    for (name, tp), (dname, dp) in zip(t.named_parameters(), d.named_parameters()):
        assert name == dname
        assert_same(dp, tp, TOL, name)


# ----------------------------------------------------------------------------- recurrent

@pytest.mark.parametrize("batch_first", [False, True])
def test_rnn_tanh_two_layers_matches_torch(batch_first):
    kw = dict(num_layers=2, batch_first=batch_first)
    x = rand(3, 5, 4) if batch_first else rand(5, 3, 4)
    check_against_torch(nn.RNN(4, 6, **kw), torch.nn.RNN(4, 6, **kw), x)
    h0 = rand(2, 3, 6, seed=1, low=-0.9, high=0.9)
    check_against_torch(nn.RNN(4, 6, **kw), torch.nn.RNN(4, 6, **kw), x, h0)


def test_rnn_variants_match_torch():
    kw = dict(nonlinearity="relu", bidirectional=True, num_layers=2, bias=False)
    check_against_torch(nn.RNN(3, 5, **kw), torch.nn.RNN(3, 5, **kw), rand(6, 2, 3, seed=2))
    # Unbatched input (L, H_in) with a 2-d h0.
    check_against_torch(nn.RNN(3, 5), torch.nn.RNN(3, 5), rand(4, 3, seed=3),
                        rand(1, 5, seed=4, low=-0.5, high=0.5))


@pytest.mark.parametrize("kw", [
    dict(num_layers=2),
    dict(num_layers=2, batch_first=True, bidirectional=True),
    dict(proj_size=3, num_layers=2),
])
def test_lstm_matches_torch(kw):
    x = rand(3, 5, 4) if kw.get("batch_first") else rand(5, 3, 4)
    check_against_torch(nn.LSTM(4, 6, **kw), torch.nn.LSTM(4, 6, **kw), x)


def test_lstm_with_initial_state_matches_torch():
    d, t = nn.LSTM(4, 6, num_layers=2), torch.nn.LSTM(4, 6, num_layers=2)
    t.double()
    d.double()
    load_from_torch(d, t)
    x, h0, c0 = rand(5, 3, 4), rand(2, 3, 6, seed=1) * 0.5, rand(2, 3, 6, seed=2) * 0.5
    tout, (th, tc) = t(torch.tensor(x), (torch.tensor(h0), torch.tensor(c0)))
    dout, (dh, dc) = d(dagrad.tensor(x), (dagrad.tensor(h0), dagrad.tensor(c0)))
    assert_same(dout, tout, TOL, "output")
    assert_same(dh, th, TOL, "h_n")
    assert_same(dc, tc, TOL, "c_n")
    with pytest.raises(RuntimeError, match="input_size"):
        d(dagrad.tensor(rand(5, 3, 2)))


def test_gru_matches_torch():
    check_against_torch(nn.GRU(4, 5, num_layers=2, bidirectional=True),
                        torch.nn.GRU(4, 5, num_layers=2, bidirectional=True), rand(6, 2, 4))
    check_against_torch(nn.GRU(4, 5, batch_first=True), torch.nn.GRU(4, 5, batch_first=True),
                        rand(2, 6, 4), rand(1, 2, 5, seed=3))


def test_cells_match_torch():
    x, h = rand(3, 4), rand(3, 5, seed=1, low=-1.0, high=1.0)
    c = rand(3, 5, seed=2, low=-1.0, high=1.0)
    check_against_torch(nn.GRUCell(4, 5), torch.nn.GRUCell(4, 5), x, h)
    check_against_torch(nn.GRUCell(4, 5, bias=False), torch.nn.GRUCell(4, 5, bias=False), x)
    check_against_torch(nn.GRUCell(4, 5), torch.nn.GRUCell(4, 5), x[0], h[0])  # unbatched
    check_against_torch(nn.RNNCell(4, 5), torch.nn.RNNCell(4, 5), x, h)
    check_against_torch(nn.RNNCell(4, 5, nonlinearity="relu"),
                        torch.nn.RNNCell(4, 5, nonlinearity="relu"), x, h)

    class Pair(torch.nn.Module):  # torch's LSTMCell takes (h, c) as one argument
        def __init__(self, cell):
            super().__init__()
            self.cell = cell

        def forward(self, x, h, c):
            return self.cell(x, (h, c))

    class DPair(nn.Module):
        def __init__(self, cell):
            super().__init__()
            self.cell = cell

        def forward(self, x, h, c):
            return self.cell(x, (h, c))

    check_against_torch(DPair(nn.LSTMCell(4, 5)), Pair(torch.nn.LSTMCell(4, 5)), x, h, c)


def test_rnn_dropout_between_layers():
    kw = dict(num_layers=3, dropout=0.5)
    d, t = nn.LSTM(4, 5, **kw), torch.nn.LSTM(4, 5, **kw)
    d.eval()
    t.eval()
    x = rand(6, 2, 4)
    check_against_torch(d, t, x)  # no dropout in eval mode
    d.train()
    eval_out = to_np(d.eval()(dagrad.tensor(x))[0])
    d.train()
    dagrad.manual_seed(3)
    a = to_np(d(dagrad.tensor(x))[0])
    dagrad.manual_seed(3)
    b = to_np(d(dagrad.tensor(x))[0])
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, eval_out)


def test_float32_modules_agree_with_float64():
    dagrad.manual_seed(0)
    net = nn.Sequential(nn.Conv1d(3, 4, 3), nn.Tanh(), nn.Flatten(), nn.Linear(12, 2))
    gru = nn.GRU(3, 4, batch_first=True)
    x = rand(2, 3, 5, low=-1.0, high=1.0).astype(np.float32)
    out32 = net(dagrad.tensor(x))
    seq32 = gru(dagrad.tensor(x.transpose(0, 2, 1).copy()))[0]
    assert out32.dtype == seq32.dtype == dagrad.float32
    net.double()
    gru.double()
    out64 = net(dagrad.tensor(x.astype(np.float64)))
    seq64 = gru(dagrad.tensor(x.transpose(0, 2, 1).astype(np.float64)))[0]
    np.testing.assert_allclose(to_np(out32), to_np(out64), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(to_np(seq32), to_np(seq64), rtol=1e-5, atol=1e-6)


def test_rnn_init_range_and_names():
    rnn = nn.LSTM(3, 16, num_layers=2, bidirectional=True)
    bound = 1 / math.sqrt(16)
    for name, p in rnn.named_parameters():
        w = to_np(p)
        assert np.all(np.abs(w) <= bound), name
    assert rnn.weight_ih_l1_reverse.shape == (64, 32)
    assert len(rnn.all_weights) == 4


# ----------------------------------------------------------------------------- losses

def test_loss_modules_match_torch():
    g = np.random.default_rng(3)
    logits = rand(6, 4)
    target = g.integers(0, 4, size=6)
    target[2] = 1
    w = np.array([1.0, 0.5, 2.0, 1.5])
    cases = [
        (lambda m: m.MSELoss(), rand(3, 4), rand(3, 4, seed=1)),
        (lambda m: m.MSELoss(reduction="sum"), rand(3, 4), rand(3, 4, seed=1)),
        (lambda m: m.L1Loss(reduction="none"), rand(3, 4), rand(3, 4, seed=1) + 0.01),
        (lambda m: m.SmoothL1Loss(beta=0.5), rand(3, 4), rand(3, 4, seed=1) + 0.01),
        (lambda m: m.CrossEntropyLoss(), logits, target),
        (lambda m: m.CrossEntropyLoss(weight=m_tensor(m, w), ignore_index=1,
                                      label_smoothing=0.1), logits, target),
        (lambda m: m.NLLLoss(weight=m_tensor(m, w), reduction="sum"), logits, target),
        (lambda m: m.BCELoss(), rand(3, 4, low=0.05, high=0.95), rand(3, 4, seed=2, low=0, high=1)),
        (lambda m: m.BCEWithLogitsLoss(pos_weight=m_tensor(m, w)), rand(3, 4),
         rand(3, 4, seed=2, low=0, high=1)),
    ]
    for mk, inp, tgt in cases:
        d, t = mk(nn), mk(torch.nn)
        t.double()
        d.double()
        ti = torch.tensor(inp, requires_grad=True)
        di = dagrad.tensor(inp, requires_grad=True)
        tout = t(ti, torch.tensor(tgt))
        dout = d(di, dagrad.tensor(tgt))
        assert_same(dout, tout, TOL, repr(t))
        R = np.random.default_rng(0).standard_normal(tuple(tout.shape))
        (tout * torch.tensor(R)).sum().backward()
        (dout * dagrad.tensor(R)).sum().backward()
        assert_same(di.grad, ti.grad, TOL, f"input gradient of {t!r}")


def m_tensor(m, a):
    return torch.tensor(a) if m is torch.nn else dagrad.tensor(a)


# ----------------------------------------------------------------------------- init

def test_calculate_gain_and_fans_match_torch():
    for nl, param in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None),
                      ("relu", None), ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None)]:
        assert nn.init.calculate_gain(nl, param) == pytest.approx(
            torch.nn.init.calculate_gain(nl, param), rel=1e-15)
    with pytest.raises(ValueError):
        nn.init.calculate_gain("nope")
    for shape in [(5, 3), (8, 4, 3), (16, 2, 3, 5)]:
        assert nn.init._calculate_fan_in_and_fan_out(dagrad.zeros(*shape)) == \
            torch.nn.init._calculate_fan_in_and_fan_out(torch.zeros(*shape))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(dagrad.zeros(3))


def test_uniform_kaiming_xavier_statistics():
    dagrad.manual_seed(0)
    w = dagrad.empty(512, 256)
    assert nn.init.kaiming_uniform_(w, a=math.sqrt(5)) is w
    a = to_np(w)
    bound = 1 / math.sqrt(256)  # PyTorch's Linear default: gain sqrt(1/3) * sqrt(3 / fan_in)
    assert np.all(np.abs(a) <= bound) and np.abs(a).max() > 0.999 * bound
    assert abs(a.var() / (bound ** 2 / 3) - 1) < 0.02 and abs(a.mean()) < 0.01 * bound

    w = dagrad.empty(64, 32, 3, 3, dtype=dagrad.float64)
    a = to_np(nn.init.kaiming_normal_(w, mode="fan_out", nonlinearity="relu"))
    assert abs(a.std() / (math.sqrt(2) / math.sqrt(64 * 9)) - 1) < 0.03

    a = to_np(nn.init.kaiming_uniform_(dagrad.empty(300, 200), nonlinearity="relu"))
    b = math.sqrt(2) * math.sqrt(3 / 200)
    assert np.all(np.abs(a) <= b) and np.abs(a).max() > 0.999 * b

    a = to_np(nn.init.xavier_normal_(dagrad.empty(400, 300), gain=2.0))
    assert abs(a.std() / (2.0 * math.sqrt(2 / 700)) - 1) < 0.015 and abs(a.mean()) < 0.01
    a = to_np(nn.init.xavier_uniform_(dagrad.empty(400, 300)))
    b = math.sqrt(6 / 700)
    assert np.all(np.abs(a) <= b) and np.abs(a).max() > 0.999 * b

    a = to_np(nn.init.uniform_(dagrad.empty(1000), -3.0, -1.0))
    assert a.min() >= -3.0 and a.max() < -1.0
    a = to_np(nn.init.normal_(dagrad.empty(20000), 2.0, 0.5))
    assert abs(a.mean() - 2.0) < 0.02 and abs(a.std() - 0.5) < 0.01
    a = to_np(nn.init.trunc_normal_(dagrad.empty(5000), std=1.0, a=-1.0, b=1.0))
    assert a.min() >= -1.0 and a.max() <= 1.0
    np.testing.assert_array_equal(to_np(nn.init.constant_(dagrad.empty(3), 0.25)), [0.25] * 3)
    np.testing.assert_array_equal(to_np(nn.init.ones_(dagrad.empty(2))), [1.0, 1.0])
    np.testing.assert_array_equal(to_np(nn.init.zeros_(dagrad.ones(2))), [0.0, 0.0])
    np.testing.assert_array_equal(to_np(nn.init.eye_(dagrad.empty(2, 3))), np.eye(2, 3))
    q = to_np(nn.init.orthogonal_(dagrad.empty(4, 6, dtype=dagrad.float64)))
    np.testing.assert_allclose(q @ q.T, np.eye(4), atol=1e-12)


def test_init_fills_parameters_in_place():
    lin = nn.Linear(4, 3)
    w = lin.weight
    nn.init.zeros_(lin.weight)
    nn.init.xavier_uniform_(lin.weight)
    assert lin.weight is w and w.requires_grad and w.is_leaf
    assert np.any(to_np(w) != 0)


def test_initialisation_is_reproducible_under_manual_seed():
    def build():
        return nn.Sequential(nn.Conv2d(2, 3, 3), nn.Flatten(), nn.Linear(12, 4), nn.LSTM(4, 3),
                             nn.Embedding(5, 2))

    def values(m):
        return [to_np(v) for v in m.state_dict().values()]

    dagrad.manual_seed(123)
    a = values(build())
    dagrad.manual_seed(123)
    b = values(build())
    dagrad.manual_seed(124)
    c = values(build())
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    assert any(not np.array_equal(x, y) for x, y in zip(a, c) if x.size > 1)

    dagrad.manual_seed(0)
    lin = nn.Linear(7, 5)
    bound = 1 / math.sqrt(7)
    assert np.all(np.abs(to_np(lin.weight)) <= bound) and np.all(np.abs(to_np(lin.bias)) <= bound)
    conv = nn.Conv2d(4, 6, 3, groups=2)
    bound = 1 / math.sqrt(2 * 9)
    assert np.all(np.abs(to_np(conv.weight)) <= bound) and np.all(np.abs(to_np(conv.bias)) <= bound)
