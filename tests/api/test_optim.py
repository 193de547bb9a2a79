"""Optimizers against PyTorch: an MLP trained step by step in float64 with the same initial
weights and data in both frameworks, plus the Optimizer API (param_groups, zero_grad, step
skipping, state_dict round trips) and PyTorch's ValueErrors for invalid hyperparameters.

Tolerance: after every step, every parameter satisfies
``max|p_dagrad - p_torch| <= 1e-9 * max|p_torch|``. Both sides compute the same float64
formulas; a forward/backward pass differs by a few ulps (another summation order), and 50
steps of an optimizer amplify that by at most a few orders of magnitude, so honest
differences stay below ~1e-13 relative. 1e-9 leaves room for that, while a wrong formula
(bias correction, dampening, a missing weight-decay term) is off by 1e-4 or more at once.
"""
import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dagrad  # noqa: E402
import dagrad.nn.functional as DF  # noqa: E402

TF = torch.nn.functional

REL_TOL = 1e-9
SIZES = (8, 16, 16, 4)
STEPS = 50
BATCH = 16


@pytest.fixture(autouse=True, scope="module")
def _torch_one_thread():
    # The reference is tiny; PyTorch's OpenMP pool only adds scheduling noise (and on a
    # two-core machine makes every op take tens of milliseconds).
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


# ----------------------------------------------------------------------------- the model

def init_weights(seed=0, sizes=SIZES):
    """[W1, b1, W2, b2, ...] in float64, PyTorch's (out, in) layout."""
    g = np.random.default_rng(seed)
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        out.append(g.uniform(-1, 1, size=(fan_out, fan_in)) / np.sqrt(fan_in))
        out.append(g.uniform(-1, 1, size=(fan_out,)) / np.sqrt(fan_in))
    return out


def make_batches(loss, seed=1, steps=STEPS, batch=BATCH, sizes=SIZES):
    g = np.random.default_rng(seed)
    xs = [g.standard_normal((batch, sizes[0])) for _ in range(steps)]
    if loss.endswith("ce"):
        ys = [g.integers(0, sizes[-1], size=batch) for _ in range(steps)]
    else:
        ys = [g.standard_normal((batch, sizes[-1])) for _ in range(steps)]
    return xs, ys


def mlp_loss(lib, params, x, y, act, loss):
    """The same MLP in either framework: lib is dagrad or torch."""
    F = DF if lib is dagrad else TF
    h = x
    n = len(params) // 2
    for i in range(n):
        h = F.linear(h, params[2 * i], params[2 * i + 1])
        if i < n - 1:
            h = lib.tanh(h) if act == "tanh" else F.relu(h)
    # "neg-...": the negated loss, for maximize=True (gradient ascent on the negated loss is
    # descent on the loss; ascent on the loss itself diverges, and chaos amplifies rounding).
    value = F.cross_entropy(h, y) if loss.endswith("ce") else F.mse_loss(h, y)
    return -value if loss.startswith("neg-") else value


def dg_params(weights):
    return [dagrad.tensor(w, requires_grad=True) for w in weights]


def th_params(weights):
    return [torch.tensor(w, dtype=torch.float64, requires_grad=True) for w in weights]


def dg_batch(x, y):
    return dagrad.tensor(x), dagrad.tensor(y)


def th_batch(x, y):
    return torch.tensor(x), torch.tensor(y)


def values(params):
    """Copies of the current values (numpy arrays), from either framework."""
    out = []
    for p in params:
        if isinstance(p, torch.Tensor):
            out.append(p.detach().numpy().copy())
        else:
            out.append(np.array(p.numpy(), copy=True))
    return out


def assert_params_close(dp, tp, where):
    for i, (a, b) in enumerate(zip(values(dp), values(tp))):
        assert a.shape == b.shape, f"{where}: parameter {i} shape {a.shape} != torch's {b.shape}"
        assert a.dtype == np.float64, f"{where}: parameter {i} became {a.dtype}"
        err = np.max(np.abs(a - b))
        scale = np.max(np.abs(b))
        assert err <= REL_TOL * scale, (
            f"{where}: parameter {i} (shape {a.shape}) differs from torch by {err:.3e}, "
            f"allowed {REL_TOL:.0e} * {scale:.3e}")


