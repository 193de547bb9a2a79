"""The explorer (dagrad.viz.html) in a real browser: Debian's chromium, headless, driven by
Playwright from PyPI (``pip install playwright``; its own browser download is not used).

Skipped, with the reason, where Playwright or chromium is missing (``apt-get install chromium``
and ``pip install playwright``, as .ci/run does). Screenshots go to pytest's tmp_path, or to
$DAGRAD_SCREENSHOTS when it is set; the README's picture, ``docs/explorer.png``, is
``z_backprop.png``:

    DAGRAD_SCREENSHOTS=/tmp/shots python -m pytest tests/api/test_viz_browser.py
    cp /tmp/shots/z_backprop.png docs/explorer.png
"""
import os
import pathlib

import pytest

import dagrad
from browser_helpers import launch_chromium, needs_chromium
from dagrad import viz

sync_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (pip install playwright)")
pytestmark = needs_chromium


@pytest.fixture(scope="module")
def browser():
    yield from launch_chromium(sync_api)


@pytest.fixture
def shots(tmp_path):
    d = pathlib.Path(os.environ.get("DAGRAD_SCREENSHOTS") or tmp_path)
    d.mkdir(parents=True, exist_ok=True)
    return d


class Page:
    """One explorer file open in the browser, with every console message and page error kept."""

    def __init__(self, browser, path, width=1280, height=900):
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.errors = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(pathlib.Path(path).as_uri())
        self.page.wait_for_selector("body[data-ready=true]", timeout=10000)

    def node_ids(self):
        return self.page.eval_on_selector_all("#graph [data-node-id]", "es => es.map(e => e.dataset.nodeId)")

    def states(self):
        return dict(self.page.eval_on_selector_all(
            "#graph [data-node-id]", "es => es.map(e => [e.dataset.nodeId, e.dataset.state])"))

    def slide(self, value):
        self.page.eval_on_selector("#replay", "(e, v) => { e.value = v; e.dispatchEvent(new Event('input')); }",
                                   value)

    def close(self):
        self.page.close()


def z_file(tmp_path):
    dagrad.set_num_threads(2)
    x = dagrad.tensor(2.0, requires_grad=True)
    w = dagrad.tensor(3.0, requires_grad=True)
    b = dagrad.tensor(1.0, requires_grad=True)
    z = x * w + b
    with dagrad.schedule("parallel"), dagrad.profile() as prof:
        z.backward(retain_graph=True)
    path = tmp_path / "z.html"
    return viz.html(z, path, profile=prof, title="z = x * w + b"), path


def mlp_file(tmp_path):
    dagrad.manual_seed(0)
    model = dagrad.nn.Sequential(dagrad.nn.Linear(2, 8), dagrad.nn.ReLU(), dagrad.nn.Linear(8, 1))
    xb, yb = dagrad.randn(16, 2), dagrad.randn(16, 1)
    loss = ((model(xb) - yb) ** 2).mean()
    with dagrad.profile() as prof:
        loss.backward(retain_graph=True)
    path = tmp_path / "mlp.html"
    return viz.html(loss, path, profile=prof, title="a small MLP"), path


def test_z_graph_replay_and_backprop(browser, tmp_path, shots, restore_threads):
    view, path = z_file(tmp_path)
    p = Page(browser, path)
    try:
        assert sorted(p.node_ids()) == sorted(view.data["nodes"])  # every node of the graph is drawn
        p.page.screenshot(path=str(shots / "z_start.png"))

        # the replay: before the run nothing has run; at its end every node that ran is done
        last = int(p.page.get_attribute("#replay", "max"))
        p.slide(0)
        before = p.states()
        ran = {e["node"] for e in view.data["profile"]["events"]}
        assert {before[i] for i in ran} <= {"waiting", "ready"}
        seen, busiest, most = set(), 0, -1
        for k in range(last + 1):
            p.slide(k)
            states = list(p.states().values())
            seen |= set(states)
            if states.count("running") >= most:  # the last of the busiest moments: more is done
                busiest, most = k, states.count("running")
        assert "running" in seen
        assert {p.states()[i] for i in ran} == {"done"}
        p.page.click("#replay-prev")  # a step back from the end: the last node to finish is running
        assert "running" in p.states().values()
        p.page.screenshot(path=str(shots / "z_replay.png"))

        # backprop, node by node: 1 at z; the add passes 1 and 1; the multiply 3 to x and 2 to w
        p.slide(busiest)  # (the replay stays at its busiest moment for the screenshot)
        names = {n["name"]: i for i, n in view.data["nodes"].items()}
        p.page.click("#bp-step")
        assert p.page.text_content(f'#bp-panel tr[data-node-id="{names["z"]}"] .grad') == "1"
        flows = p.page.eval_on_selector_all("#graph .dg-flow .dg-pass text", "es => es.map(e => e.textContent)")
        assert sorted(flows) == ["1", "1"]
        while p.page.get_attribute("#bp-panel", "data-step") != str(len(view.data["backprop"]["steps"])):
            p.page.click("#bp-step")
            current = p.page.text_content("#bp-panel tr.dg-current td")
            if current == "x * w":
                flows = p.page.eval_on_selector_all("#graph .dg-flow .dg-pass text",
                                                    "es => es.map(e => e.textContent)")
                assert sorted(flows) == ["2", "3"]
                text = p.page.text_content("#bp-panel .dg-step")
                assert "passes 3 to x and 2 to w" in text
                p.page.mouse.move(0, 0)
                p.page.locator("#dagrad-explorer").screenshot(path=str(shots / "z_backprop.png"))  # docs/explorer.png
        grads = {k: p.page.text_content(f'#bp-panel tr[data-node-id="{names[k]}"] .grad') for k in ("x", "w", "b")}
        assert grads == {"x": "3", "w": "2", "b": "1"}
        graph_labels = {k: p.page.text_content(f'#graph [data-node-id="{names[k]}"] .dg-grad') for k in ("x", "w", "b")}
        assert graph_labels == {"x": "grad 3", "w": "grad 2", "b": "grad 1"}

        # hover: op, shape, value and gradient
        p.page.hover(f'#graph [data-node-id="{names["x * w"]}"]')
        tip = p.page.text_content(".dg-tip")
        assert "mul" in tip and "value 6" in tip and "grad 1" in tip
        assert p.errors == []
    finally:
        p.close()


