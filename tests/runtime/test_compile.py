"""dagrad.compile against eager execution: a compiled training step (forward, backward,
optimizer step, zero_grad) replayed from its trace must give bitwise the same parameters,
gradients and losses as the same steps run eagerly from the same initial state.

Replay runs the very kernels eager mode runs, on the same data, in the same order, and the
kernels' results do not depend on the thread split, so equality is exact (np.array_equal),
not approximate.
"""
import numpy as np
import pytest

import dagrad
import dagrad.nn.functional as DF

SIZES = (8, 16, 16, 4)
STEPS = 20


def init_weights(seed=0, sizes=SIZES):
    g = np.random.default_rng(seed)
    out = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        out.append(g.uniform(-1, 1, size=(fan_out, fan_in)) / np.sqrt(fan_in))
        out.append(g.uniform(-1, 1, size=(fan_out,)) / np.sqrt(fan_in))
    return out


def batches(steps=STEPS, batch=16, seed=1, sizes=SIZES):
    g = np.random.default_rng(seed)
    return [(g.standard_normal((batch, sizes[0])), g.integers(0, sizes[-1], size=batch))
            for _ in range(steps)]


def forward(params, x, act="tanh"):
    h = x
    n = len(params) // 2
    for i in range(n):
        h = DF.linear(h, params[2 * i], params[2 * i + 1])
        if i < n - 1:
            h = dagrad.tanh(h) if act == "tanh" else DF.relu(h)
    return h


def snapshot(params):
    return [np.array(p.numpy(), copy=True) for p in params]


def grads(params):
    return [None if p.grad is None else np.array(p.grad.numpy(), copy=True) for p in params]


def make_step(params, opt, order, act="tanh"):
    """The training step under test; order is where zero_grad goes ("..._keep": zero_grad
    with set_to_none=False, which zeroes the .grad tensors in place)."""
    set_to_none = not order.endswith("_keep")

    def step(x, y):
        if order.startswith("zero_grad_first"):
            opt.zero_grad(set_to_none=set_to_none)
        loss = DF.cross_entropy(forward(params, x, act), y)
        loss.backward()
        opt.step()
        if order.startswith("zero_grad_last"):
            opt.zero_grad(set_to_none=set_to_none)
        return loss
    return step


def run(compiled, opt_factory, order, data, weights, act="tanh", between=None):
    """Runs the step over data; returns (params, losses, grads, step function, optimizer).

    between(step_index, opt) runs outside the step after each call (a scheduler)."""
    params = [dagrad.tensor(w, requires_grad=True) for w in weights]
    opt = opt_factory(params)
    fn = make_step(params, opt, order, act)
    step = dagrad.compile(fn) if compiled else fn
    losses = []
    for i, (x, y) in enumerate(data):
        loss = step(dagrad.tensor(x), dagrad.tensor(y))
        losses.append(np.array(loss.numpy(), copy=True))
        if between is not None:
            between(i, opt)
    return snapshot(params), losses, grads(params), step, opt


def assert_bitwise_same(eager, compiled, what):
    e_params, e_losses, e_grads = eager[:3]
    c_params, c_losses, c_grads = compiled[:3]
    for i, (a, b) in enumerate(zip(e_params, c_params)):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b), (
            f"{what}: parameter {i} differs from eager by {np.max(np.abs(a - b)):.3e}")
    assert len(e_losses) == len(c_losses)
    for s, (a, b) in enumerate(zip(e_losses, c_losses)):
        assert a.shape == b.shape == () and a.dtype == b.dtype
        assert a.tobytes() == b.tobytes(), f"{what}: loss of step {s}: eager {a!r}, compiled {b!r}"
    for i, (a, b) in enumerate(zip(e_grads, c_grads)):
        assert (a is None) == (b is None), f"{what}: .grad {i} is {a} eagerly but {b} compiled"
        if a is not None:
            assert np.array_equal(a, b), f"{what}: .grad {i} differs from eager"