def train_both(dcls, tcls, kwargs, act="tanh", loss="ce", steps=STEPS, seed=0):
    """Trains the same MLP in both frameworks and checks the parameters after every step."""
    weights = init_weights(seed)
    xs, ys = make_batches(loss, seed=seed + 1, steps=steps)
    dp, tp = dg_params(weights), th_params(weights)
    dopt, topt = dcls(dp, **kwargs), tcls(tp, **kwargs)
    for s in range(steps):
        dopt.zero_grad()
        dl = mlp_loss(dagrad, dp, *dg_batch(xs[s], ys[s]), act, loss)
        dl.backward()
        dopt.step()
        topt.zero_grad()
        tl = mlp_loss(torch, tp, *th_batch(xs[s], ys[s]), act, loss)
        tl.backward()
        topt.step()
        assert abs(dl.item() - tl.item()) <= 1e-9 * max(1.0, abs(tl.item())), (
            f"step {s}: loss {dl.item()!r} != torch's {tl.item()!r}")
        assert_params_close(dp, tp, f"{dcls.__name__}({kwargs}) step {s + 1}")
    # The parameters must actually have moved, or the comparison proves nothing.
    moved = max(np.max(np.abs(a - w)) for a, w in zip(values(dp), weights))
    assert moved > 1e-3, f"{dcls.__name__}({kwargs}): parameters barely moved ({moved:.2e})"


# ----------------------------------------------------------------------------- step by step vs torch

# (dagrad class name, kwargs, activation, loss); the torch class has the same name.
CONFIGS = [
    ("SGD", dict(lr=0.1), "tanh", "ce"),
    ("SGD", dict(lr=0.05, momentum=0.9), "tanh", "ce"),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), "relu", "mse"),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.3), "tanh", "ce"),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.05), "relu", "ce"),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01), "tanh", "mse"),
    ("SGD", dict(lr=0.05, momentum=0.5, maximize=True), "tanh", "neg-mse"),
    ("Adam", dict(lr=1e-2), "tanh", "ce"),
    ("Adam", dict(lr=1e-2, betas=(0.8, 0.95), eps=1e-6), "relu", "mse"),
    ("Adam", dict(lr=1e-2, amsgrad=True), "tanh", "ce"),
    ("Adam", dict(lr=1e-2, weight_decay=0.05), "relu", "ce"),
    ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.05), "tanh", "mse"),
    ("Adam", dict(lr=1e-2, maximize=True), "relu", "neg-ce"),
    ("AdamW", dict(lr=1e-2), "tanh", "ce"),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1), "relu", "mse"),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1, amsgrad=True), "tanh", "ce"),
    ("RMSprop", dict(lr=1e-2), "tanh", "ce"),
    ("RMSprop", dict(lr=1e-2, centered=True), "relu", "mse"),
    ("RMSprop", dict(lr=5e-3, momentum=0.9), "tanh", "ce"),
    ("RMSprop", dict(lr=5e-3, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.01), "tanh", "mse"),
    ("RMSprop", dict(lr=5e-3, maximize=True), "tanh", "neg-mse"),
    ("Adagrad", dict(lr=0.1), "tanh", "ce"),
    ("Adagrad", dict(lr=0.1, lr_decay=0.05), "relu", "mse"),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.5), "tanh", "ce"),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1, weight_decay=0.02), "tanh", "mse"),
    ("Adagrad", dict(lr=0.1, maximize=True), "tanh", "neg-mse"),
]


@pytest.mark.parametrize("name,kwargs,act,loss", CONFIGS,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}-{a}-{lo}"
                              for n, kw, a, lo in CONFIGS])
def test_mlp_matches_torch_every_step(name, kwargs, act, loss):
    train_both(getattr(dagrad.optim, name), getattr(torch.optim, name), kwargs, act, loss)


def test_param_groups_with_different_lrs_match_torch():
    weights = init_weights(3)
    xs, ys = make_batches("ce", seed=4, steps=20)
    dp, tp = dg_params(weights), th_params(weights)

    def groups(p):
        # First layer: its own lr and momentum; the rest: the defaults.
        return [{"params": p[:2], "lr": 0.2, "momentum": 0.5}, {"params": p[2:]}]

    dopt = dagrad.optim.SGD(groups(dp), lr=0.01, momentum=0.9)
    topt = torch.optim.SGD(groups(tp), lr=0.01, momentum=0.9)
    assert [g["lr"] for g in dopt.param_groups] == [0.2, 0.01]
    assert [g["momentum"] for g in dopt.param_groups] == [0.5, 0.9]
    assert [len(g["params"]) for g in dopt.param_groups] == [2, 4]
    for s in range(20):
        for opt, lib, p, b in ((dopt, dagrad, dp, dg_batch), (topt, torch, tp, th_batch)):
            opt.zero_grad()
            mlp_loss(lib, p, *b(xs[s], ys[s]), "tanh", "ce").backward()
            opt.step()
        assert_params_close(dp, tp, f"param groups, step {s + 1}")