def test_mlp_loads_with_every_node_and_a_replay(browser, tmp_path, shots):
    view, path = mlp_file(tmp_path)
    p = Page(browser, path)
    try:
        assert sorted(p.node_ids()) == sorted(view.data["nodes"])
        kinds = p.page.eval_on_selector_all("#graph [data-node-id]", "es => es.map(e => e.getAttribute('class'))")
        assert any("parameter" in k for k in kinds) and any("output" in k for k in kinds)
        p.slide(0)
        start = p.states()
        p.slide(int(p.page.get_attribute("#replay", "max")))
        end = p.states()
        assert start != end and "done" in end.values()
        p.page.click("#bp-all")
        rows = p.page.eval_on_selector_all("#bp-panel tbody tr", "es => es.length")
        assert rows == len(view.data["backprop"]["steps"])
        p.page.click("#zoom-in")
        p.page.click("#zoom-fit")
        p.page.screenshot(path=str(shots / "mlp.png"), full_page=True)
        assert p.errors == []
    finally:
        p.close()


def test_two_thousand_nodes_open_group_by_group(browser, tmp_path, shots):
    dagrad.manual_seed(0)
    wx, wh = dagrad.randn(4, 4, requires_grad=True), dagrad.randn(4, 4, requires_grad=True)
    bias = dagrad.zeros(4, requires_grad=True)
    h = dagrad.zeros(1, 4)
    for _ in range(330):
        h = (dagrad.randn(1, 4) @ wx + h @ wh + bias).tanh()
    out = h.sum()
    view = viz.html(out, tmp_path / "rnn.html", names={"wx": wx, "wh": wh, "bias": bias})
    assert len(view.data["nodes"]) > 1900
    p = Page(browser, view.path)
    try:
        shown = len(p.node_ids())
        assert 0 < shown < 20  # collapsed: the weights, a group, the output
        p.page.click("#bp-step")
        p.page.click("#bp-step")  # the last step's tanh, inside the closed group: the group shows it
        assert p.page.get_attribute('#graph [data-group-id="g0"]', "data-bp") == "current"
        p.page.click("#bp-all")
        p.page.click("#bp-reset")
        p.page.click('#graph [data-group-id="g0"]')
        p.page.click('#graph [data-group-id="g0.1"]')  # the second step, opened
        opened = p.node_ids()
        assert len(opened) > shown and any(view.data["nodes"][i]["op"] == "tanh" for i in opened)
        p.page.screenshot(path=str(shots / "rnn_open.png"))
        p.page.click('#graph .dg-frame[data-group-id="g0"] text')  # closes the group and what is in it
        assert len(p.node_ids()) == shown
        assert p.errors == []
    finally:
        p.close()


def test_training_history_page(browser, tmp_path, shots):
    # f(x) = 3x + 7, fitted by SGD
    xs = [i / 8 - 2 for i in range(33)]
    ys = [3 * x + 7 for x in xs]
    w = dagrad.tensor(0.0, requires_grad=True)
    b = dagrad.tensor(0.0, requires_grad=True)
    x, y = dagrad.tensor(xs), dagrad.tensor(ys)
    opt = dagrad.optim.SGD([w, b], lr=0.1)
    history = []
    for _ in range(60):
        opt.zero_grad()
        loss = ((w * x + b - y) ** 2).mean()
        loss.backward()
        history.append({"loss": loss.item(), "w": w.item(), "b": b.item()})
        opt.step()
    loss = ((w * x + b - y) ** 2).mean()  # the graph of one more step, not run: drawn with every gradient
    view = viz.html(loss, tmp_path / "fit.html", history={"steps": history, "xs": xs, "ys": ys})
    p = Page(browser, view.path)
    try:
        assert p.page.get_attribute("#loss-chart path.loss", "d").count("L") == len(history) - 1
        line = lambda: [p.page.get_attribute("#fit-chart line.fit", a) for a in ("y1", "y2")]  # noqa: E731
        end = line()
        p.page.eval_on_selector("#history-step", "e => { e.value = 0; e.dispatchEvent(new Event('input')); }")
        assert line() != end  # the fitted line moves with the step
        assert "step 0" in p.page.text_content("#history-label")
        p.page.screenshot(path=str(shots / "fit.png"), full_page=True)
        assert p.errors == []
    finally:
        p.close()


def test_jupyter_inline_view_draws_the_graph(browser):
    # What Jupyter shows for the returned view: the page in an iframe (srcdoc), scripts allowed.
    x = dagrad.tensor(2.0, requires_grad=True)
    view = viz.html(x * 3.0 + 1.0)
    page = browser.new_page()
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.set_content(f"<html><body>{view._repr_html_()}</body></html>")
        frame = page.frame_locator("iframe")
        frame.locator("body[data-ready=true]").wait_for(timeout=10000)
        assert frame.locator("#graph [data-node-id]").count() == len(view.data["nodes"])
        assert errors == []
    finally:
        page.close()
