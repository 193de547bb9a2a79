"""``html()``: the interactive explorer, one self-contained HTML file (inline JS, CSS and SVG;
no network access; it opens by double-click) or an inline view in Jupyter.

The page shows the graph left to right in the source material's colours, with pan, zoom and a
summary of each node's value and gradient on hover; steps through backprop node by node; replays
a profiled run on a time slider with one timeline track per thread; and plots a training
history. Every number on it was computed by dagrad: values and ``.grad`` where they are, and
the gradients of the other nodes by ``dagrad.autograd.grad`` on the same graph, which leaves
``.grad`` as it was.

>>> x = dagrad.tensor(2.0, requires_grad=True)
>>> w = dagrad.tensor(3.0, requires_grad=True)
>>> b = dagrad.tensor(1.0, requires_grad=True)
>>> z = x * w + b
>>> view = dagrad.viz.html(z)
>>> [s["grad"]["text"] for s in view.data["backprop"]["steps"][:2]]
['1', '1']
>>> x.grad is None
True
"""
import collections
import heapq
import html as _html
import inspect
import json
import math
import pathlib

import numpy as np

from .. import autograd
from .._core import Tensor
from .._creation import ones_like
from .._tensor import realize
from ._describe import graph, summarize
from ._layout import layout
from ._style import COLORS, THREAD_COLORS

_STATIC = pathlib.Path(__file__).with_name("static")
# One purpose each, inlined in this order (explorer.js starts the page).
_SCRIPTS = ("graph.js", "replay.js", "backprop.js", "history.js", "explorer.js")

_COL, _ROW = 170, 84       # px between layers, and between the nodes of a layer (graph.js: a node is 104 x 42)
_GROUP_ABOVE = 150         # a graph with more nodes than this has its repeated structures collapsed
_MAX_UNIT = 120            # the longest repeated unit looked for, in ops
_MIN_GROUP = 12            # the fewest ops worth a group
_UNITS_AS_BOXES = 8        # a group of more repeats than this opens into one box per repeat
_EDGE_GRADS_UP_TO = 400    # nodes: above this, backprop shows each node's gradient, not each edge's
_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/", "matmul": "@"}


class HTMLView:
    """What ``html()`` returns: the page, the data embedded in it and the file written, if any.
    Jupyter shows it inline (``_repr_html_``, the same page in an iframe).

    >>> view = dagrad.viz.html(dagrad.ones(2) * 3)
    >>> view.page.startswith("<!DOCTYPE html>"), view.path
    (True, None)
    """

    def __init__(self, page, data, path=None):
        self.page = page
        self.data = data
        self.path = path

    def save(self, path):
        """Writes the page to ``path`` (UTF-8) and returns the path."""
        path = pathlib.Path(path)
        path.write_text(self.page, encoding="utf-8")
        self.path = path
        return path

    def _repr_html_(self):
        height = 560 + (260 if self.data.get("profile") else 0) + (330 if self.data.get("history") else 0)
        return (f'<iframe srcdoc="{_html.escape(self.page, quote=True)}" style="width:100%;height:{height}px;'
                'border:1px solid #d9dee5;border-radius:8px" sandbox="allow-scripts"></iframe>')

    def __repr__(self):
        n = len(self.data["nodes"])
        return f"<dagrad.viz.HTMLView: {n} nodes{', ' + str(self.path) if self.path else ''}>"


