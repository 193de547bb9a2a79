"""dagrad.viz.html (issue #10): the data the explorer embeds and the page it writes. What the page
does in a browser is tested in test_viz_browser.py."""
import importlib
import importlib.resources
import json
import re

import numpy as np
import pytest

import dagrad
from dagrad import viz

H = importlib.import_module("dagrad.viz.html")  # the module (dagrad.viz.html is the function)


def z_graph():
    x = dagrad.tensor(2.0, requires_grad=True)
    w = dagrad.tensor(3.0, requires_grad=True)
    b = dagrad.tensor(1.0, requires_grad=True)
    return x * w + b, x, w, b


def embedded(page):
    """The JSON the page carries, read back as the browser reads it."""
    blob = re.search(r'<script type="application/json" id="dagrad-data">(.*?)</script>', page, re.S).group(1)
    return json.loads(blob)


def by_name(data):
    return {n["name"]: n for n in data["nodes"].values()}


def steps_by_name(data):
    names = {i: n["name"] for i, n in data["nodes"].items()}
    return {names[s["node"]]: s for s in data["backprop"]["steps"]}


def passes(data, step_name):
    names = {i: n["name"] for i, n in data["nodes"].items()}
    return {names[p["to"]]: p["grad"]["text"] for p in steps_by_name(data)[step_name]["passes"]}


def check_z_backprop(data):
    """1 at z, the add passing 1 to both inputs, the multiply giving 3 to x and 2 to w."""
    steps = steps_by_name(data)
    assert data["backprop"]["steps"][0]["node"] == data["outputs"][0] and steps["z"]["root"]
    assert steps["z"]["grad"]["text"] == "1"
    assert passes(data, "z") == {"x * w": "1", "b": "1"}
    assert steps["x * w"]["grad"]["text"] == "1"
    assert passes(data, "x * w") == {"x": "3", "w": "2"}
    assert {k: steps[k]["grad"]["text"] for k in ("x", "w", "b")} == {"x": "3", "w": "2", "b": "1"}
    values = {k: n["value"]["text"] for k, n in by_name(data).items()}
    assert values == {"x": "2", "w": "3", "b": "1", "x * w": "6", "z": "7"}


# ----------------------------------------------------------------------------- the file

def test_html_writes_one_self_contained_file(tmp_path):
    z, x, w, b = z_graph()
    path = tmp_path / "z.html"
    view = viz.html(z, path)
    page = path.read_text(encoding="utf-8")
    assert view.path == path and view.page == page
    assert page.startswith("<!DOCTYPE html>") and page.rstrip().endswith("</html>")
    # inline JS, CSS and data; nothing fetched: no src=, no <link>, no url(...), no http(s) but
    # the SVG namespace (a name, never fetched)
    assert not re.search(r"<script[^>]*\bsrc=|<link\b|@import|url\((?!#)", page)
    assert set(re.findall(r"https?://[^\s\"'`)]+", page)) <= {"http://www.w3.org/2000/svg"}
    for name in H._SCRIPTS:
        assert (importlib.resources.files("dagrad.viz") / "static" / name).read_text(encoding="utf-8") in page
    assert embedded(page) == view.data


def test_static_files_ship_with_the_package():
    # scikit-build-core copies every file under python/dagrad that git does not ignore.
    static = importlib.resources.files("dagrad.viz") / "static"
    for name in (*H._SCRIPTS, "explorer.css"):
        assert (static / name).is_file(), name


def test_embedded_json_cannot_end_the_script_element():
    x = dagrad.tensor(1.0, requires_grad=True)
    view = viz.html(x * 2.0, names={"</script><script>alert(1)</script>": x})
    assert "</script><script>alert(1)" not in view.page
    assert by_name(embedded(view.page))["</script><script>alert(1)</script>"]["kind"] == "variable"


def test_repr_html_is_the_same_page_in_an_iframe():
    z, *_ = z_graph()
    view = viz.html(z)
    r = view._repr_html_()
    assert r.startswith("<iframe srcdoc=") and "&lt;!DOCTYPE html&gt;" in r and "<script" not in r
    assert view.path is None and "5 nodes" in repr(view)


# ----------------------------------------------------------------------------- backprop

def test_z_backprop_before_backward_leaves_grad_alone():
    z, x, w, b = z_graph()
    data = viz.html(z).data
    check_z_backprop(data)
    assert data["note"] is None
    assert x.grad is None and w.grad is None and b.grad is None
    z.backward()  # the graph is still there for the user's backward
    assert (x.grad.item(), w.grad.item(), b.grad.item()) == (3.0, 2.0, 1.0)


