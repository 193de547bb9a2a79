"""The playground's logic without a browser: the demos' numbers against independent references
(numpy gradient descent, finite differences, the chain rule by hand), the input checks, the
per-tab sessions, and the app over Starlette's TestClient (HTTP and the WebSocket protocol).

The demos need only dagrad and numpy; the app tests skip, saying why, without the playground
extra or httpx (Starlette's TestClient).
"""
import json
import math
import socket
import subprocess
import sys

import numpy as np
import pytest

import dagrad
from dagrad import playground
from dagrad.playground import _demos
from dagrad.playground._demos import CAPS, InputError, LineFit
from dagrad.playground._session import Session

# ----------------------------------------------------------------------------- input checks


@pytest.mark.parametrize("value, words", [
    ("abc", "threads: 'abc' is not a number"),
    ("", "threads: '' is not a number"),
    ("1.5", "threads: expected a whole number, got 1.5"),
    (0, "threads: 0 is out of range; it takes 1 to"),
    (10 ** 6, "threads: 1000000 is out of range; it takes 1 to"),
    (True, "threads: expected a number, got True"),
    ([2], "threads: expected a number, got list"),
    ("inf", "threads: expected a finite number, got inf"),
    ("nan", "threads: expected a finite number, got nan"),
    (10 ** 400, "threads: 100000000000... is out of range; it takes 1 to"),
])
def test_bad_numbers_are_named(value, words):
    with pytest.raises(InputError) as e:
        _demos.execution({"graph": "wide", "threads": value})
    assert words in str(e.value)


def test_caps_are_enforced_with_the_cap_in_the_message():
    cases = [
        ({"graph": "wide", "branches": CAPS["branches"] + 1}, "branches (K): 17 is out of range; it takes 1 to 16"),
        ({"graph": "wide", "size": 10 ** 9},
         f"matrix size (n): 1000000000 is out of range; it takes 2 to {CAPS['size']}"),
        ({"graph": "mlp", "hidden": CAPS["hidden"] + 1}, "hidden units: 257 is out of range"),
        ({"graph": "mlp", "batch": -1}, "batch: -1 is out of range"),
        ({"graph": "nope"}, "graph: 'nope' is not one of z, wide, mlp"),
        ({"graph": "z", "schedule": "fast"}, "schedule: 'fast' is not one of auto, parallel, serial"),
    ]
    for params, words in cases:
        with pytest.raises(InputError, match=None) as e:
            _demos.execution(params)
        assert words in str(e.value), (params, str(e.value))
    with pytest.raises(InputError, match="learning rate: 100 is out of range"):
        _demos.training_params({"lr": 100})
    with pytest.raises(InputError, match="samples: 5000 is out of range"):
        _demos.training_params({"samples": 5000})
    with pytest.raises(InputError, match="learning rates: 9 given, at most 8"):
        _demos.compare({"rates": ",".join(["0.1"] * 9)})
    with pytest.raises(InputError, match="steps: 5000 is out of range"):
        _demos.compare({"steps": 5000})
    with pytest.raises(InputError, match="x: 1000000000 is out of range; it takes -1000000 to 1000000"):
        _demos.backprop({"inputs": {"x": 1e9}})


# ----------------------------------------------------------------------------- 1. execution


@pytest.mark.parametrize("graph", ["z", "wide", "mlp"])
@pytest.mark.parametrize("threads", [1, 2])
def test_execution_replays_the_profiled_run(graph, threads, restore_threads):
    before = dagrad.get_num_threads()
    r = _demos.execution({"graph": graph, "threads": threads, "schedule": "parallel", "branches": 3, "size": 16,
                          "batch": 8, "hidden": 4})
    assert dagrad.get_num_threads() == before and dagrad.get_schedule() == "auto"  # both put back
    data = r["explorer"]
    events = data["profile"]["events"]
    assert len(events) == r["events"] > 0
    # every node that ran is a node of the graph drawn, and the events say which thread ran it
    for e in events:
        assert e["node"] in data["nodes"]
        assert 0 <= e["thread"] < threads
        assert e["ready"] <= e["start"] <= e["end"]
    assert set(r["threads_used"]) == {e["thread"] for e in events} <= set(range(threads))
    ran = [data["nodes"][i]["op"] for e in events for i in [e["node"]] + e["fused"]]
    if graph == "wide":
        assert ran.count("matmul") == 3 and ran.count("tanh") == 3
        assert sum(1 for n in data["nodes"].values() if n["op"] == "leaf") == 6
    if graph == "z":
        assert {"mul", "add"} <= set(ran) and any(e["pass"] == "backward" for e in events)
    s = r["stats"]
    assert s["span_ns"] <= s["work_ns"] == pytest.approx(sum(e["end"] - e["start"] for e in events))
    assert s["parallelism"] == pytest.approx(s["work_ns"] / s["span_ns"])
    assert s["predicted_low"] <= s["predicted_speedup"] <= s["predicted_high"] <= threads
    assert s["measured_speedup"] == pytest.approx(s["time_1_s"] / s["time_k_s"])
    json.dumps(r, allow_nan=False)  # what the server sends