def test_add_param_group_matches_torch():
    weights = init_weights(5)
    xs, ys = make_batches("mse", seed=6, steps=10)
    dp, tp = dg_params(weights), th_params(weights)
    dopt = dagrad.optim.Adam(dp[:4], lr=1e-2)
    topt = torch.optim.Adam(tp[:4], lr=1e-2)
    dopt.add_param_group({"params": dp[4:], "lr": 0.05, "betas": (0.5, 0.9)})
    topt.add_param_group({"params": tp[4:], "lr": 0.05, "betas": (0.5, 0.9)})
    assert dopt.param_groups[1]["eps"] == 1e-8  # filled in from the defaults
    for s in range(10):
        for opt, lib, p, b in ((dopt, dagrad, dp, dg_batch), (topt, torch, tp, th_batch)):
            opt.zero_grad()
            mlp_loss(lib, p, *b(xs[s], ys[s]), "relu", "mse").backward()
            opt.step()
        assert_params_close(dp, tp, f"add_param_group, step {s + 1}")


def test_param_in_two_groups_raises_value_error():
    w = dagrad.tensor([1.0], requires_grad=True)
    with pytest.raises(ValueError, match="more than one parameter group"):
        dagrad.optim.SGD([{"params": [w]}, {"params": [w]}], lr=0.1)


# ----------------------------------------------------------------------------- zero_grad and step

def quad_setup():
    w = dagrad.tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    return w, dagrad.optim.SGD([w], lr=0.1)


def test_zero_grad_set_to_none_true():
    w, opt = quad_setup()
    (w * w).sum().backward()
    assert w.grad is not None
    opt.zero_grad(set_to_none=True)
    assert w.grad is None


def test_zero_grad_default_sets_to_none_like_torch():
    w, opt = quad_setup()
    (w * w).sum().backward()
    opt.zero_grad()
    assert w.grad is None


def test_zero_grad_set_to_none_false_zeroes_in_place():
    w, opt = quad_setup()
    (w * w).sum().backward()
    held = w.grad
    opt.zero_grad(set_to_none=False)
    assert w.grad is not None
    assert w.grad.shape == (3,) and w.grad.dtype == dagrad.float64
    np.testing.assert_array_equal(w.grad.numpy(), np.zeros(3))
    # In place, as PyTorch: a handle taken before sees the zeros too.
    np.testing.assert_array_equal(held.numpy(), np.zeros(3))
    # The next backward accumulates onto zeros: the fresh gradient, not the old sum.
    (w * 3.0).sum().backward()
    np.testing.assert_array_equal(w.grad.numpy(), np.full(3, 3.0))


def test_zero_grad_on_params_without_grad_is_a_no_op():
    w, opt = quad_setup()
    opt.zero_grad(set_to_none=False)
    assert w.grad is None
    opt.zero_grad(set_to_none=True)
    assert w.grad is None


def test_step_skips_params_without_grad():
    # weight_decay and momentum would move an unused parameter if step() touched it.
    a0, b0, c0 = np.array([1.0, 2.0]), np.array([0.5, -1.5]), np.array([3.0, -4.0])
    da, db, dc = (dagrad.tensor(v, requires_grad=True) for v in (a0, b0, c0))
    ta, tb, tc = (torch.tensor(v, requires_grad=True) for v in (a0, b0, c0))
    dopt = dagrad.optim.SGD([da, db, dc], lr=0.1, momentum=0.9, weight_decay=0.1)
    topt = torch.optim.SGD([ta, tb, tc], lr=0.1, momentum=0.9, weight_decay=0.1)
    for _ in range(3):
        dopt.zero_grad()
        (da * db).sum().backward()
        dopt.step()
        topt.zero_grad()
        (ta * tb).sum().backward()
        topt.step()
    assert dc.grad is None
    np.testing.assert_array_equal(dc.numpy(), c0)
    assert dc not in dopt.state, "step() created state for a parameter without a gradient"
    assert len(dopt.state) == 2
    assert_params_close([da, db, dc], [ta, tb, tc], "skip params without grad")