def html(tensor_or_program=None, path=None, profile=None, history=None, *, names=None, title=None):
    """Writes the interactive explorer of a graph to one self-contained HTML file.

    Parameters
    ----------
    tensor_or_program : Tensor, list of Tensors, compiled function or Program, or None
        What to show: the graph that computes these tensors (as ``dagrad.viz.graph``), or a
        ``dagrad.compile`` step's program. None shows only ``history``.
    path : str or path-like, optional
        Where to write the page; None writes nothing (the returned view still shows it in
        Jupyter).
    profile : dagrad.profile or list of its events, optional
        A profiled run to replay: each node waiting, ready, running (in its thread's colour)
        and done, with one timeline track per thread. Backward nodes of the run are added to
        the graph, in their own colour.
    history : list of dicts, or dict, optional
        One dict per training step of scalars (``{"loss": ..., "w": ..., "b": ...}``; tensors
        and numpy scalars are read with ``float``), plotted over the steps. The data of a
        one-input model goes in a dict ``{"steps": [...], "xs": [...], "ys": [...]}`` (or in
        the first step's dict); with it and a ``w`` (or ``weight``) and ``b`` (or ``bias``)
        per step, the page draws the fitted line against the data at each step.
    names : dict, optional
        Names for some tensors, ``{"x": x}`` or ``model.named_parameters()``. By default the
        caller's local variables name the tensors they hold (and a local ``nn.Module``, its
        parameters); ``names={}`` names nothing.
    title : str, optional
        The page title.

    Returns
    -------
    HTMLView
        The page (``.page``), the data embedded in it (``.data``) and ``.path``; Jupyter shows it
        inline.

    Call it before ``backward()``, or after ``backward(retain_graph=True)``: every node's value and
    gradient are then computed by dagrad (``dagrad.autograd.grad``, which leaves ``.grad`` as it
    is and the graph in place; Note [Gradients the page shows]). A plain ``backward()`` frees the
    graph, edges included, so only the output is left to draw; the page says so.

    >>> x = dagrad.tensor(2.0, requires_grad=True)
    >>> view = dagrad.viz.html(x * 3.0, title="x * 3")
    >>> view.data["title"], [n["name"] for n in view.data["nodes"].values()]
    ('x * 3', ['x', '3', 'x * 3'])
    """
    if names is None:
        frame = inspect.currentframe().f_back
        names = _local_names(frame)
        del frame
    data = explorer_data(tensor_or_program, profile=profile, history=history, names=names, title=title)
    view = HTMLView(page(data), data)
    if path is not None:
        view.save(path)
    return view


def page(data):
    """The self-contained HTML page for explorer data (``explorer_data``)."""
    css = (_STATIC / "explorer.css").read_text(encoding="utf-8")
    css += ":root {" + "".join(
        f"--{k}-line: {c}; --{k}-fill: {_tint(c)};" for k, c in
        (("var", COLORS["variable"]), ("param", COLORS["parameter"]), ("op", COLORS["op"]),
         ("out", COLORS["output"]), ("bwd", COLORS["backward"]))) + "}\n"
    js = "\n".join((_STATIC / name).read_text(encoding="utf-8") for name in _SCRIPTS)
    if "</script" in js.lower():
        raise AssertionError("an inlined script must not contain '</script'")
    blob = json.dumps(data, separators=(",", ":"), allow_nan=False)
    blob = blob.replace("</", "<\\/").replace("<!--", "<\\u0021--")  # stays JSON, ends no element
    title = _html.escape(data["title"])
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{title}</title>\n<style>\n{css}</style></head>\n<body>\n"
            "<div id=\"dagrad-explorer\"><noscript>This page needs JavaScript to draw the graph.</noscript></div>\n"
            f"<script type=\"application/json\" id=\"dagrad-data\">{blob}</script>\n"
            f"<script>\n{js}\n</script>\n</body></html>\n")