def test_execution_wide_graph_values_match_numpy():
    # the graph the page draws computes sum_i tanh(A_i @ B_i), with the seed's A_i and B_i
    roots, names, run = _demos._build("wide", {"branches": 3, "size": 8}, seed=0)
    want = sum(np.tanh(names[f"A{i}"].numpy().astype(np.float64) @ names[f"B{i}"].numpy()) for i in range(3))
    run()
    np.testing.assert_allclose(roots[0].numpy(), want, rtol=1e-5, atol=1e-5)


# ----------------------------------------------------------------------------- 2. backprop


def test_backprop_z_default_reads_3_2_1():
    r = _demos.backprop({})
    assert r["grads"] == {"x": 3.0, "w": 2.0, "b": 1.0}
    assert r["output"]["value"] == 7.0
    assert [s["text"] for s in r["forward"]] == ["x * w = mul(x, w) = 6", "z = add(x * w, b) = 7"]
    steps = {r["explorer"]["nodes"][s["node"]]["name"]: s for s in r["backward"]}
    assert "passes the gradient on" in steps["z"]["rule"]
    assert [p["text"] for p in steps["z"]["passes"]] == ["1 × 1 = 1", "1 × 1 = 1"]
    assert "swaps its inputs" in steps["x * w"]["rule"]
    assert [p["text"] for p in steps["x * w"]["passes"]] == ["1 × 3 = 3", "1 × 2 = 2"]
    assert r["chains"]["x"]["text"] == "∂z/∂x = 1 × 3 = 3"
    assert [steps[k]["grad"] for k in ("x", "w", "b")] == [3.0, 2.0, 1.0]


@pytest.mark.parametrize("x, w, b", [(2.0, 3.0, 1.0), (-1.5, 0.25, 4.0), ("0.5", "-2", "7")])
def test_backprop_z_against_the_derivatives(x, w, b):
    r = _demos.backprop({"example": "z", "inputs": {"x": x, "w": w, "b": b}})
    x, w, b = float(x), float(w), float(b)
    assert r["output"]["value"] == pytest.approx(x * w + b, abs=1e-12)
    assert r["grads"] == pytest.approx({"x": w, "w": x, "b": 1.0}, abs=1e-12)


def _net(v):
    h = math.tanh(v["w1"] * v["x"] + v["b1"])
    y = 1.0 / (1.0 + math.exp(-(v["w2"] * h + v["b2"])))
    return (y - v["t"]) ** 2


@pytest.mark.parametrize("inputs", [{}, {"x": -1.2, "w1": 0.7, "b1": 0.3, "w2": -1.1, "b2": 0.4, "t": 0.0}])
def test_backprop_net_against_finite_differences(inputs):
    r = _demos.backprop({"example": "net", "inputs": inputs})
    v = dict(r["inputs"])
    assert r["output"]["value"] == pytest.approx(_net(v), abs=1e-12)
    eps = 1e-6
    for k in ("x", "w1", "b1", "w2", "b2"):
        hi, lo = dict(v), dict(v)
        hi[k] += eps
        lo[k] -= eps
        fd = (_net(hi) - _net(lo)) / (2 * eps)
        assert r["grads"][k] == pytest.approx(fd, abs=1e-8, rel=1e-6), k
        assert r["chains"][k]["value"] == pytest.approx(r["grads"][k], rel=1e-12, abs=1e-15), k
    rules = " ".join(s["rule"] for s in r["backward"])
    assert "multiplies by 1 − tanh²" in rules and "multiplies by σ(1 − σ)" in rules
    for s in r["backward"]:  # the arithmetic written on the page gives what dagrad passed
        for p in s["passes"]:
            assert p["check"] == pytest.approx(p["grad"], rel=1e-12, abs=1e-15)