def test_after_a_plain_backward_the_page_says_the_graph_was_freed():
    # backward() without retain_graph frees the graph, edges included: the output is what is left.
    z, x, w, b = z_graph()
    z.backward()
    data = viz.html(z).data
    assert list(data["nodes"]) == [str(z._id)] and "retain_graph=True" in data["note"]
    assert data["backprop"]["steps"][0]["grad"]["text"] == "1"
    assert (x.grad.item(), w.grad.item(), b.grad.item()) == (3.0, 2.0, 1.0)  # untouched


def test_z_backprop_after_backward_with_retain_graph():
    z, x, w, b = z_graph()
    z.backward(retain_graph=True)
    check_z_backprop(viz.html(z).data)
    assert (x.grad.item(), w.grad.item(), b.grad.item()) == (3.0, 2.0, 1.0)


def test_fan_in_passes_each_edge_its_share():
    # y = x*x + x: x gets 2x from the multiply (both edges together) and 1 from the add; 2x+1 in all.
    x = dagrad.tensor(3.0, requires_grad=True)
    y = x * x + x
    data = viz.html(y).data
    steps = steps_by_name(data)
    assert steps["x"]["grad"]["text"] == "7"
    assert passes(data, "x * x") == {"x": "6"}
    assert passes(data, "y") == {"x * x": "1", "x": "1"}


def test_backprop_through_an_mlp_matches_autograd():
    dagrad.manual_seed(0)
    model = dagrad.nn.Sequential(dagrad.nn.Linear(3, 4), dagrad.nn.ReLU(), dagrad.nn.Linear(4, 1))
    xb = dagrad.randn(5, 3)
    loss = (model(xb) ** 2).mean()
    data = viz.html(loss).data
    steps = steps_by_name(data)
    w0 = model[0].weight
    (g,) = dagrad.autograd.grad(loss, w0, retain_graph=True)
    assert steps["model.0.weight"]["grad"]["text"] == viz.summarize(g)["text"]
    assert w0.grad is None
    assert by_name(data)["model.0.weight"]["kind"] == "parameter"


def test_names_come_from_the_callers_variables_unless_given():
    z, x, w, b = z_graph()
    assert set(by_name(viz.html(z).data)) == {"x", "w", "b", "x * w", "z"}
    anon = viz.html(z, names={}).data
    assert "x" not in by_name(anon) and len(anon["nodes"]) == 5


def test_a_graph_without_gradients_has_no_backprop():
    view = viz.html(dagrad.ones(3) * 2)
    assert view.data["backprop"] is None and len(view.data["nodes"]) == 3


# ----------------------------------------------------------------------------- profile

def test_profile_of_something_else_draws_what_ran(restore_threads):
    # A profile whose backward is not the one graph(backward=True) rebuilds (here: a second
    # backward, which accumulates into .grad) is drawn from its events.
    z, x, w, b = z_graph()
    z.backward(retain_graph=True)
    with dagrad.profile() as prof:
        z.backward(retain_graph=True)
    data = viz.html(z, profile=prof).data
    ids = set(data["nodes"])
    assert {e["node"] for e in data["profile"]["events"]} <= ids
    assert all(e["src"] in ids and e["dst"] in ids for e in data["edges"])


def test_profile_replay_data(restore_threads):
    dagrad.set_num_threads(2)
    z, x, w, b = z_graph()
    with dagrad.schedule("parallel"), dagrad.profile() as prof:
        z.backward(retain_graph=True)
    data = viz.html(z, profile=prof).data
    events = data["profile"]["events"]
    assert events and data["profile"]["threads"]
    assert {e["pass"] for e in events} == {"forward", "backward"} or {e["pass"] for e in events} == {"backward"}
    for e in events:
        assert 0 <= e["ready"] <= e["start"] <= e["end"] <= data["profile"]["span"]
        assert e["node"] in data["nodes"]  # every node that ran is drawn
    bwd = [n for n in data["nodes"].values() if n["pass"] == "backward"]
    assert len([n for n in bwd if n["op"] == "mul"]) == 2 and data["has_backward"]
    # the backward nodes that ran, named by the gradient they make, with its value
    made = {n["name"]: n["value"]["text"] for n in bwd if n["grad_of"] and n["op"] == "mul"}
    assert made == {"grad of x": "3", "grad of w": "2"}
    assert {e["node"] for e in events if e["pass"] == "backward"} <= {i for i, n in data["nodes"].items()
                                                                      if n["pass"] == "backward"}
    ids = set(data["nodes"])
    assert all(e["src"] in ids and e["dst"] in ids for e in data["edges"])


# ----------------------------------------------------------------------------- history

def linear_fit_history(steps=60, lr=0.1):
    rng = np.random.default_rng(0)
    xs = rng.uniform(-2, 2, 32)
    ys = 3 * xs + 7 + rng.normal(0, 0.1, 32)
    w = dagrad.tensor(0.0, requires_grad=True)
    b = dagrad.tensor(0.0, requires_grad=True)
    x, y = dagrad.tensor(xs), dagrad.tensor(ys)
    opt = dagrad.optim.SGD([w, b], lr=lr)
    history = []
    for _ in range(steps):
        opt.zero_grad()
        loss = ((w * x + b - y) ** 2).mean()
        loss.backward()
        history.append({"loss": loss, "w": w.item(), "b": np.float32(b.item())})
        opt.step()
    return loss, history, xs, ys