def test_adam_step_skips_params_without_grad_in_some_steps():
    # A parameter used only every other step: its step counter (and so its bias correction)
    # must count only the steps where it had a gradient, as PyTorch's does.
    a0, b0 = np.array([1.0, -2.0]), np.array([0.3, 0.7])
    da, db = (dagrad.tensor(v, requires_grad=True) for v in (a0, b0))
    ta, tb = (torch.tensor(v, requires_grad=True) for v in (a0, b0))
    dopt = dagrad.optim.Adam([da, db], lr=0.1, weight_decay=0.1)
    topt = torch.optim.Adam([ta, tb], lr=0.1, weight_decay=0.1)
    for s in range(8):
        for opt, a, b in ((dopt, da, db), (topt, ta, tb)):
            opt.zero_grad()
            loss = (a * a).sum() + ((b * a).sum() if s % 2 else 0.0)
            loss.backward()
            opt.step()
        assert_params_close([da, db], [ta, tb], f"step {s + 1}")
    assert float(dopt.state[db]["step"].item()) == 4.0
    assert float(dopt.state[da]["step"].item()) == 8.0


def test_step_with_closure_returns_its_loss():
    w, opt = quad_setup()

    def closure():
        opt.zero_grad()
        loss = (w * w).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == 14.0
    np.testing.assert_allclose(w.numpy(), np.array([1.0, -2.0, 3.0]) * 0.8, rtol=1e-15)


LOSSES_READ_AFTER_STEP = {
    "mul-sum": lambda w, x: (w * w).sum(),
    "linear-sum": lambda w, x: DF.linear(x, w.reshape(1, 3)).sum(),
    "mse": lambda w, x: DF.mse_loss(w, x[0]),
    "tanh-mean": lambda w, x: (dagrad.tanh(x) * w).mean(),
}


@pytest.mark.parametrize("loss_name", list(LOSSES_READ_AFTER_STEP))
def test_loss_read_after_step_is_the_pre_step_value(loss_name):
    # The usual loop: loss.backward(); opt.step(); log(loss.item()). As in PyTorch, the loss
    # was computed before the update: reading it afterwards gives that value, not an error
    # and not the loss of the updated parameters.
    fn = LOSSES_READ_AFTER_STEP[loss_name]
    w0 = np.array([1.0, -2.0, 3.0])
    x0 = np.array([[0.5, 1.5, -1.0], [2.0, -0.5, 0.25]])
    expected = fn(dagrad.tensor(w0), dagrad.tensor(x0)).item()
    w = dagrad.tensor(w0, requires_grad=True)
    opt = dagrad.optim.SGD([w], lr=0.1)
    loss = fn(w, dagrad.tensor(x0))
    loss.backward()
    opt.step()
    assert not np.array_equal(w.numpy(), w0)
    assert loss.item() == expected


def test_lr_change_between_steps_is_used():
    w = dagrad.tensor(np.array([1.0]), requires_grad=True)
    opt = dagrad.optim.SGD([w], lr=0.1)
    (w * 1.0).sum().backward()
    opt.step()
    opt.param_groups[0]["lr"] = 0.5
    opt.step()
    np.testing.assert_allclose(w.numpy(), [1.0 - 0.1 - 0.5], rtol=1e-15)


# ----------------------------------------------------------------------------- state_dict

ROUND_TRIP = [
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    ("Adam", dict(lr=1e-2, amsgrad=True, weight_decay=0.01)),
    ("AdamW", dict(lr=1e-2, weight_decay=0.1)),
    ("RMSprop", dict(lr=5e-3, centered=True, momentum=0.5)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
]


def train_steps(opt, params, xs, ys, steps):
    for s in steps:
        opt.zero_grad()
        mlp_loss(dagrad, params, *dg_batch(xs[s], ys[s]), "tanh", "ce").backward()
        opt.step()


@pytest.mark.parametrize("name,kwargs", ROUND_TRIP, ids=[n for n, _ in ROUND_TRIP])
def test_state_dict_round_trip_continues_identically(name, kwargs):
    cls = getattr(dagrad.optim, name)
    weights = init_weights(7)
    xs, ys = make_batches("ce", seed=8, steps=20)

    # Uninterrupted: 20 steps; the state_dict is taken after 10 (it must be a snapshot, so
    # the 10 steps that follow on this optimizer must not change it).
    p1 = dg_params(weights)
    opt1 = cls(p1, **kwargs)
    train_steps(opt1, p1, xs, ys, range(10))
    sd = opt1.state_dict()
    mid = values(p1)
    train_steps(opt1, p1, xs, ys, range(10, 20))

    # Interrupted: fresh parameters with the values after 10 steps, a fresh optimizer with
    # different hyperparameters, then load_state_dict restores both state and hyperparameters.
    p2 = dg_params(mid)
    opt2 = cls(p2, lr=123.0)
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == kwargs["lr"]
    train_steps(opt2, p2, xs, ys, range(10, 20))

    for i, (a, b) in enumerate(zip(values(p1), values(p2))):
        assert np.array_equal(a, b), (
            f"{name}: parameter {i} after resuming differs by {np.max(np.abs(a - b)):.3e}")


def test_state_dict_layout_is_torchs():
    weights = init_weights(9)
    xs, ys = make_batches("ce", seed=10, steps=2)
    p = dg_params(weights)
    opt = dagrad.optim.SGD([{"params": p[:2]}, {"params": p[2:], "lr": 0.3}], lr=0.1, momentum=0.9)
    train_steps(opt, p, xs, ys, range(2))
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0, 1], [2, 3, 4, 5]]
    assert [g["lr"] for g in sd["param_groups"]] == [0.1, 0.3]
    assert sorted(sd["state"]) == list(range(6))
    buf = sd["state"][3]["momentum_buffer"]
    assert buf.shape == p[3].shape and buf.dtype == dagrad.float64