# ----------------------------------------------------------------------------- 3. training


def _numpy_gd(xs, ys, lrs):
    """Gradient descent on mean((w x + b - y)^2) from w = b = 0; lrs[i] is step i's rate.
    Returns [(loss, w, b)] before each step."""
    w = b = 0.0
    out = []
    for lr in lrs:
        r = w * xs + b - ys
        out.append((float(np.mean(r * r)), w, b))
        gw, gb = float(np.mean(2 * r * xs)), float(np.mean(2 * r))
        w, b = w - lr * gw, b - lr * gb
    return out


def test_line_fit_matches_numpy_gradient_descent_and_takes_a_new_lr_at_once():
    fit = LineFit(n=50, noise=0.3, lr=0.1, seed=0)
    fit.step(20)
    fit.set_lr(0.4)  # the running optimizer's rate: the very next step uses it
    fit.step(20)
    want = _numpy_gd(fit.xs, fit.ys, [0.1] * 20 + [0.4] * 20)
    got = [(r["loss"], r["w"], r["b"]) for r in fit.history]
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    assert [r["lr"] for r in fit.history] == [0.1] * 20 + [0.4] * 20


def test_line_fit_data_and_best_fit():
    fit = LineFit(n=200, noise=0.5, seed=3)
    xs, ys = _demos.training_data(200, 0.5, 3)
    np.testing.assert_array_equal(fit.xs, xs)
    assert np.all(np.abs(xs) <= 1)
    wb = np.polyfit(xs, ys, 1)
    assert (fit.w_star, fit.b_star) == pytest.approx(tuple(wb), rel=1e-10)
    assert fit.loss_star == pytest.approx(np.mean((np.polyval(wb, xs) - ys) ** 2), rel=1e-10)
    assert abs(fit.w_star - 3) < 0.3 and abs(fit.b_star - 7) < 0.2


def _critical_lr(xs):
    """2 / the largest eigenvalue of the loss's Hessian: at this rate a step along that
    eigenvector lands as far on the other side of the minimum (1 - lr * h = -1)."""
    h = 2 * np.array([[np.mean(xs * xs), np.mean(xs)], [np.mean(xs), 1.0]])
    return float(2 / np.linalg.eigvalsh(h).max())


@pytest.mark.parametrize("lr, state", [
    (0.0001, "too slow"),     # the slow direction shrinks by about (1 - lr * 2/3)^2 a step
    (0.05, "converging"),
    (1.0, "oscillating"),     # times the critical rate: it bounces, neither in nor out
    (1.05, "diverging"),
])
def test_states_are_named(lr, state):
    if lr >= 1.0:
        lr *= _critical_lr(_demos.training_data(64, 0.5)[0])
    fit = LineFit(n=64, noise=0.5, lr=lr)
    fit.step(40)
    assert fit.state() == state
    assert fit.summary()["why"] == _demos.STATES[state]


def test_a_good_rate_converges_then_says_so_and_a_huge_one_stops_on_overflow():
    fit = LineFit(n=64, noise=0.5, lr=0.5)
    assert fit.state() == "starting"
    fit.step(3)
    assert fit.state() == "starting"
    fit.step(300)
    assert fit.state() == "converged"
    assert (fit.w.item(), fit.b.item()) == pytest.approx((fit.w_star, fit.b_star), rel=1e-6)
    bad = LineFit(n=64, noise=0.5, lr=10.0)
    taken = bad.step(CAPS["train_steps"])
    assert 10 < len(taken) < 1000 and taken[-1]["loss"] is None
    assert bad.state() == "diverging" and "diverged" in bad.stopped
    assert bad.step(5) == []  # stopped: a reset starts again
    json.dumps(taken, allow_nan=False)