def test_history_loss_curve_and_fitted_line():
    loss, history, xs, ys = linear_fit_history()
    data = viz.html(loss, history={"steps": history, "xs": xs, "ys": ys.tolist()}).data
    h = data["history"]
    assert h["loss"] == "loss" and h["keys"] == ["loss", "w", "b"] and h["fit"] == {"w": "w", "b": "b"}
    assert len(h["steps"]) == 60 and h["steps"][0]["step"] == 0
    assert h["steps"][-1]["loss"] < h["steps"][0]["loss"]
    assert abs(h["steps"][-1]["w"] - 3) < 0.3 and h["data"]["xs"] == pytest.approx(list(xs))


def test_history_alone_and_non_finite_losses():
    view = viz.html(None, history=[{"loss": 1.0}, {"loss": float("inf")}, {"loss": float("nan"), "w": [1, 2]}])
    h = view.data["history"]
    assert [s["loss"] for s in h["steps"]] == [1.0, None, None]  # JSON has no inf or NaN
    assert h["keys"] == ["loss"] and h["fit"] is None and not view.data["nodes"]
    json.loads(json.dumps(view.data, allow_nan=False))


def test_history_must_be_dicts():
    with pytest.raises(TypeError, match="one dict per step"):
        viz.html(None, history=[1.0, 2.0])


# ----------------------------------------------------------------------------- 2,000 nodes

def rnn(steps, hidden=4):
    dagrad.manual_seed(0)
    wx = dagrad.randn(hidden, hidden, requires_grad=True)
    wh = dagrad.randn(hidden, hidden, requires_grad=True)
    bias = dagrad.zeros(hidden, requires_grad=True)
    h = dagrad.zeros(1, hidden)
    for _ in range(steps):
        h = (dagrad.randn(1, hidden) @ wx + h @ wh + bias).tanh()
    return h.sum(), {"wx": wx, "wh": wh, "bias": bias}


def test_repeated_steps_collapse_into_a_group():
    out, names = rnn(330)  # 6 nodes a step: about 2,000 nodes
    data = viz.html(out, names=names).data
    n = len(data["nodes"])
    assert 1900 <= n <= 2100 and data["groups"] >= 1
    clusters = data["clusters"]
    # every node sits in exactly one group's children, and the root shows a handful of boxes
    seen = [c for g in clusters.values() for c in g["children"] if c in data["nodes"]]
    assert sorted(seen) == sorted(data["nodes"])
    assert len(clusters["root"]["children"]) < 20
    g0 = clusters["g0"]
    assert g0["size"] >= 1900 and len(g0["children"]) >= 300 and g0["detail"].startswith("each: matmul")
    first = clusters[g0["children"][0]]
    ops = [data["nodes"][i]["op"] for i in first["children"]]
    assert sorted(ops) == sorted(["leaf", "leaf", "matmul", "matmul", "add", "add", "tanh"])  # x_t and h0 too
    for gid, c in clusters.items():  # every child placed
        assert set(c["pos"]) == set(c["children"]), gid


def test_small_graphs_are_not_grouped():
    out, names = rnn(5)
    data = viz.html(out, names=names).data
    assert data["groups"] == 0 and set(data["clusters"]) == {"root"}


def test_an_output_of_several_elements_has_values_and_no_backprop():
    # backward() seeds a one-element output; a vector has no gradient to step through.
    x = dagrad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2
    with dagrad.profile() as prof:
        dagrad.realize(y)
    data = viz.html(y, profile=prof).data
    assert data["backprop"] is None and by_name(data)["y"]["value"]["short"] == "[2, 4]"
    assert [e["node"] for e in data["profile"]["events"]] == [str(y._id)]


def test_a_compiled_step_is_drawn_with_its_schedule_and_buffers():
    w = dagrad.tensor([1.0], requires_grad=True)
    opt = dagrad.optim.SGD([w], lr=0.1)

    @dagrad.compile
    def step(x):
        opt.zero_grad()
        loss = ((w * x) ** 2).sum()
        loss.backward()
        opt.step()
        return loss

    step(dagrad.tensor([1.0]))
    data = viz.html(step).data
    ran = [n for n in data["nodes"].values() if n["op"] != "leaf"]
    assert {n["pass"] for n in ran} == {"forward", "backward"}
    assert sorted(n["step"] for n in ran) == list(range(len(ran)))  # the schedule's order
    assert all(n["buffer"].startswith("b") for n in ran)
    assert by_name(data)["w"]["value"]["short"] == "[0.8]"  # after the step
