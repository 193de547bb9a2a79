"""Learning-rate schedulers against PyTorch's: the same lr sequence, epoch by epoch.

Each test drives a dagrad optimizer (over a dummy dagrad parameter) and a torch optimizer
(over a dummy torch parameter) with the same scheduler and compares get_last_lr() after
construction and after every step, for two parameter groups with different base lrs. The
formulas are PyTorch's own (recursive ones included), evaluated in the same float64
arithmetic, so the sequences must agree to the last bit.
"""
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import dagrad  # noqa: E402

EPOCHS = 30
LRS = (0.1, 0.03)


def make_optimizers(lrs=LRS, cls="SGD", **kwargs):
    dgroups = [{"params": [dagrad.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    tgroups = [{"params": [torch.zeros(2, requires_grad=True)], "lr": lr} for lr in lrs]
    return (getattr(dagrad.optim, cls)(dgroups, lr=lrs[0], **kwargs),
            getattr(torch.optim, cls)(tgroups, lr=lrs[0], **kwargs))


def assert_same_lrs(dsched, tsched, dopt, topt, epoch):
    got, want = dsched.get_last_lr(), tsched.get_last_lr()
    assert got == want, f"epoch {epoch}: dagrad {got} != torch {want}"
    # The optimizer's groups carry the same values (what step() will use).
    assert [g["lr"] for g in dopt.param_groups] == [g["lr"] for g in topt.param_groups]


def run_schedule(make, epochs=EPOCHS, cls="SGD", **opt_kwargs):
    """make(optim_module, optimizer) -> scheduler; steps both like a training loop."""
    dopt, topt = make_optimizers(cls=cls, **opt_kwargs)
    dsched = make(dagrad.optim.lr_scheduler, dopt)
    tsched = make(torch.optim.lr_scheduler, topt)
    assert_same_lrs(dsched, tsched, dopt, topt, 0)
    seen = {tuple(tsched.get_last_lr())}
    for epoch in range(1, epochs + 1):
        dopt.step()
        topt.step()
        dsched.step()
        tsched.step()
        assert_same_lrs(dsched, tsched, dopt, topt, epoch)
        seen.add(tuple(tsched.get_last_lr()))
    # The schedule must actually change the lr, or the comparison proves little.
    assert len(seen) > 2
    return dsched, dopt


SCHEDULES = {
    "StepLR": lambda m, o: m.StepLR(o, step_size=7),
    "StepLR-gamma": lambda m, o: m.StepLR(o, step_size=3, gamma=0.5),
    "MultiStepLR": lambda m, o: m.MultiStepLR(o, milestones=[4, 10, 21], gamma=0.3),
    "MultiStepLR-unsorted-repeated": lambda m, o: m.MultiStepLR(o, milestones=[15, 5, 5, 25]),
    "ExponentialLR": lambda m, o: m.ExponentialLR(o, gamma=0.9),
    "CosineAnnealingLR": lambda m, o: m.CosineAnnealingLR(o, T_max=30),
    # T_max below the number of epochs: past T_max the schedule climbs again (the restart branch).
    "CosineAnnealingLR-restart": lambda m, o: m.CosineAnnealingLR(o, T_max=8, eta_min=1e-3),
    "LambdaLR": lambda m, o: m.LambdaLR(o, lr_lambda=lambda e: 0.95 ** e),
    "LambdaLR-per-group": lambda m, o: m.LambdaLR(
        o, lr_lambda=[lambda e: 1.0 / (1 + e), lambda e: min(1.0, (e + 1) / 5)]),
}


@pytest.mark.parametrize("name", list(SCHEDULES))
def test_schedule_matches_torch(name):
    run_schedule(SCHEDULES[name])


def test_schedule_on_adam_matches_torch():
    run_schedule(SCHEDULES["CosineAnnealingLR-restart"], cls="Adam")


def test_chained_schedulers_match_torch():
    # Two schedulers on one optimizer compose multiplicatively in PyTorch's recursive form.
    dopt, topt = make_optimizers()
    ds = [dagrad.optim.lr_scheduler.ExponentialLR(dopt, gamma=0.95),
          dagrad.optim.lr_scheduler.StepLR(dopt, step_size=5, gamma=0.5)]
    ts = [torch.optim.lr_scheduler.ExponentialLR(topt, gamma=0.95),
          torch.optim.lr_scheduler.StepLR(topt, step_size=5, gamma=0.5)]
    for epoch in range(1, EPOCHS + 1):
        dopt.step()
        topt.step()
        for d, t in zip(ds, ts):
            d.step()
            t.step()
        for d, t in zip(ds, ts):
            assert_same_lrs(d, t, dopt, topt, epoch)


def test_scheduler_sets_initial_lr():
    dopt, _ = make_optimizers()
    dagrad.optim.lr_scheduler.StepLR(dopt, step_size=2)
    assert [g["initial_lr"] for g in dopt.param_groups] == list(LRS)


def test_scheduler_state_dict_resumes():
    # Schedule 12 epochs, save, build a new scheduler on a new optimizer, load, continue: the
    # lrs match an uninterrupted run.
    make = SCHEDULES["CosineAnnealingLR-restart"]
    dopt, _ = make_optimizers()
    sched = make(dagrad.optim.lr_scheduler, dopt)
    lrs = []
    for epoch in range(EPOCHS):
        if epoch == 12:
            sd, osd = sched.state_dict(), dopt.state_dict()
        dopt.step()
        sched.step()
        lrs.append(sched.get_last_lr())
    dopt2, _ = make_optimizers(lrs=(9.0, 9.0))
    dopt2.load_state_dict(osd)
    sched2 = make(dagrad.optim.lr_scheduler, dopt2)
    sched2.load_state_dict(sd)
    for epoch in range(12, EPOCHS):
        dopt2.step()
        sched2.step()
        assert sched2.get_last_lr() == lrs[epoch], f"epoch {epoch + 1}"


def test_lambda_lr_wrong_number_of_lambdas_raises():
    dopt, _ = make_optimizers()
    with pytest.raises(ValueError):
        dagrad.optim.lr_scheduler.LambdaLR(dopt, lr_lambda=[lambda e: 1.0])


# ----------------------------------------------------------------------------- ReduceLROnPlateau

def plateau_metrics(n=EPOCHS, seed=0):
    """Improves, stalls, improves a little (within the threshold), stalls, and rises."""
    g = np.random.default_rng(seed)
    out = []
    for e in range(n):
        if e < 6:
            v = 1.0 - 0.1 * e
        elif e < 14:
            v = 0.5 + 1e-6 * g.standard_normal()
        elif e < 20:
            v = 0.5 - 1e-5 * (e - 13)
        else:
            v = 0.4 + 0.01 * (e - 20)
        out.append(v)
    return out


PLATEAUS = {
    "defaults-patience3": dict(patience=3),
    "factor-cooldown": dict(factor=0.5, patience=2, cooldown=2),
    "abs-threshold": dict(patience=1, threshold=0.05, threshold_mode="abs"),
    "min-lr": dict(factor=0.2, patience=0, min_lr=0.005),
    "min-lr-per-group": dict(factor=0.2, patience=0, min_lr=[0.01, 0.001]),
    "eps-stops-tiny-updates": dict(factor=0.5, patience=0, eps=0.01),
    "max-mode": dict(mode="max", patience=2, factor=0.5),
    "max-mode-abs": dict(mode="max", patience=1, threshold=0.02, threshold_mode="abs"),
}


@pytest.mark.parametrize("name", list(PLATEAUS))
def test_reduce_lr_on_plateau_matches_torch(name):
    kwargs = PLATEAUS[name]
    dopt, topt = make_optimizers()
    dsched = dagrad.optim.lr_scheduler.ReduceLROnPlateau(dopt, **kwargs)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    assert_same_lrs(dsched, tsched, dopt, topt, 0)
    metrics = plateau_metrics()
    if kwargs.get("mode") == "max":
        metrics = [-m for m in metrics]
    seen = set()
    for epoch, m in enumerate(metrics, start=1):
        dopt.step()
        topt.step()
        dsched.step(m)
        tsched.step(m)
        assert_same_lrs(dsched, tsched, dopt, topt, epoch)
        seen.add(tuple(tsched.get_last_lr()))
    assert len(seen) >= 2, "the metrics never triggered a reduction"


def test_reduce_lr_on_plateau_accepts_a_0d_tensor_metric():
    dopt, topt = make_optimizers()
    dsched = dagrad.optim.lr_scheduler.ReduceLROnPlateau(dopt, patience=0)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, patience=0)
    for epoch, m in enumerate([1.0, 1.0, 1.0, 0.5, 0.6], start=1):
        dsched.step(dagrad.tensor(np.float64(m)))
        tsched.step(torch.tensor(m, dtype=torch.float64))
        assert_same_lrs(dsched, tsched, dopt, topt, epoch)


def test_reduce_lr_on_plateau_nan_metric_counts_as_bad_epoch():
    dopt, topt = make_optimizers()
    dsched = dagrad.optim.lr_scheduler.ReduceLROnPlateau(dopt, patience=1)
    tsched = torch.optim.lr_scheduler.ReduceLROnPlateau(topt, patience=1)
    for epoch, m in enumerate([1.0, math.nan, math.nan, math.nan, 0.5], start=1):
        dsched.step(m)
        tsched.step(m)
        assert_same_lrs(dsched, tsched, dopt, topt, epoch)


@pytest.mark.parametrize("kwargs", [dict(factor=1.0), dict(factor=1.5), dict(mode="avg"),
                                    dict(threshold_mode="pct")])
def test_reduce_lr_on_plateau_invalid_arguments_raise(kwargs):
    dopt, topt = make_optimizers()
    with pytest.raises(ValueError):
        torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kwargs)
    with pytest.raises(ValueError):
        dagrad.optim.lr_scheduler.ReduceLROnPlateau(dopt, **kwargs)


def test_scheduled_lr_is_used_by_the_optimizer():
    # ExponentialLR over SGD on f(w) = w (gradient 1): each step moves w by exactly the lr.
    w = dagrad.tensor(np.array([0.0]), requires_grad=True)
    opt = dagrad.optim.SGD([w], lr=0.5)
    sched = dagrad.optim.lr_scheduler.ExponentialLR(opt, gamma=0.5)
    expected = 0.0
    for _ in range(6):
        lr = opt.param_groups[0]["lr"]
        opt.zero_grad()
        w.sum().backward()
        opt.step()
        sched.step()
        expected -= lr
        assert w.numpy()[0] == expected