def test_a_run_stops_at_the_step_cap(monkeypatch):
    monkeypatch.setitem(CAPS, "train_steps", 25)
    fit = LineFit(lr=0.1)
    assert len(fit.step(10)) == 10 and len(fit.step(100)) == 15
    assert "cap of 25 steps" in fit.stopped


def test_compare_runs_each_rate_on_the_same_data():
    crit = _critical_lr(_demos.training_data(32, 0.2)[0])
    rates = [0.001, 0.1, crit, 1.05 * crit]
    r = _demos.compare({"rates": ", ".join(repr(x) for x in rates), "steps": 60, "samples": 32, "noise": 0.2})
    assert [run["lr"] for run in r["runs"]] == rates
    assert [run["state"] for run in r["runs"]] == ["too slow", "converging", "oscillating", "diverging"]
    xs, ys = _demos.training_data(32, 0.2)
    for run in r["runs"]:
        want = [loss for loss, _, _ in _numpy_gd(xs, ys, [run["lr"]] * 60)]
        np.testing.assert_allclose(run["losses"], want, rtol=1e-9)


# ----------------------------------------------------------------------------- sessions


def test_sessions_are_independent_and_check_what_they_get():
    a, b = Session(), Session()
    with pytest.raises(InputError, match="press Reset"):
        a.handle({"type": "train.step", "params": {}})
    a.handle({"type": "train.reset", "params": {"samples": 16, "noise": 0, "lr": 0.1}})
    b.handle({"type": "train.reset", "params": {"samples": 16, "noise": 0, "lr": 0.2}})
    a.handle({"type": "train.step", "params": {"steps": 5}})
    assert len(a.fit.history) == 5 and len(b.fit.history) == 0
    assert a.handle({"type": "train.lr", "params": {"lr": "0.3"}})["lr"] == 0.3 and b.fit.lr == 0.2
    with pytest.raises(InputError, match="learning rate: 'fast' is not a number"):
        a.handle({"type": "train.lr", "params": {"lr": "fast"}})
    assert a.fit.lr == 0.3
    with pytest.raises(InputError, match="steps: 51 is out of range"):
        a.handle({"type": "train.step", "params": {"steps": 51}})
    with pytest.raises(InputError, match="unknown request 'rm -rf'"):
        a.handle({"type": "rm -rf", "params": {}})
    with pytest.raises(InputError, match="params: expected a JSON object"):
        a.handle({"type": "backprop", "params": [1]})
    assert a.handle({"type": "train.speed", "params": {"steps_per_tick": 5}}) == {"steps_per_tick": 5}
    assert len(a.train()["steps"]) == 5
    hello = a.handle({"type": "hello"})
    assert hello["caps"] == CAPS and hello["max_threads"] >= 1


# ----------------------------------------------------------------------------- the app


@pytest.fixture
def client():
    for mod in ("starlette", "uvicorn", "websockets"):
        pytest.importorskip(mod, reason=f"the playground extra is not installed ({mod}): "
                                        "pip install 'dagrad[playground]'")
    pytest.importorskip("httpx", reason="Starlette's TestClient needs httpx (pip install httpx)")
    from starlette.testclient import TestClient
    with TestClient(playground.create_app()) as c:
        yield c


def _ask(ws, id_, kind, params=None):
    ws.send_text(json.dumps({"id": id_, "type": kind, "params": params or {}}))
    while True:
        msg = ws.receive_json()
        if msg.get("id") == id_:
            return msg


def test_the_page_and_its_files_are_served_from_the_package(client):
    page = client.get("/")
    assert page.status_code == 200 and "<title>dagrad playground</title>" in page.text
    scripts = [s for s in page.text.split('"') if s.endswith(".js") or s.endswith(".css")]
    assert "/viz/graph.js" in scripts and "/static/app.js" in scripts
    for path in scripts:  # everything the page loads is here: nothing from the network
        assert path.startswith("/"), path
        assert client.get(path).status_code == 200, path
    assert "http" not in page.text.replace("http-equiv", "")
    assert "--op-line: #00897b" in client.get("/theme.css").text  # viz's COLORS
    assert client.get("/health").json() == {"ok": True, "sessions": 0}
    assert client.get("/static/../_app.py").status_code == 404