def test_load_state_dict_rejects_mismatched_groups():
    a = dagrad.tensor([1.0], requires_grad=True)
    b = dagrad.tensor([2.0], requires_grad=True)
    sd = dagrad.optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).state_dict()
    with pytest.raises(ValueError):
        dagrad.optim.SGD([a, b], lr=0.1).load_state_dict(sd)
    sd2 = dagrad.optim.SGD([a, b], lr=0.1).state_dict()
    with pytest.raises(ValueError):
        dagrad.optim.SGD([a], lr=0.1).load_state_dict(sd2)


# ----------------------------------------------------------------------------- invalid arguments

INVALID = [
    ("SGD", dict(lr=-0.1)),
    ("SGD", dict(lr=0.1, momentum=-0.5)),
    ("SGD", dict(lr=0.1, weight_decay=-1e-4)),
    ("SGD", dict(lr=0.1, nesterov=True)),
    ("SGD", dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True)),
    ("Adam", dict(lr=-1e-3)),
    ("Adam", dict(betas=(1.0, 0.999))),
    ("Adam", dict(betas=(-0.1, 0.999))),
    ("Adam", dict(betas=(0.9, 1.0))),
    ("Adam", dict(betas=(0.9, -0.5))),
    ("Adam", dict(eps=-1e-8)),
    ("Adam", dict(weight_decay=-0.1)),
    ("AdamW", dict(lr=-1e-3)),
    ("AdamW", dict(betas=(0.9, 1.5))),
    ("AdamW", dict(eps=-1.0)),
    ("AdamW", dict(weight_decay=-0.01)),
    ("RMSprop", dict(lr=-0.01)),
    ("RMSprop", dict(eps=-1e-8)),
    ("RMSprop", dict(momentum=-0.9)),
    ("RMSprop", dict(weight_decay=-0.1)),
    ("RMSprop", dict(alpha=-0.5)),
    ("Adagrad", dict(lr=-0.01)),
    ("Adagrad", dict(lr_decay=-0.1)),
    ("Adagrad", dict(weight_decay=-0.1)),
    ("Adagrad", dict(initial_accumulator_value=-1.0)),
    ("Adagrad", dict(eps=-1e-10)),
]


@pytest.mark.parametrize("name,kwargs", INVALID,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in kw.items())}" for n, kw in INVALID])
def test_invalid_hyperparameters_raise_value_error(name, kwargs):
    # PyTorch raises ValueError for the same arguments (checked, so this list stays honest).
    with pytest.raises(ValueError):
        getattr(torch.optim, name)([torch.zeros(2, requires_grad=True)], **kwargs)
    with pytest.raises(ValueError):
        getattr(dagrad.optim, name)([dagrad.zeros(2, requires_grad=True)], **kwargs)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_empty_parameter_list_raises_value_error(name):
    with pytest.raises(ValueError):
        getattr(torch.optim, name)([], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        getattr(dagrad.optim, name)([], lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        getattr(dagrad.optim, name)(iter([]), lr=0.1)


def test_single_tensor_instead_of_iterable_raises_type_error():
    with pytest.raises(TypeError):
        dagrad.optim.SGD(dagrad.zeros(2, requires_grad=True), lr=0.1)