OPTIMIZERS = {
    "SGD-momentum": lambda p: dagrad.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-3),
    "SGD-nesterov": lambda p: dagrad.optim.SGD(p, lr=0.05, momentum=0.9, nesterov=True),
    "Adam": lambda p: dagrad.optim.Adam(p, lr=1e-2),
    "Adam-amsgrad": lambda p: dagrad.optim.Adam(p, lr=1e-2, amsgrad=True, weight_decay=1e-2),
    "AdamW": lambda p: dagrad.optim.AdamW(p, lr=1e-2),
    "RMSprop-centered": lambda p: dagrad.optim.RMSprop(p, lr=1e-2, centered=True, momentum=0.5),
    "Adagrad": lambda p: dagrad.optim.Adagrad(p, lr=0.1, lr_decay=0.01),
}
ORDERS = ["zero_grad_first", "zero_grad_last", "zero_grad_first_keep", "zero_grad_last_keep"]


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("opt_name", list(OPTIMIZERS))
def test_compiled_steps_equal_eager_bitwise(opt_name, order):
    weights, data = init_weights(0), batches()
    eager = run(False, OPTIMIZERS[opt_name], order, data, weights)
    compiled = run(True, OPTIMIZERS[opt_name], order, data, weights)
    assert_bitwise_same(eager, compiled, f"{opt_name}, {order}")
    # Training actually happened.
    assert max(np.max(np.abs(a - w)) for a, w in zip(eager[0], weights)) > 1e-3
    step = compiled[3]
    assert len(step.traces) == 1, "one input signature should give one trace"


@pytest.mark.parametrize("order", ORDERS)
def test_compiled_step_replays_instead_of_rerunning_python(order):
    # The point of compile: after tracing, calls replay the record without running the
    # Python body. One extra trace is allowed (the first call may start with no .grad and
    # later calls with one), not one per call; otherwise the equality tests above would
    # compare eager with eager.
    weights, data = init_weights(1), batches(seed=2)
    params = [dagrad.tensor(w, requires_grad=True) for w in weights]
    opt = OPTIMIZERS["SGD-momentum"](params)
    body = make_step(params, opt, order)
    runs = []

    def counted(x, y):
        runs.append(1)
        return body(x, y)

    step = dagrad.compile(counted)
    for x, y in data:
        step(dagrad.tensor(x), dagrad.tensor(y))
    assert len(runs) <= 2, f"the Python body ran {len(runs)} times in {len(data)} calls"


@pytest.mark.parametrize("order", ORDERS)
def test_compiled_relu_mlp_equals_eager(order):
    weights, data = init_weights(4), batches(seed=5)
    factory = OPTIMIZERS["SGD-momentum"]
    eager = run(False, factory, order, data, weights, act="relu")
    compiled = run(True, factory, order, data, weights, act="relu")
    assert_bitwise_same(eager, compiled, f"relu, {order}")


def test_optimizer_state_after_compiled_steps_equals_eager():
    weights, data = init_weights(2), batches(seed=3)
    factory = OPTIMIZERS["Adam-amsgrad"]
    eager = run(False, factory, "zero_grad_first", data, weights)
    compiled = run(True, factory, "zero_grad_first", data, weights)
    e_sd, c_sd = eager[4].state_dict(), compiled[4].state_dict()
    assert sorted(e_sd["state"]) == sorted(c_sd["state"])
    for i in e_sd["state"]:
        for k, v in e_sd["state"][i].items():
            assert np.array_equal(v.numpy(), c_sd["state"][i][k].numpy()), f"state {i}.{k}"
    assert float(c_sd["state"][0]["step"].item()) == STEPS


