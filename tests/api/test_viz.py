"""dagrad.viz (issue #10): the graph description, its layout, the DOT export and the work/span
statistics. The trace and the profiler's summary are in tests/runtime/test_profiler_trace.py."""
import json
import shutil

import numpy as np
import pytest

import dagrad
from dagrad import viz

GREEN, DARK_GREEN, TEAL, PURPLE, ORANGE = (viz.COLORS[k] for k in ("variable", "parameter", "op", "output",
                                                                   "backward"))


def z_graph():
    x = dagrad.tensor(2.0, requires_grad=True)
    w = dagrad.tensor(3.0, requires_grad=True)
    b = dagrad.tensor(1.0, requires_grad=True)
    return x * w + b, x, w, b


def _by_id(desc):
    return {n["id"]: n for n in desc["nodes"]}


def _kinds(desc):
    kinds = {}
    for n in desc["nodes"]:
        kinds[n["kind"]] = kinds.get(n["kind"], 0) + 1
    return kinds


def _check_well_formed(desc):
    ids = [n["id"] for n in desc["nodes"]]
    assert ids == desc["order"] and len(set(ids)) == len(ids)
    place = {i: k for k, i in enumerate(desc["order"])}
    for e in desc["edges"]:
        assert place[e["src"]] < place[e["dst"]], e  # topological
        assert desc["levels"][e["dst"]] >= desc["levels"][e["src"]] + 1
    for n in desc["nodes"]:
        ins = [e for e in desc["edges"] if e["dst"] == n["id"]]
        expect = 1 + max((desc["levels"][e["src"]] for e in ins), default=-1)
        assert desc["levels"][n["id"]] == expect  # the longest distance from a root
        assert n["kind"] in ("variable", "parameter", "op", "output")
        assert n["pass"] in ("forward", "backward")
    json.dumps(desc)  # plain data


# ----------------------------------------------------------------------------- graph()

def test_graph_of_z_has_three_variables_two_ops_one_output():
    z, x, w, b = z_graph()
    d = viz.graph(z, names={"x": x, "w": w, "b": b})
    _check_well_formed(d)
    assert _kinds(d) == {"variable": 3, "op": 1, "output": 1}
    nodes = _by_id(d)
    assert [nodes[i]["op"] for i in d["order"] if nodes[i]["op"] != "leaf"] == ["mul", "add"]
    assert {nodes[i]["label"] for i in (x._id, w._id, b._id)} == {"x", "w", "b"}
    assert d["outputs"] == [z._id] and nodes[z._id]["op"] == "add"
    mul = next(n["id"] for n in d["nodes"] if n["op"] == "mul")
    assert sorted((e["src"], e["dst"], e["index"]) for e in d["edges"]) == sorted(
        [(x._id, mul, 0), (w._id, mul, 1), (mul, z._id, 0), (b._id, z._id, 1)])
    assert all(e["shape"] == [] for e in d["edges"])
    assert d["levels"] == {x._id: 0, w._id: 0, b._id: 0, mul: 1, z._id: 2}
    assert nodes[x._id]["value"]["values"] == [2.0] and nodes[x._id]["value"]["text"] == "2"
    assert all(n["pass"] == "forward" for n in d["nodes"])


def test_graph_computes_nothing():
    z, x, w, b = z_graph()
    y = z * 2
    d = viz.graph(y, backward=True)
    assert not z._realized and not y._realized
    assert x.grad is None and w.grad is None
    nodes = _by_id(d)
    assert nodes[y._id]["value"] is None and nodes[z._id]["value"] is None
    assert all(n["value"] is None for n in d["nodes"] if n["op"] != "leaf")
    # and what it showed is what runs
    y.backward()
    assert x.grad.item() == 6.0 and y.item() == 14.0