def _tint(hex_colour, keep=0.3):
    """A light fill for a line colour: the colour mixed with white."""
    r, g, b = (int(hex_colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{round(255 - (255 - c) * keep):02x}" for c in (r, g, b))


# ----------------------------------------------------------------------------- names

def _local_names(frame):
    """{name: tensor} for the caller's local variables that hold tensors, and the parameters of
    those that hold an nn.Module (``model.0.weight``); the first name of a tensor wins."""
    from ..nn import Module
    out, seen = {}, set()
    if frame is None:
        return out
    for name, v in list(frame.f_locals.items()):
        if name.startswith("_"):
            continue
        if isinstance(v, Tensor):
            items = [(name, v)]
        elif isinstance(v, Module):
            items = [(f"{name}.{k}", p) for k, p in v.named_parameters()]
        else:
            continue
        for k, t in items:
            if t._id not in seen:
                seen.add(t._id)
                out[k] = t
    return out


# ----------------------------------------------------------------------------- the data

def explorer_data(tensor_or_program=None, profile=None, history=None, names=None, title=None):
    """The plain data the page draws (embedded in it as JSON): nodes, edges, groups and their
    layout, backprop steps, the profiled run and the history."""
    roots, handles, grads = [], {}, {}
    desc = None
    events = list(getattr(profile, "events", profile or []))
    if tensor_or_program is not None:
        if isinstance(tensor_or_program, (Tensor, list, tuple)):
            roots = _flatten(tensor_or_program)
            handles = _walk(roots)
            grads = _gradients(roots, handles)
            desc = _with_backward(roots, names, events) if grads else None
            if desc is None:
                desc = graph(*roots, names=names)
        else:
            desc = graph(tensor_or_program, names=names)
    nodes, edges, order = {}, [], []
    outputs = []
    if desc is not None:
        for n in desc["nodes"]:
            nodes[str(n["id"])] = _node(n)
        edges = [{"src": str(e["src"]), "dst": str(e["dst"]), "shape": list(e["shape"]), "index": e.get("index", 0)}
                 for e in desc["edges"]]
        order = [str(i) for i in desc["order"]]
        outputs = [str(i) for i in desc.get("outputs", [])]
        _name_nodes(nodes, edges, order)
        _buffers(desc, nodes)
    backprop = _backprop(nodes, edges, order, outputs, handles, grads) if roots else None
    for n in nodes.values():  # a gradient result of the backward pass holds that leaf's gradient
        leaf = nodes.get(n.get("grad_of"))
        if leaf is not None and n["value"] is None and leaf["grad"] is not None:
            n["value"] = dict(leaf["grad"])
    prof = _profile(profile, nodes, edges, order) if profile is not None else None
    clusters, n_groups = _clusters(nodes, edges, order)
    return {
        "version": 1,
        "title": title or _title(nodes, outputs),
        "nodes": nodes,
        "edges": edges,
        "order": order,
        "outputs": outputs,
        "clusters": clusters,
        "open": [],
        "groups": n_groups,
        "has_backward": any(n["pass"] == "backward" for n in nodes.values()),
        "thread_colors": list(THREAD_COLORS),
        "backprop": backprop,
        "profile": prof,
        "history": _history(history) if history is not None else None,
        "note": _FREED if any(r._graph_freed for r in roots) else None,
    }


_FREED = ("backward() freed this graph, so only what is left of it is drawn. Call dagrad.viz.html before "
          "backward(), or use backward(retain_graph=True), to see every node with its value and gradient.")


def _with_backward(roots, names, events):
    """The description with the backward pass that a profiled backward ran, its nodes renamed to
    the ids that ran, or None when the profile holds no backward pass or the graph
    ``graph(backward=True)`` builds is not the one that ran.

    ``graph(backward=True)`` builds the backward graph again (not run; new ids), from the same
    rules in the same order as the profiled backward, so the two match op for op in creation
    order; the match is checked, and a profile of something else (accumulation into an existing
    .grad, another graph) falls back to drawing what the events say."""
    ran = {}
    for e in events:
        if e.get("pass") == "backward":
            ran[e["node"]] = e["op"]
            for m in e.get("fused") or []:
                if isinstance(m, dict):
                    ran[m["node"]] = m["op"]
    if not ran:
        return None
    try:
        desc = graph(*roots, names=names, backward=True)
    except (ValueError, RuntimeError):  # an output of several elements, a freed graph
        return None
    built = sorted((n for n in desc["nodes"] if n["pass"] == "backward" and n["op"] != "leaf"), key=lambda n: n["id"])
    if [n["op"] for n in built] != [ran[i] for i in sorted(ran)]:
        return None
    rename = {n["id"]: i for n, i in zip(built, sorted(ran))}
    taken = set(rename.values())
    for n in desc["nodes"]:  # a leaf of the rebuilt graph (the seed) must not take an id that ran
        if n["id"] not in rename and n["id"] in taken:
            rename[n["id"]] = f"b{n['id']}"
    r = lambda i: rename.get(i, i)  # noqa: E731
    for n in desc["nodes"]:
        n["id"] = r(n["id"])
        for k in ("grad_of", "grad_node"):
            if n.get(k) is not None:
                n[k] = r(n[k])
    for e in desc["edges"]:
        e["src"], e["dst"] = r(e["src"]), r(e["dst"])
    desc["order"] = [r(i) for i in desc["order"]]
    desc["outputs"] = [r(i) for i in desc.get("outputs", [])]
    return desc


def _title(nodes, outputs):
    if not nodes:
        return "dagrad training history"
    names = [nodes[i]["name"] if " #" not in nodes[i]["name"] else nodes[i]["op"] for i in outputs[:2]]
    return "dagrad graph" + (": " + ", ".join(names) if names else "")


def _flatten(obj):
    out, stack = [], [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, Tensor):
            out.append(o)
        elif isinstance(o, (list, tuple)):
            stack.extend(reversed(o))
        else:
            raise TypeError(f"dagrad.viz.html: expected a Tensor, a list of Tensors or a compiled program, "
                            f"got {type(o).__name__}")
    return out


def _walk(roots):
    """{id: tensor} for every node the roots depend on (iterative: a long chain has no limit)."""
    seen = {}
    stack = list(roots)
    while stack:
        t = stack.pop()
        if t._id in seen:
            continue
        seen[t._id] = t
        stack.extend(t._inputs)
    return seen


def _summary(s, shape=None):
    """A graph description's value summary, plus the short form drawn under a node."""
    if s is None:
        return None
    text = s["text"]
    if len(text) <= 14:
        short = text
    elif s.get("mean") is not None:
        short = "mean " + _fmt(s["mean"])
    else:
        short = text[:13] + "…"
    return {"text": text if shape is None or len(shape) == 0 else f"{text}  (shape {tuple(shape)})", "short": short,
            "values": s.get("values")}


def _fmt(v):
    return f"{float(v):.4g}"


def _node(n):
    return {
        "id": str(n["id"]), "op": n["op"], "kind": n["kind"], "pass": n.get("pass", "forward"),
        "shape": list(n.get("shape") or []), "dtype": n.get("dtype", ""), "label": n.get("label") or n["op"],
        "value": _summary(n.get("value"), n.get("shape")), "grad": _summary(n.get("grad"), n.get("shape")),
        "requires_grad": bool(n.get("requires_grad", False)),
        "grad_of": str(n["grad_of"]) if n.get("grad_of") is not None else None,
    }


def _buffers(desc, nodes):
    """For a compiled program: each node's place in the schedule, and the buffer it writes, named
    b0, b1, ... with the other nodes that reuse it (the static memory plan)."""
    if "schedule" not in desc:
        return
    k = 0
    for step in desc["schedule"]:
        if step["kind"] == "run":
            for i in step["nodes"]:
                if str(i) in nodes and "step" not in nodes[str(i)]:
                    nodes[str(i)]["step"] = k
                    k += 1
    by_storage = collections.defaultdict(list)
    for n in desc["nodes"]:
        if n.get("storage") is not None and n["op"] != "leaf":
            by_storage[n["storage"]].append(str(n["id"]))
    for b, ids in enumerate(by_storage.values()):
        for i in ids:
            nodes[i]["buffer"] = f"b{b}" + (f", shared with {len(ids) - 1} more" if len(ids) > 1 else "")


def _name_nodes(nodes, edges, order):
    """A readable name per node: its label if it was named, else a short expression of its
    inputs (``x * w``), else ``op #id``."""
    ins = collections.defaultdict(list)
    for e in sorted(edges, key=lambda e: e["index"]):
        ins[e["dst"]].append(e["src"])
    expr = {}
    for i in order:
        n = nodes[i]
        named = n["label"] not in (n["op"], "variable", "parameter")
        if n["op"] == "leaf" or named:
            expr[i] = n["label"] if n["label"] not in ("variable", "parameter") else None
        else:
            args = [expr.get(j) for j in ins[i]]
            e = None
            if all(a is not None for a in args):
                if n["op"] in _SYMBOL and len(args) == 2:
                    wrap = [a if " " not in a else f"({a})" for a in args]
                    e = f"{wrap[0]} {_SYMBOL[n['op']]} {wrap[1]}"
                elif len(args) == 1:
                    e = f"{n['op']}({args[0]})"
            expr[i] = e if e is not None and len(e) <= 24 else None
        n["name"] = expr[i] or (f"{n['label']} #{i}" if n["op"] == "leaf" else f"{n['op']} #{i}")
    for n in nodes.values():
        if n.get("grad_of") in nodes:
            n["name"] = f"grad of {nodes[n['grad_of']]['name']}"


# ----------------------------------------------------------------------------- gradients

# Note [Gradients the page shows]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# Every number comes from dagrad, and .grad is never touched. While the graph is there (before
# backward(), or after backward(retain_graph=True)), one autograd.grad call with every node as
# an input gives each node's gradient (hooks run, as in backward; the graph is retained). What an
# edge carries is that gradient when the edge is its input's only way to the output; else, when
# the input reaches its consumer by that edge alone, autograd.grad of the consumer with respect
# to the input, weighted by the consumer's gradient (one small run per such edge, so only up to
# _EDGE_GRADS_UP_TO nodes). A plain backward() frees the graph, edges included: what is left is
# the output, and the page says so (see "note").
def _gradients(roots, handles):
    """{id: gradient tensor} of every forward node that requires grad, or {} when the graph was
    freed by a backward."""
    outs = [r for r in roots if r.requires_grad]
    want = [t for t in handles.values() if t.requires_grad and not t._is_backward]
    if not outs or not want or any(t._graph_freed for t in want) or any(r.numel() != 1 for r in outs):
        return {}  # as backward(): an output seeded with 1 has one element
    seeds = [ones_like(r) for r in outs]
    gs = autograd.grad(outs, want, grad_outputs=seeds, retain_graph=True, allow_unused=True)
    got = {t._id: g for t, g in zip(want, gs) if g is not None}
    pending = [t for t in handles.values() if not t._realized] + [g for g in got.values() if not g._realized]
    if pending:
        realize(*pending)
    return got


def _sum(ts):
    s = ts[0]
    for t in ts[1:]:
        s = s + t
    return s


def _backprop(nodes, edges, order, outputs, handles, grads):
    """The backprop steps: from the outputs back, each node with the gradient that arrives at it
    and what it passes to each input (None where that cannot be told)."""
    fwd = [i for i in order if nodes[i]["pass"] == "forward" and nodes[i]["requires_grad"]]
    fwd_set = set(fwd)
    roots = [i for i in outputs if i in fwd_set and math.prod(nodes[i]["shape"]) == 1]
    if not roots:
        return None
    t_of = {str(k): v for k, v in handles.items()}
    ins = collections.defaultdict(list)  # dst -> the inputs that take a gradient, in order
    uses = collections.Counter()         # src -> edges out of it that carry a gradient
    for e in sorted(edges, key=lambda e: e["index"]):
        if e["dst"] in fwd_set and e["src"] in fwd_set:
            ins[e["dst"]].append(e["src"])
            uses[e["src"]] += 1
    alive = bool(grads)
    tot = {str(k): v for k, v in grads.items()}
    if not alive:  # what backward kept: the leaves' .grad and retained gradients, and the seed
        for i in fwd:
            g = t_of[i].grad
            if g is not None:
                tot[i] = g
        for i in roots:
            tot.setdefault(i, ones_like(t_of[i]))
    pos = {i: k for k, i in enumerate(order)}
    small = len(nodes) <= _EDGE_GRADS_UP_TO
    passes = {}
    for v in reversed(fwd):
        if v not in tot:
            continue
        out = []
        for u in dict.fromkeys(ins[v]):
            c = None
            if uses[u] == ins[v].count(u):  # all of u's gradient comes through here
                c = tot.get(u)
            elif alive and small and not _other_path(u, v, edges, pos):
                (c,) = autograd.grad(t_of[v], t_of[u], grad_outputs=tot[v], retain_graph=True, allow_unused=True)
            out.append([u, c])
        passes[v] = out
    # An input with one consumer's share unknown (x in x*x + x: the add's edge is not x's only way
    # to the output) gets that share as its gradient less the others'.
    shares = collections.defaultdict(list)
    for out in passes.values():
        for pair in out:
            shares[pair[0]].append(pair)
    for u, pairs in shares.items():
        unknown = [p for p in pairs if p[1] is None]
        if len(unknown) == 1 and u in tot and len(pairs) == sum(1 for lst in ins.values() if u in lst):
            known = [p[1] for p in pairs if p[1] is not None]
            unknown[0][1] = tot[u] - _sum(known) if known else tot[u]
    pending = [c for out in passes.values() for _, c in out if c is not None and not c._realized]
    pending += [g for g in tot.values() if not g._realized]
    if pending:
        realize(*pending)
    steps = []
    for v in reversed(fwd):
        if v not in tot:
            continue
        g = _summary(summarize(tot[v]))
        nodes[v]["grad"] = g
        steps.append({"node": v, "grad": g, "root": v in roots,
                      "passes": [{"to": u, "grad": _summary(summarize(c)) if c is not None else None}
                                 for u, c in passes.get(v, [])]})
    return {"steps": steps}


def _other_path(u, v, edges, pos):
    """Whether u reaches v other than by its direct edges (then the edge's share is not the
    gradient of v with respect to u)."""
    succ = collections.defaultdict(list)
    for e in edges:
        succ[e["src"]].append(e["dst"])
    stack = [w for w in succ[u] if w != v and pos[w] < pos[v]]
    seen = set(stack)
    while stack:
        w = stack.pop()
        for x in succ[w]:
            if x == v:
                return True
            if x not in seen and pos[x] < pos[v]:
                seen.add(x)
                stack.append(x)
    return False


# ----------------------------------------------------------------------------- groups and layout

# Note [Collapsing repeated structure]
# ~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~
# A 2,000-node graph is readable only with its repeats folded away: the time steps of an
# unrolled RNN, the blocks of a deep MLP. Ops are recorded in program order (node ids grow), so
# a loop body run T times is a run of T copies of one op sequence. Each op gets a signature (op,
# its shape and its inputs' shapes); within each pass, the
# longest stretch of at least three consecutive copies of one unit is a group, then the same is
# looked for on either side of it. A group starts where the fewest edges cross between copies
# (an RNN step begins with its matmuls, not mid-step). A leaf read only inside one copy (the
# step's input) joins that copy; one read by several copies (a weight) stays outside, as
# TensorBoard draws shared parameters apart. The page draws a group as one box that opens in
# place (Note [Expanding in place] in graph.js); one of many copies opens into a box per copy.
def _signatures(seq, nodes, ins_all):
    # Whether an input is a leaf stays out: the first step of a loop reads h0 (a leaf) where
    # the others read the previous step, and belongs with them.
    return [(nodes[i]["op"], tuple(nodes[i]["shape"]), tuple(tuple(nodes[j]["shape"]) for j in ins_all[i]))
            for i in seq]


def _best_repeat(sig, a, b):
    """(start, unit length, copies) of the stretch of sig[a:b] most covered by consecutive
    copies of one unit (at least 3 copies, _MIN_GROUP items), or None."""
    best = None
    for p in range(1, min(_MAX_UNIT, (b - a) // 3) + 1):
        run = 0
        for j in range(a + p, b + 1):
            if j < b and sig[j] == sig[j - p]:
                run += 1
                continue
            k = (run + p) // p
            if k >= 3 and p * k >= _MIN_GROUP:
                start = j - run - p
                if best is None or p * k > best[1] * best[2]:
                    best = (start, p, k, run + p)
            run = 0
    return best


def _phase(seq, start, p, length, ins_all):
    """The unit boundary with the fewest edges between copies: (start, copies)."""
    idx = {i: k for k, i in enumerate(seq)}
    best = None
    for phi in range(p):
        k = (length - phi) // p
        if k < 3:
            break
        s0 = start + phi
        cross = 0
        for j in range(s0, s0 + k * p):
            for u in ins_all[seq[j]]:
                q = idx.get(u)
                if q is not None and s0 <= q < j and (q - s0) // p != (j - s0) // p:
                    cross += 1
        key = (cross / (k - 1), -k, phi)  # per boundary: a later start has one boundary fewer
        if best is None or key < best[0]:
            best = (key, s0, k)
    return best[1], best[2]


def _repeats(seq, nodes, ins_all):
    """Lists of copies (each a list of ids) of the repeated units in seq."""
    sig = _signatures(seq, nodes, ins_all)
    found, todo = [], [(0, len(seq))]
    while todo:
        a, b = todo.pop()
        r = _best_repeat(sig, a, b)
        if r is None:
            continue
        start, p, _, length = r
        s0, k = _phase(seq, start, p, length, ins_all)
        found.append([seq[s0 + c * p: s0 + (c + 1) * p] for c in range(k)])
        todo += [(a, s0), (s0 + k * p, b)]
    where = {i: k for k, i in enumerate(seq)}
    found.sort(key=lambda units: where[units[0][0]])
    return found


def _id_key(i):
    return (0, int(i), "") if i.lstrip("-").isdigit() else (1, 0, i)


def _clusters(nodes, edges, order):
    """The group tree and each group's layout: {group id: {label, detail, size, children, pos}}
    with "root" the whole graph, and the number of groups of repeats."""
    ins_all = collections.defaultdict(list)
    outs = collections.defaultdict(list)
    for e in sorted(edges, key=lambda e: e["index"]):
        ins_all[e["dst"]].append(e["src"])
        outs[e["src"]].append(e["dst"])
    parent = {}
    clusters = {"root": {"label": "", "detail": "", "size": len(nodes)}}
    n_groups = 0
    if len(nodes) > _GROUP_ABOVE:
        for pss in ("forward", "backward"):
            seq = sorted((i for i in order if nodes[i]["pass"] == pss and nodes[i]["op"] != "leaf"), key=_id_key)
            for units in _repeats(seq, nodes, ins_all):
                gid = f"g{n_groups}"
                n_groups += 1
                ops = [nodes[i]["op"] for i in units[0]]
                sub = ops[0] if len(ops) == 1 else f"{ops[0]} … {ops[-1]}"
                clusters[gid] = {"label": f"{len(units)} repeats", "sub": sub, "size": 0,
                                 "detail": f"each: {', '.join(ops)}"}
                parent[gid] = "root"
                boxes = len(units) > _UNITS_AS_BOXES
                for c, unit in enumerate(units):
                    holder = gid
                    if boxes:
                        holder = f"{gid}.{c}"
                        clusters[holder] = {"label": f"#{c + 1}", "sub": sub, "size": 0,
                                            "detail": f"repeat {c + 1} of {len(units)}: {', '.join(ops)}"}
                        parent[holder] = gid
                    for i in unit:
                        parent[i] = holder
        if n_groups:  # a leaf read only inside one copy joins it; one read by several (a weight) stays out
            for i in order:
                if nodes[i]["op"] == "leaf" and outs[i]:
                    homes = {parent.get(j, "root") for j in outs[i]}
                    if len(homes) == 1:
                        parent[i] = homes.pop()
    for i in nodes:
        parent.setdefault(i, "root")
    children = collections.defaultdict(list)
    for i in order:  # each group's children, in the order their first node comes
        chain = [i]
        while chain[-1] != "root":
            chain.append(parent[chain[-1]])
        for g in chain[1:-1]:
            clusters[g]["size"] += 1
        for child, holder in zip(chain, chain[1:]):
            if child not in children[holder]:
                children[holder].append(child)
    key = {}
    for i in sorted(nodes, key=_id_key):  # a child's place in program order: its first op, else its first leaf
        chain = [i]
        while chain[-1] != "root":
            chain.append(parent[chain[-1]])
        k = (nodes[i]["op"] == "leaf", _id_key(i))
        for c in chain[:-1]:
            key[c] = min(key.get(c, k), k)
    for gid, c in clusters.items():
        c["children"] = sorted(children[gid], key=key.get)
        c["pos"] = _place(c["children"], parent, edges, key)
    return clusters, n_groups


def _place(kids, parent, edges, key):
    """Pixel centres for a group's children, laid out with every child group as one node."""
    if not kids:
        return {}
    mine = set(kids)

    def shown(i):  # the child of gid that holds i, or None
        while i is not None and i not in mine:
            i = parent.get(i)
        return i

    sub_edges, seen = [], set()
    for e in edges:
        a, b = shown(e["src"]), shown(e["dst"])
        if a is None or b is None or a == b or (a, b) in seen:
            continue
        seen.add((a, b))
        sub_edges.append({"src": a, "dst": b})
    # A topological order of the children (Kahn's, in program order where free to choose).
    indeg = collections.Counter(e["dst"] for e in sub_edges)
    succ = collections.defaultdict(list)
    for e in sub_edges:
        succ[e["src"]].append(e["dst"])
    ready = [(key[k], k) for k in kids if not indeg[k]]
    heapq.heapify(ready)
    topo = []
    while ready:
        _, k = heapq.heappop(ready)
        topo.append(k)
        for d in succ[k]:
            indeg[d] -= 1
            if not indeg[d]:
                heapq.heappush(ready, (key[d], d))
    if len(topo) < len(kids):  # not a DAG once grouped: draw it, dropping the edges that close cycles
        done = set(topo)
        topo += [k for k in kids if k not in done]
        rank = {k: r for r, k in enumerate(topo)}
        sub_edges = [e for e in sub_edges if rank[e["src"]] < rank[e["dst"]]]
    xy = layout({"order": topo, "edges": sub_edges})
    return {k: [round(x * _COL, 1), round(y * _ROW, 1)] for k, (x, y) in xy.items()}


# ----------------------------------------------------------------------------- profile

def _profile(profile, nodes, edges, order):
    """The profiled run, in ns from its first event, with each node's ready time (when its last
    input finished, or its run began). Nodes that ran but are not in the graph yet (the backward
    pass of a profiled backward()) are added to it when they read something in it."""
    events = list(getattr(profile, "events", profile))
    if not events:
        return None
    t0 = min(e["start_ns"] for e in events)
    run_start = {}
    for e in events:
        r = e.get("run", 0)
        run_start[r] = min(run_start.get(r, e["start_ns"]), e["start_ns"])
    end = {}
    for e in events:
        for i in [e["node"]] + [m["node"] if isinstance(m, dict) else m for m in e.get("fused") or []]:
            end[str(i)] = e["end_ns"]
    out = []
    for e in sorted(events, key=lambda e: (e["start_ns"], e["node"])):
        i = str(e["node"])
        fused = [str(m["node"] if isinstance(m, dict) else m) for m in e.get("fused") or []]
        inputs = [str(j) for j in e.get("inputs") or []]
        ready = max([run_start[e.get("run", 0)]] + [end[j] for j in inputs if j in end and end[j] <= e["start_ns"]])
        if i not in nodes and (any(j in nodes for j in inputs) or any(j in nodes for j in fused)):
            _add_event_node(e, i, inputs, nodes, edges, order)
        out.append({"node": i, "op": e["op"], "thread": int(e["thread"]), "pass": e.get("pass", "forward"),
                    "start": e["start_ns"] - t0, "end": e["end_ns"] - t0, "ready": min(ready, e["start_ns"]) - t0,
                    "fused": fused, "run": e.get("run", 0)})
    threads = sorted({e["thread"] for e in out})
    return {"events": out, "threads": threads, "span": max(e["end"] for e in out)}


def _add_event_node(e, i, inputs, nodes, edges, order):
    for k, j in enumerate(inputs):
        if j not in nodes:  # something the run read that the graph does not show: the seed, a constant
            nodes[j] = {"id": j, "op": "leaf", "kind": "variable", "pass": e.get("pass", "forward"), "shape": [],
                        "dtype": "", "label": "input", "value": None, "grad": None, "requires_grad": False,
                        "name": f"input #{j}", "detail": "read by the run, made outside the graph drawn here "
                                                         "(the seed of backward, a constant, an earlier .grad)"}
            order.append(j)
        edges.append({"src": j, "dst": i, "shape": list(nodes[j]["shape"]), "index": k})
    nodes[i] = {"id": i, "op": e["op"], "kind": "op", "pass": e.get("pass", "forward"),
                "shape": list(e.get("shape", [])), "dtype": e.get("dtype", ""), "label": e["op"], "value": None,
                "grad": None, "requires_grad": False, "name": f"{e['op']} #{i}"}
    order.append(i)


# ----------------------------------------------------------------------------- history

_NOT_SCALAR = object()


def _scalar(v):
    if isinstance(v, Tensor):
        v = v.numpy()
    try:
        a = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError):
        return _NOT_SCALAR
    if a.size != 1:
        return _NOT_SCALAR
    f = float(a.reshape(-1)[0])
    return f if math.isfinite(f) else None


def _floats(v):
    if isinstance(v, Tensor):
        v = v.numpy()
    a = np.asarray(v, dtype=np.float64)
    if a.ndim == 2 and a.shape[1] == 1:
        a = a[:, 0]
    if a.ndim != 1:
        return None
    return [float(x) if math.isfinite(x) else None for x in a]


def _history(history):
    """Steps of finite floats (None where not finite), the loss key, and the data and the
    parameter keys of a one-input model's line."""
    data = None
    if isinstance(history, dict):
        steps = list(history.get("steps", []))
        if "xs" in history and "ys" in history:
            data = (history["xs"], history["ys"])
    else:
        steps = list(history)
    rows, keys = [], []
    for k, st in enumerate(steps):
        if not isinstance(st, dict):
            raise TypeError(f"dagrad.viz.html: history holds one dict per step, got {type(st).__name__}")
        step = _scalar(st.get("step", k))
        row = {"step": k if step is _NOT_SCALAR or step is None else step}
        for name, v in st.items():
            if name in ("step", "xs", "ys"):
                continue
            f = _scalar(v)
            if f is _NOT_SCALAR:
                continue
            row[str(name)] = f
            if str(name) not in keys:
                keys.append(str(name))
        if data is None and "xs" in st and "ys" in st:
            data = (st["xs"], st["ys"])
        rows.append(row)
    loss = "loss" if "loss" in keys else (keys[0] if keys else None)
    out = {"steps": rows, "keys": keys, "loss": loss, "data": None, "fit": None}
    if data is not None:
        xs, ys = _floats(data[0]), _floats(data[1])
        if xs is not None and ys is not None and len(xs) == len(ys):
            pts = [(x, y) for x, y in zip(xs, ys) if x is not None and y is not None]
            out["data"] = {"xs": [x for x, _ in pts], "ys": [y for _, y in pts]}
    w = next((k for k in ("w", "weight") if k in keys), None)
    b = next((k for k in ("b", "bias") if k in keys), None)
    if out["data"] and w and b:
        out["fit"] = {"w": w, "b": b}
    return out