def test_websocket_requests_errors_and_recovery(client, monkeypatch):
    with client.websocket_connect("/ws") as ws:
        hello = _ask(ws, 1, "hello")
        assert hello["ok"] and hello["data"]["caps"]["branches"] == CAPS["branches"]
        r = _ask(ws, 2, "backprop")
        assert r["ok"] and r["data"]["grads"] == {"x": 3.0, "w": 2.0, "b": 1.0}
        # bad input: a message, and the session goes on
        r = _ask(ws, 3, "execution", {"threads": "lots"})
        assert r == {"id": 3, "type": "execution", "ok": False, "error": "threads: 'lots' is not a number"}
        ws.send_text("{not json")
        assert ws.receive_json()["error"] == "a request must be JSON"
        ws.send_text("[1, 2]")
        assert "JSON object" in ws.receive_json()["error"]
        ws.send_text("x" * (70 * 1024))
        assert "at most 65536" in ws.receive_json()["error"]
        ws.send_bytes(b"\x00\x01")
        assert ws.receive_json()["error"] == "a request is JSON text, not a binary message"
        # a failure inside a run is shown; the next run works
        real = _demos.execution

        def broken(params):
            raise RuntimeError("matmul: the kernel ran out of luck")
        monkeypatch.setattr(_demos, "execution", broken)
        r = _ask(ws, 4, "execution", {"graph": "z"})
        assert r["ok"] is False and r["error"] == "the run failed: RuntimeError: matmul: the kernel ran out of luck"
        monkeypatch.setattr(_demos, "execution", real)
        r = _ask(ws, 5, "execution", {"graph": "z", "threads": 1})
        assert r["ok"] and r["data"]["threads_used"] == [0]
    assert client.get("/health").json()["sessions"] == 0


def test_websocket_play_streams_steps_and_takes_a_new_lr(client):
    with client.websocket_connect("/ws") as ws:
        r = _ask(ws, 1, "train.play", {"samples": 32, "noise": 0.1, "lr": 0.05})
        assert r["ok"] and r["data"]["playing"] and len(r["data"]["data"]["xs"]) == 32
        steps = []
        while len(steps) < 6:
            msg = ws.receive_json()
            if msg["type"] == "train.update":
                steps += msg["data"]["steps"]
        assert [s["step"] for s in steps] == list(range(len(steps)))
        r = _ask(ws, 2, "train.lr", {"lr": 0.5})
        assert r["ok"] and r["data"]["lr"] == 0.5
        later = []
        while not later:
            msg = ws.receive_json()
            if msg["type"] == "train.update":
                later = msg["data"]["steps"]
        assert all(s["lr"] == 0.5 for s in later)  # the running optimizer took it at once
        assert _ask(ws, 3, "train.pause")["data"] == {"playing": False}
        r = _ask(ws, 4, "train.step", {"steps": 3})
        n = r["data"]["summary"]["steps"]
        assert [s["step"] for s in r["data"]["steps"]] == [n - 3, n - 2, n - 1]


def test_websocket_a_diverging_run_stops_and_is_named(client):
    with client.websocket_connect("/ws") as ws:
        assert _ask(ws, 1, "train.speed", {"steps_per_tick": 50})["ok"]
        assert _ask(ws, 2, "train.play", {"lr": 10})["ok"]
        while True:
            msg = ws.receive_json()
            if msg["type"] == "train.stopped":
                break
        assert msg["data"]["state"] == "diverging" and "diverged" in msg["data"]["stopped"]
        r = _ask(ws, 3, "train.play", {"lr": 0.1})  # a stopped run: play starts a new one
        assert r["ok"] and r["data"]["summary"]["steps"] == 0


def test_two_tabs_have_their_own_sessions(client):
    with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
        assert client.get("/health").json()["sessions"] == 2
        _ask(a, 1, "train.reset", {"lr": 0.1})
        _ask(b, 1, "train.reset", {"lr": 0.01})
        _ask(a, 2, "train.step", {"steps": 4})
        rb = _ask(b, 2, "train.step", {"steps": 1})
        assert rb["data"]["summary"]["steps"] == 1 and rb["data"]["summary"]["lr"] == 0.01


# ----------------------------------------------------------------------------- without the extra