@pytest.mark.parametrize("order", ORDERS)
def test_new_input_shape_retraces_and_matches_eager(order):
    weights = init_weights(6)
    g = np.random.default_rng(7)
    # Batch sizes change: 16, 16, 16, 5, 5, 16, 3, 16 ... (a short last batch, then back).
    sizes = [16, 16, 16, 5, 5, 16, 3, 16, 16, 5]
    data = [(g.standard_normal((n, SIZES[0])), g.integers(0, SIZES[-1], size=n)) for n in sizes]
    factory = OPTIMIZERS["Adam"]

    params = [dagrad.tensor(w, requires_grad=True) for w in weights]
    opt = factory(params)
    step = dagrad.compile(make_step(params, opt, order))
    counts = []
    losses = []
    for x, y in data:
        losses.append(np.array(step(dagrad.tensor(x), dagrad.tensor(y)).numpy(), copy=True))
        counts.append(len(step.traces))
    assert counts[0] == 1
    assert counts[3] == 2, f"a new batch size did not add a trace: {counts}"
    assert counts[6] == 3, f"a third batch size did not add a trace: {counts}"
    assert counts[-1] == 3, f"known shapes should reuse their traces: {counts}"
    compiled = (snapshot(params), losses, grads(params))
    eager = run(False, factory, order, data, weights)
    assert_bitwise_same(eager, compiled, f"changing shapes, {order}")


def test_new_input_dtype_retraces_and_matches_eager():
    def fresh():
        w = dagrad.tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True)
        opt = dagrad.optim.Adam([w], lr=0.1)

        def step(x):
            opt.zero_grad()
            loss = DF.mse_loss(w * x.double(), dagrad.ones(3, dtype=dagrad.float64))
            loss.backward()
            opt.step()
            return loss
        return w, step

    g = np.random.default_rng(17)
    xs = [g.standard_normal(3).astype(np.float64 if i % 3 else np.float32) for i in range(9)]
    w_c, step = fresh()
    step = dagrad.compile(step)
    counts, c_losses = [], []
    for x in xs:
        c_losses.append(step(dagrad.tensor(x)).item())
        counts.append(len(step.traces))
    assert counts == [1, 2, 2, 2, 2, 2, 2, 2, 2], counts
    w_e, eager = fresh()
    e_losses = [eager(dagrad.tensor(x)).item() for x in xs]
    assert c_losses == e_losses
    assert np.array_equal(w_c.numpy(), w_e.numpy())


# ----------------------------------------------------------------------------- lr changes

@pytest.mark.parametrize("opt_name", ["SGD-momentum", "Adam", "Adagrad"])
@pytest.mark.parametrize("order", ORDERS)
def test_scheduler_lr_changes_between_calls_are_honoured(opt_name, order):
    weights, data = init_weights(8), batches(seed=9)
    factory = OPTIMIZERS[opt_name]
    results = []
    for compiled in (False, True):
        scheds = {}

        def between(i, opt):
            if "s" not in scheds:
                scheds["s"] = dagrad.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
            scheds["s"].step()

        results.append(run(compiled, factory, order, data, weights, between=between))
    eager, comp = results
    base_lr = factory([dagrad.zeros(1, requires_grad=True)]).param_groups[0]["lr"]
    assert eager[4].param_groups[0]["lr"] < 0.01 * base_lr, "the schedule did not run"
    assert comp[4].param_groups[0]["lr"] == eager[4].param_groups[0]["lr"]
    assert_bitwise_same(eager, comp, f"{opt_name} with StepLR, {order}")


def test_lr_set_directly_between_calls_is_honoured_and_differs_from_frozen():
    weights, data = init_weights(10), batches(seed=11, steps=10)
    factory = OPTIMIZERS["SGD-momentum"]

    def between(i, opt):
        for g in opt.param_groups:
            g["lr"] = 0.05 if i % 2 else 0.5

    eager = run(False, factory, "zero_grad_first", data, weights, between=between)
    compiled = run(True, factory, "zero_grad_first", data, weights, between=between)
    assert_bitwise_same(eager, compiled, "lr set between calls")
    # Without the changes the result differs, so the check above is not vacuous.
    plain = run(False, factory, "zero_grad_first", data, weights)
    assert not all(np.array_equal(a, b) for a, b in zip(plain[0], eager[0]))


# ----------------------------------------------------------------------------- reading values