def test_graph_with_backward_has_the_backward_multiplies():
    z, x, w, b = z_graph()
    d = viz.graph(z, backward=True)
    _check_well_formed(d)
    nodes = _by_id(d)
    backward = [n for n in d["nodes"] if n["pass"] == "backward"]
    assert sum(1 for n in backward if n["op"] == "mul") >= 2
    # the forward part is unchanged, and every leaf points at its pending gradient
    assert _kinds({"nodes": [n for n in d["nodes"] if n["pass"] == "forward"]}) == \
        {"variable": 3, "op": 1, "output": 1}
    for leaf in (x, w, b):
        g = nodes[leaf._id]["grad_node"]
        assert nodes[g]["grad_of"] == leaf._id
        assert nodes[g]["shape"] == [] and nodes[g]["pass"] == "backward"
        # a computed gradient has no value yet; b's is the seed itself, dz/dz = 1
        assert nodes[g]["value"] is None if leaf is not b else nodes[g]["value"]["text"] == "1"
    # dz/dx = w and dz/dw = x: each backward multiply reads the other input of the forward one
    reads = {e["dst"]: set() for e in d["edges"]}
    for e in d["edges"]:
        reads[e["dst"]].add(e["src"])
    muls = [n["id"] for n in backward if n["op"] == "mul"]
    assert any(w._id in reads[m] for m in muls) and any(x._id in reads[m] for m in muls)
    assert x.grad is None  # built, not run
    z.backward()
    assert (x.grad.item(), w.grad.item(), b.grad.item()) == (3.0, 2.0, 1.0)


def test_graph_shows_values_and_gradients_once_computed():
    z, x, w, b = z_graph()
    z.backward(retain_graph=True)
    nodes = _by_id(viz.graph(z))
    assert nodes[z._id]["value"]["text"] == "7"
    assert nodes[x._id]["grad"]["values"] == [3.0]
    assert nodes[w._id]["grad"]["values"] == [2.0]
    assert nodes[b._id]["grad"]["values"] == [1.0]


def test_graph_of_a_model_marks_parameters_and_summarizes_large_values():
    dagrad.manual_seed(0)
    model = dagrad.nn.Linear(20, 3)
    x = dagrad.randn(5, 20)
    out = model(x).relu().sum()
    d = viz.graph(out, names=dict(model.named_parameters()))
    _check_well_formed(d)
    nodes = _by_id(d)
    assert nodes[model.weight._id]["kind"] == "parameter" and nodes[model.weight._id]["label"] == "weight"
    assert nodes[x._id]["kind"] == "variable"
    v = nodes[model.weight._id]["value"]
    assert v["numel"] == 60 and v["values"] is None
    np.testing.assert_allclose(v["mean"], model.weight.numpy().mean(), rtol=1e-6)
    assert nodes[out._id]["shape"] == [] and nodes[out._id]["kind"] == "output"


def test_graph_of_several_outputs_and_shared_inputs():
    a = dagrad.ones(3, requires_grad=True)
    u, v = a * 2, a.exp()
    d = viz.graph([u, v])
    _check_well_formed(d)
    assert sorted(d["outputs"]) == sorted([u._id, v._id])
    assert sum(1 for n in d["nodes"] if n["id"] == a._id) == 1
    sq = a * a  # one tensor read twice: two edges
    d = viz.graph(sq)
    assert [e["index"] for e in d["edges"] if e["dst"] == sq._id] == [0, 1]


def test_graph_of_a_long_chain_needs_no_recursion():
    x = dagrad.ones(2)
    y = x
    for _ in range(20000):
        y = y + 1.0
    d = viz.graph(y)
    assert d["levels"][y._id] == 20000
    assert len(viz.layout(d)) == len(d["nodes"])


def test_graph_backward_needs_scalar_outputs_and_a_live_graph():
    x = dagrad.ones(3, requires_grad=True)
    with pytest.raises(ValueError, match=r"one element; got shape \(3,\)"):
        viz.graph(x * 2, backward=True)
    const = dagrad.ones(3) * 2  # no gradient graph: described without one
    assert all(n["pass"] == "forward" for n in viz.graph(const, backward=True)["nodes"])
    z = (x * 2).sum()
    z.backward()
    with pytest.raises(RuntimeError, match=r"backward\(retain_graph=True\)"):
        viz.graph(z, backward=True)


def test_graph_rejects_what_is_not_a_graph():
    with pytest.raises(TypeError, match="expected tensors"):
        viz.graph(3.0)
    with pytest.raises(ValueError, match="at least one tensor"):
        viz.graph()