def test_without_the_extra_it_says_what_to_install(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "starlette", None)  # import starlette now fails
    with pytest.raises(ImportError, match=r"needs starlette .*pip install 'dagrad\[playground\]'"):
        playground.create_app()
    assert playground.main(["--no-browser"]) == 1
    assert "pip install 'dagrad[playground]'" in capsys.readouterr().err


def test_command_line_checks_the_port():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = subprocess.run([sys.executable, "-m", "dagrad.playground", "--port", str(port), "--no-browser"],
                           capture_output=True, text=True, timeout=60)
    if "needs" not in r.stderr:  # without the extra it says what to install instead
        assert r.returncode == 1 and f"could not serve on 127.0.0.1:{port}" in r.stderr
    r = subprocess.run([sys.executable, "-m", "dagrad.playground", "--port", "70000", "--no-browser"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--port 70000 is not a port" in r.stderr
    r = subprocess.run([sys.executable, "-m", "dagrad.playground", "--help"], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0 and "--no-browser" in r.stdout and "8765" in r.stdout


# ----------------------------------------------------------------------------- 3b. digits


def test_digits_fit_against_numpy():
    fit = _demos.DigitsFit(hidden=16, lr=0.5)
    w1, b1, w2, b2 = [p.numpy().astype(np.float64) for p in fit.model.parameters()]
    x, y = fit.x.numpy().astype(np.float64), fit.y.numpy()
    logits = np.tanh(x @ w1.T + b1) @ w2.T + b2
    logp = logits - logits.max(1, keepdims=True)
    logp -= np.log(np.exp(logp).sum(1, keepdims=True))
    (rec,) = fit.step(1)
    assert rec["loss"] == pytest.approx(-logp[np.arange(len(y)), y].mean(), rel=1e-5)
    assert rec["train_acc"] == pytest.approx((logits.argmax(1) == y).mean())
    xt = fit.x_test.numpy().astype(np.float64)
    test_logits = np.tanh(xt @ w1.T + b1) @ w2.T + b2
    assert rec["test_acc"] == pytest.approx((test_logits.argmax(1) == fit.y_test).mean())
    fit.step(199)
    assert fit.history[-1]["test_acc"] > 0.9 and fit.state() == "converging"


def test_digits_states_and_the_data_without_scikit_learn(monkeypatch):
    slow, wild = _demos.DigitsFit(lr=0.01), _demos.DigitsFit(lr=5.0)
    slow.step(60)
    wild.step(60)
    assert slow.state() == "too slow" and wild.state() == "diverging"
    monkeypatch.setitem(sys.modules, "sklearn", None)
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)
    xtr, ytr, xte, yte, source = _demos.digits_data()
    assert "generated" in source and xtr.shape == (1437, 64) and xte.shape == (360, 64)
    assert set(ytr) == set(range(10)) and 0 <= xtr.min() and xtr.max() <= 1
    s = Session()
    r = s.handle({"type": "train.reset", "params": {"task": "digits", "hidden": 8, "lr": 0.5}})
    assert r["data"]["task"] == "digits" and "generated" in r["data"]["source"]
    assert len(s.handle({"type": "train.step", "params": {"steps": 3}})["steps"]) == 3
    with pytest.raises(InputError, match="hidden units: 500 is out of range"):
        s.handle({"type": "train.reset", "params": {"task": "digits", "hidden": 500}})
    with pytest.raises(InputError, match="task: 'cats' is not one of line, digits"):
        s.handle({"type": "train.reset", "params": {"task": "cats"}})


def test_tabs_past_the_cap_are_told_and_closed(client, monkeypatch):
    from starlette.websockets import WebSocketDisconnect

    from dagrad.playground import _app
    monkeypatch.setattr(_app, "MAX_SESSIONS", 1)
    with client.websocket_connect("/ws") as a:
        assert _ask(a, 1, "hello")["ok"]
        with client.websocket_connect("/ws") as b:
            msg = b.receive_json()
            assert msg["type"] == "error" and "at most 1 tabs at once" in msg["error"]
            with pytest.raises(WebSocketDisconnect):
                b.receive_json()
        assert _ask(a, 2, "backprop")["ok"]  # the first tab is unaffected