@pytest.mark.parametrize("read", ["item", "numpy", "tolist", "float"])
def test_reading_an_intermediate_inside_the_trace_raises(read):
    w = dagrad.tensor(np.array([1.0, 2.0]), requires_grad=True)
    opt = dagrad.optim.SGD([w], lr=0.1)

    def step(x):
        opt.zero_grad()
        h = w * x
        loss = h.sum()
        if read == "item":
            loss.item()
        elif read == "numpy":
            h.numpy()
        elif read == "tolist":
            h.tolist()
        else:
            float(loss)
        loss.backward()
        opt.step()
        return loss

    compiled = dagrad.compile(step)
    with pytest.raises(RuntimeError, match="dagrad.compile") as info:
        compiled(dagrad.tensor(np.array([3.0, 4.0])))
    msg = str(info.value)
    # The message says why: the function is traced once and replayed, so a value read in
    # Python would go stale.
    assert "trace" in msg.lower() and ("replay" in msg.lower() or "once" in msg.lower()), msg

    # The failed trace did not leave dagrad recording: eager code still reads values...
    v = dagrad.tensor(np.array([2.0]))
    assert (v * v).item() == 4.0
    # ...and a fresh compiled function without the read works.
    def clean(x):
        opt.zero_grad()
        loss = DF.mse_loss(w * x, dagrad.zeros(2, dtype=dagrad.float64))
        loss.backward()
        opt.step()
        return loss

    good = dagrad.compile(clean)
    out = good(dagrad.tensor(np.array([1.0, 1.0])))
    assert np.isfinite(out.item())


# ----------------------------------------------------------------------------- return values

def test_multiple_return_values_match_eager():
    weights, data = init_weights(12), batches(seed=13, steps=6)

    def make(params, opt):
        def step(x, y):
            opt.zero_grad()
            logits = forward(params, x)
            loss = DF.cross_entropy(logits, y)
            loss.backward()
            opt.step()
            return {"loss": loss, "logits": logits, "tag": "ok"}
        return step

    outs = []
    for compiled in (False, True):
        params = [dagrad.tensor(w, requires_grad=True) for w in weights]
        opt = OPTIMIZERS["Adam"](params)
        step = make(params, opt)
        if compiled:
            step = dagrad.compile(step)
        got = []
        for x, y in data:
            r = step(dagrad.tensor(x), dagrad.tensor(y))
            assert r["tag"] == "ok"
            got.append((np.array(r["loss"].numpy(), copy=True), np.array(r["logits"].numpy(), copy=True)))
        outs.append(got)
    for s, ((el, eg), (cl, cg)) in enumerate(zip(*outs)):
        assert el.tobytes() == cl.tobytes(), f"step {s}: loss"
        assert np.array_equal(eg, cg), f"step {s}: logits"


def test_returned_tensors_are_not_overwritten_by_later_calls():
    weights, data = init_weights(14), batches(seed=15, steps=4)
    params = [dagrad.tensor(w, requires_grad=True) for w in weights]
    opt = OPTIMIZERS["SGD-momentum"](params)
    step = dagrad.compile(make_step(params, opt, "zero_grad_first"))
    kept = [step(dagrad.tensor(x), dagrad.tensor(y)) for x, y in data]
    eager = run(False, OPTIMIZERS["SGD-momentum"], "zero_grad_first", data, weights)
    for s, (k, e) in enumerate(zip(kept, eager[1])):
        assert np.asarray(k.numpy()).tobytes() == e.tobytes(), f"loss of step {s} changed later"


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
def test_loss_not_needed_by_backward_is_returned_correctly(compiled):
    # loss = mean(x @ w.T): no backward rule needs the value of the linear output or of the
    # mean (d loss / d w needs only x), yet the step must return the loss of the weights it
    # was computed with, before the update, as PyTorch does.
    g = np.random.default_rng(16)
    w0 = g.standard_normal((2, 3))
    data = [g.standard_normal((8, 3)) for _ in range(5)]

    expected, w_np = [], w0.copy()
    for x in data:
        expected.append(np.mean(x @ w_np.T))
        w_np = w_np - 0.1 * np.broadcast_to(x.mean(axis=0), w_np.shape) / w_np.shape[0]

    w = dagrad.tensor(w0, requires_grad=True)
    opt = dagrad.optim.SGD([w], lr=0.1)

    def step(x):
        opt.zero_grad()
        loss = DF.linear(x, w).mean()
        loss.backward()
        opt.step()
        return loss

    if compiled:
        step = dagrad.compile(step)
    got = [step(dagrad.tensor(x)).item() for x in data]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    np.testing.assert_allclose(w.numpy(), w_np, rtol=1e-12)