def test_graph_of_a_compiled_step_in_schedule_order():
    w = dagrad.tensor([1.0, 2.0], requires_grad=True)
    opt = dagrad.optim.SGD([w], lr=0.1)

    @dagrad.compile
    def step(x):
        opt.zero_grad()
        loss = ((w * x) ** 2).sum()
        loss.backward()
        opt.step()
        return loss

    with pytest.raises(ValueError, match="call it once"):
        viz.graph(step)
    step(dagrad.tensor([1.0, 1.0]))
    d = viz.graph(step)
    _check_well_formed(d)
    runs = [e for e in d["schedule"] if e["kind"] == "run"]
    assert runs and all(i in d["levels"] for e in runs for i in e["nodes"])
    ran = [i for e in runs for i in e["nodes"]]
    place = {i: k for k, i in enumerate(ran)}
    for e in d["edges"]:  # the schedule runs every node after its inputs
        if e["src"] in place and e["dst"] in place:
            assert place[e["src"]] < place[e["dst"]]
    nodes = _by_id(d)
    assert any(n["pass"] == "backward" for n in d["nodes"])
    assert [nodes[i]["kind"] for i in d["outputs"]] == ["output"] and nodes[d["outputs"][0]]["shape"] == []
    assert "digraph" in viz.to_dot(step)
    # the seed of the backward pass is read by backward nodes only: it is drawn with them
    seeds = [n for n in d["nodes"] if n["op"] == "leaf" and n["pass"] == "backward"]
    assert seeds and all(not n["requires_grad"] for n in seeds)
    text = viz.to_text(step, names={"w": w})
    lines = text.splitlines()
    assert lines[0].startswith("program: ") and "run" in lines[0]
    listed = [int(line.split()[0][1:]) for line in lines if line.startswith("  #")]
    assert [i for i in listed if i in place] == ran  # schedule order
    assert any(line.split(".")[1].startswith(" grad_set #" + str(w._id)) for line in lines if line[0].isdigit())


def test_to_text_shows_shapes_inputs_and_shared_buffers():
    x = dagrad.ones(2, 3, requires_grad=True)
    y = (x * 2.0).reshape(6)
    assert "buffer of" not in viz.to_text(y)  # no buffers before the run
    dagrad.realize(y)
    text = viz.to_text(y, names={"x": x})
    mul = next(line for line in text.splitlines() if " mul " in line)
    assert "(2, 3)" in mul and f"<- #{x._id} x" in mul
    reshape = next(line for line in text.splitlines() if "reshape" in line)
    assert "(6,)" in reshape and "output" in reshape
    assert reshape.rstrip().endswith(f"[buffer of #{int(mul.split()[0][1:])}]")  # a view shares its buffer


# ----------------------------------------------------------------------------- layout()

def _crossings(desc, pos):
    edges = [(pos[e["src"]], pos[e["dst"]]) for e in desc["edges"]]
    count = 0
    for i, (a, b) in enumerate(edges):
        for c, d in edges[i + 1:]:
            if a[0] == c[0] and b[0] == d[0] and (a[1] - c[1]) * (b[1] - d[1]) < 0:
                count += 1
    return count


def test_layout_is_left_to_right_without_overlaps():
    z, x, w, b = z_graph()
    d = viz.graph(z, backward=True)
    pos = viz.layout(d)
    assert set(pos) == {n["id"] for n in d["nodes"]}
    assert len(set(pos.values())) == len(pos)
    for e in d["edges"]:
        assert pos[e["src"]][0] < pos[e["dst"]][0]
    f = viz.layout(viz.graph(z))
    assert f[x._id][0] == f[w._id][0] == 0 and f[z._id][0] == 2
    assert f[b._id][0] == 1  # a source sits just before its first consumer


def test_layout_orders_layers_to_remove_crossings():
    # Two branches whose sources are listed crosswise: a0 -> b1, a1 -> b0.
    def node(i, op):
        return {"id": i, "op": op, "kind": "op", "shape": [1], "dtype": "float32", "pass": "forward"}
    desc = {"nodes": [node(0, "leaf"), node(1, "leaf"), node(2, "exp"), node(3, "exp"),
                      node(4, "exp"), node(5, "exp")],
            "edges": [{"src": 0, "dst": 3, "shape": [1]}, {"src": 1, "dst": 2, "shape": [1]},
                      {"src": 2, "dst": 4, "shape": [1]}, {"src": 3, "dst": 5, "shape": [1]}],
            "order": [0, 1, 2, 3, 4, 5]}
    desc["levels"] = {0: 0, 1: 0, 2: 1, 3: 1, 4: 2, 5: 2}
    pos = viz.layout(desc)
    assert _crossings(desc, pos) == 0


def test_layout_of_a_wide_graph_is_deterministic():
    xs = [dagrad.randn(4, 4) for _ in range(6)]
    out = sum(((a @ b).tanh() for a in xs for b in xs[:2]), dagrad.zeros(4, 4))
    d = viz.graph(out)
    assert viz.layout(d) == viz.layout(d)


# ----------------------------------------------------------------------------- to_dot()

def _parse_dot(text):
    """The DOT laid out by Graphviz (JSON output): node name -> attributes, and edges."""
    graphviz = pytest.importorskip("graphviz", reason="the graphviz Python package is not installed")
    if shutil.which("dot") is None:
        pytest.skip("the Graphviz program 'dot' is not installed (apt-get install graphviz)")
    out = json.loads(graphviz.Source(text).pipe(format="json").decode())
    nodes = {o["name"]: o for o in out.get("objects", [])}
    edges = [(out["objects"][e["tail"]]["name"], out["objects"][e["head"]]["name"], e)
             for e in out.get("edges", [])]
    return out, nodes, edges


def test_dot_text_has_the_source_materials_colours():
    z, x, w, b = z_graph()
    text = viz.to_dot(z)
    assert text.startswith("digraph") and "rankdir=LR;" in text
    assert text.count(f'fillcolor="{GREEN}"') == 3
    assert text.count(f'fillcolor="{TEAL}"') == 1
    assert text.count(f'fillcolor="{PURPLE}"') == 1
    assert ORANGE not in text


def test_dot_parses_with_graphviz_with_kinds_colours_and_shapes():
    z, x, w, b = z_graph()
    out, nodes, edges = _parse_dot(viz.to_dot(z, names={"x": x, "w": w, "b": b}))
    assert out["rankdir"] == "LR"
    assert len(nodes) == 5 and {f"n{t._id}" for t in (x, w, b, z)} <= set(nodes)
    by_class = {}
    for o in nodes.values():
        by_class.setdefault(o["class"], []).append(o)
    assert {k: len(v) for k, v in by_class.items()} == {"variable forward": 3, "op forward": 1,
                                                          "output forward": 1}
    assert {o["fillcolor"] for o in by_class["variable forward"]} == {GREEN}
    assert by_class["op forward"][0]["fillcolor"] == TEAL
    assert by_class["output forward"][0]["fillcolor"] == PURPLE
    assert {nodes[f"n{t._id}"]["label"].split("\\n")[0] for t in (x, w, b)} == {"x", "w", "b"}
    assert len(edges) == 4 and all(e["label"] == "()" for _, _, e in edges)


def test_dot_with_backward_has_its_own_colour_and_parses():
    z, x, w, b = z_graph()
    text = viz.to_dot(z, show_backward=True)
    desc = viz.graph(z, backward=True)
    n_backward = sum(1 for n in desc["nodes"] if n["pass"] == "backward")
    assert text.count(f'fillcolor="{ORANGE}"') == n_backward >= 2
    out, nodes, edges = _parse_dot(viz.to_dot(z, show_backward=True, names={"x": x, "w": w, "b": b}))
    assert sum(1 for o in nodes.values() if o["class"].endswith("backward")) == n_backward
    assert {o["fillcolor"] for o in nodes.values() if o["class"].endswith("backward")} == {ORANGE}
    # each pending gradient names the leaf it is for
    grads = sorted(o["label"].split("\\n")[-1] for o in nodes.values() if "grad of" in o["label"])
    assert grads == ["grad of b", "grad of w", "grad of x"]


def test_dot_edges_carry_shapes():
    a = dagrad.randn(2, 3)
    m = dagrad.randn(3, 4)
    text = viz.to_dot((a @ m).sum(0))
    assert 'label="(2, 3)"' in text and 'label="(3, 4)"' in text and 'label="(2, 4)"' in text
    _parse_dot(text)


def test_dot_values_never_compute_and_show_after_the_run():
    z, x, w, b = z_graph()
    text = viz.to_dot(z, show_values=True)
    assert not z._realized
    assert "value 2" in text and "value 7" not in text
    z.backward(retain_graph=True)
    text = viz.to_dot(z, show_values=True, names={"x": x})
    assert "value 7" in text
    assert 'label="x\\n()\\nvalue 2\\ngrad 3"' in text
    assert "grad 2" in text and "grad 1" in text
    assert "value" not in viz.to_dot(z)


def test_dot_quotes_labels():
    x = dagrad.tensor(1.0)
    text = viz.to_dot(x * 2, names={'a "quoted"\\ name': x})
    assert 'label="a \\"quoted\\"\\\\ name' in text
    _parse_dot(text)


def test_render_writes_svg(tmp_path):
    _parse_dot("digraph { a }")  # skips without graphviz
    z, *_ = z_graph()
    path = viz.render(z, tmp_path / "z.svg", show_backward=True)
    assert path == tmp_path / "z.svg"
    svg = (tmp_path / "z.svg").read_text()
    assert "<svg" in svg and PURPLE in svg