# ----------------------------------------------------------------------------- mixing with eager code

@pytest.mark.parametrize("order", ORDERS)
def test_eager_code_between_compiled_calls(order):
    # A validation pass under no_grad and an occasional eager training step between compiled
    # calls: the compiled steps see the parameters and optimizer state as eager code left them.
    weights, data = init_weights(18), batches(seed=19, steps=12)
    factory = OPTIMIZERS["Adam"]
    val_x = np.random.default_rng(20).standard_normal((5, SIZES[0]))
    results = []
    for compiled in (False, True):
        params = [dagrad.tensor(w, requires_grad=True) for w in weights]
        opt = factory(params)
        fn = make_step(params, opt, order)
        step = dagrad.compile(fn) if compiled else fn
        losses, vals = [], []
        for i, (x, y) in enumerate(data):
            run_step = fn if i in (4, 9) else step  # steps 4 and 9 run eagerly in both runs
            losses.append(np.array(run_step(dagrad.tensor(x), dagrad.tensor(y)).numpy(), copy=True))
            with dagrad.no_grad():
                vals.append(np.array(forward(params, dagrad.tensor(val_x)).numpy(), copy=True))
        results.append((snapshot(params), losses, grads(params), vals))
    assert_bitwise_same(results[0], results[1], f"eager code in between, {order}")
    for i, (a, b) in enumerate(zip(results[0][3], results[1][3])):
        assert np.array_equal(a, b), f"validation output after step {i}"


def test_load_state_dict_between_compiled_calls():
    # Rewinding the optimizer state (load_state_dict from an earlier snapshot) replaces its
    # state tensors; later compiled steps must use the loaded state, as eager steps do.
    weights, data = init_weights(21), batches(seed=22, steps=12)
    factory = OPTIMIZERS["SGD-momentum"]
    results = []
    for compiled in (False, True):
        params = [dagrad.tensor(w, requires_grad=True) for w in weights]
        opt = factory(params)
        fn = make_step(params, opt, "zero_grad_first")
        step = dagrad.compile(fn) if compiled else fn
        losses = []
        for i, (x, y) in enumerate(data):
            if i == 3:
                snap = opt.state_dict()
            if i == 8:
                opt.load_state_dict(snap)
            losses.append(np.array(step(dagrad.tensor(x), dagrad.tensor(y)).numpy(), copy=True))
        results.append((snapshot(params), losses, grads(params)))
    assert_bitwise_same(results[0], results[1], "load_state_dict between calls")


def test_two_compiled_functions_share_parameters():
    # A train step and an evaluation function, both compiled, over the same parameters.
    weights, data = init_weights(23), batches(seed=24, steps=8)
    results = []
    for compiled in (False, True):
        params = [dagrad.tensor(w, requires_grad=True) for w in weights]
        opt = OPTIMIZERS["SGD-nesterov"](params)
        train = make_step(params, opt, "zero_grad_last")

        def evaluate(x, y):
            with dagrad.no_grad():
                return DF.cross_entropy(forward(params, x), y)

        if compiled:
            train, evaluate = dagrad.compile(train), dagrad.compile(evaluate)
        losses = []
        for x, y in data:
            losses.append(np.array(train(dagrad.tensor(x), dagrad.tensor(y)).numpy(), copy=True))
            losses.append(np.array(evaluate(dagrad.tensor(x), dagrad.tensor(y)).numpy(), copy=True))
        results.append((snapshot(params), losses, grads(params)))
    assert_bitwise_same(results[0], results[1], "train and eval compiled")