def test_render_without_graphviz_says_what_to_install(tmp_path, monkeypatch):
    import sys
    z, *_ = z_graph()
    monkeypatch.setitem(sys.modules, "graphviz", None)  # the import fails
    with pytest.raises(ImportError, match=r"pip install dagrad\[viz\].*apt-get install graphviz"):
        viz.render(z, tmp_path / "z.svg")
    with pytest.raises(ValueError, match=r"\.svg, \.png or \.pdf"):
        viz.render(z, tmp_path / "z.txt")


def test_render_without_the_dot_program_says_what_to_install(tmp_path, monkeypatch):
    pytest.importorskip("graphviz")
    z, *_ = z_graph()
    monkeypatch.setenv("PATH", str(tmp_path))  # no dot here
    with pytest.raises(RuntimeError, match=r"'dot' was not found.*apt-get install graphviz"):
        viz.render(z, tmp_path / "z.png")
    assert not (tmp_path / "z.png").exists()


# ----------------------------------------------------------------------------- stats()

def test_stats_of_a_chain_span_equals_work():
    x = dagrad.randn(100)
    y = x
    chain = []
    for _ in range(10):
        y = y.exp() if len(chain) % 2 else y.tanh()
        chain.append(y)
    s = viz.stats(y)
    assert s.span == s.work > 0
    assert s.parallelism == 1.0
    assert s.critical_path == [t._id for t in chain]
    assert s.unit == "cost" and not s.measured
    sp = s.predicted_speedup(4)
    assert (sp.threads, sp.estimate, sp.high) == (4, 1.0, 1.0)  # a chain cannot go faster
    assert sp.low == pytest.approx(1 / (1 / 4 + 1))  # Brent: T_4 <= work/4 + span


def _wide(branches=8, depth=10, n=64):
    xs = [dagrad.randn(n, n) for _ in range(branches)]
    ends = []
    for x in xs:
        y = x
        for _ in range(depth):
            y = y @ x
        ends.append(y)
    return dagrad.stack(ends).sum(), ends


def test_stats_of_equal_branches_has_parallelism_near_the_branch_count():
    out, ends = _wide(branches=8)
    s = viz.stats(out)
    assert 7.5 < s.parallelism <= 8.0
    assert s.work == pytest.approx(8 * 10 * 2 * 64 ** 3, rel=0.02)  # 2*M*N*K per product
    assert len(s.critical_path) >= 10
    lo2 = s.predicted_speedup(2)
    assert lo2.low <= lo2.estimate <= lo2.high <= 2.0
    assert lo2.estimate > 1.9  # 8 equal branches split evenly over 2 threads
    big = s.predicted_speedup(64)
    assert big.high == pytest.approx(s.parallelism) and big.estimate <= s.parallelism
    assert viz.stats(*ends).parallelism == pytest.approx(8.0)
    with pytest.raises(ValueError, match="positive int"):
        s.predicted_speedup(0)
    d = s.to_dict()
    json.dumps(d)
    assert set(d) == {"work", "span", "parallelism", "critical_path", "nodes", "unit"}
    assert "parallelism" in str(s)


def test_stats_brent_bounds_hold_for_any_thread_count():
    out, _ = _wide(branches=3, depth=4, n=16)
    s = viz.stats(out, backward=False)
    for k in range(1, 10):
        lo, est, hi = s.predicted_time(k)
        assert max(s.work / k, s.span) == lo <= est <= hi == s.work / k + s.span


def test_stats_with_backward_adds_the_gradient_graph():
    w = dagrad.randn(32, 32, requires_grad=True)
    x = dagrad.randn(32, 32)
    loss = (x @ w).tanh().sum()
    fwd, both = viz.stats(loss), viz.stats(loss, backward=True)
    assert both.work > fwd.work and both.nodes > fwd.nodes


def test_node_cost_matches_the_scheduler():
    assert viz.node_cost("matmul", [2, 4], [[2, 3], [3, 4]]) == 2 * 8 * 3
    assert viz.node_cost("matmul", [2, 4], [[3, 2], [3, 4]]) == 2 * 8 * 3  # first operand read transposed
    assert viz.node_cost("linear", [5, 7], [[5, 3], [7, 3], [7]]) == 2 * 35 * 3
    assert viz.node_cost("add", [4, 4], [[4, 4], [4]]) == 17
    assert viz.node_cost("sum", [], [[10, 10]]) == 101
    assert viz.node_cost("reshape", [100], [[10, 10]]) == 1
    assert viz.node_cost("leaf", [100], []) == 0
