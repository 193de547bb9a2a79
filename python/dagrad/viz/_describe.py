"""``graph()``: the one plain-data description of a graph that every view reads (its format is
written down in the docstring of ``dagrad.viz``)."""
import math

import numpy as np

from .. import _core
from .._core import Tensor

_SUMMARY_VALUES = 16  # a value with at most this many elements is listed in full


def _fmt(v):
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return f"{float(v):.4g}"


def _finite_or_none(v):
    v = float(v)
    return v if math.isfinite(v) else None


def summarize(t):
    """A JSON-ready summary of an already computed tensor, or None if it is not computed.

    Never computes anything: a pending tensor gives None.
    """
    if t is None or not isinstance(t, Tensor) or not t._realized:
        return None
    a = np.asarray(t.numpy())
    flat = a.reshape(-1)
    numel = int(flat.size)
    values = None
    if numel <= _SUMMARY_VALUES:
        values = [v if isinstance(v, (bool, int)) else _finite_or_none(v) for v in flat.tolist()]
    if numel == 0:
        return {"text": "[]", "numel": 0, "values": [], "min": None, "max": None, "mean": None}
    num = flat.astype(np.float64)
    with np.errstate(all="ignore"):
        lo, hi, mean = num.min(), num.max(), num.mean()
    if a.ndim == 0:
        text = _fmt(flat[0])
    elif numel <= 6:
        text = "[" + ", ".join(_fmt(v) for v in flat) + "]"
    else:
        text = f"mean {_fmt(mean)}, min {_fmt(lo)}, max {_fmt(hi)}"
    return {"text": text, "numel": numel, "values": values,
            "min": _finite_or_none(lo), "max": _finite_or_none(hi), "mean": _finite_or_none(mean)}


def _flatten(args, where):
    out = []
    stack = [list(args)]
    while stack:
        items = stack.pop()
        for i, a in enumerate(items):
            if isinstance(a, Tensor):
                out.append(a)
            elif isinstance(a, (list, tuple)):
                stack.append(list(items[i + 1:]))
                stack.append(list(a))
                break
            else:
                raise TypeError(f"{where}: expected tensors, lists of tensors, a compiled program or a "
                                f"dagrad.compile function, got {type(a).__name__}")
    return out


def _names(names, where):
    if names is None:
        return {}
    items = names.items() if hasattr(names, "items") else names
    out = {}
    for name, t in items:
        if not isinstance(t, Tensor):
            raise TypeError(f"{where}: names maps a name to a Tensor, got {type(t).__name__} for {name!r}")
        out[t._id] = str(name)
    return out


def _walk(roots, inputs_of, nodes, order):
    """Iterative post-order DFS (a recursive one overflows on long chains): appends each node
    after its inputs to ``order``; ``inputs_of`` gives a node's inputs and is called once per node."""
    edges = {}
    for r in roots:
        if r._id in nodes:
            continue
        nodes[r._id] = r
        stack = [(r, inputs_of(r), 0)]
        while stack:
            t, ins, i = stack[-1]
            if i < len(ins):
                stack[-1] = (t, ins, i + 1)
                p = ins[i]
                if p._id not in nodes:
                    nodes[p._id] = p
                    stack.append((p, inputs_of(p), 0))
            else:
                stack.pop()
                edges[t._id] = ins
                order.append(t._id)
    return edges


def _gradient_graph(roots, where):
    """The (leaf, pending gradient) pairs of the outputs that require grad, built and not run."""
    for t in roots:
        if t.requires_grad and t.numel() != 1:
            raise ValueError(f"{where}: backward=True seeds each output's gradient with 1, so each output "
                             f"must have one element; got shape {tuple(t.shape)} (describe its .sum(), or "
                             "the loss)")
    needs = [t for t in roots if t.requires_grad]
    if not needs:
        return []
    try:
        return _core._gradient_graph(needs)
    except RuntimeError as e:
        raise RuntimeError(f"{where}(backward=True): {e}. A plain backward() frees the graph: describe it "
                           "before, or call backward(retain_graph=True)") from e


def _program_of(obj):
    """(program, outputs) for a Program or a dagrad.compile function (its latest trace)."""
    from ..compile import CompiledFunction
    if isinstance(obj, CompiledFunction):
        if not obj.traces:
            raise ValueError("dagrad.viz: this compiled function has not been called yet, so it has no "
                             "program to show; call it once first")
        trace = next(reversed(obj.traces.values()))
        return trace.program, list(trace.outputs)
    return obj, []


def _label(t, is_leaf, value, backward):
    if not is_leaf:
        return t._op
    if t._is_param:
        return "parameter"
    if not t.requires_grad and value is not None and value["numel"] == 1:
        return value["text"]  # a constant, such as the 3 of x * 3
    return "constant" if backward else "variable"


def _is_program(obj):
    from ..compile import CompiledFunction
    return isinstance(obj, (_core.Program, CompiledFunction))


def graph(*tensors, backward=False, names=None):
    """A plain-data description of the graph that computes ``tensors``: nodes, edges, one
    topological order and levels (the format is in the docstring of ``dagrad.viz``).

    Nothing is computed: values and gradients appear only where they already are.

    Parameters
    ----------
    *tensors : Tensor, lists of them, or a compiled program
        The outputs to describe, or one ``dagrad.compile`` function (its latest trace) or
        ``Program``, described in schedule order.
    backward : bool
        Also describe the gradient graph of the outputs (seeded with 1 for one-element
        outputs) with respect to every leaf that requires grad, without running it.
    names : dict, optional
        Labels for some tensors, ``{"x": x, "w": w}`` (or ``model.named_parameters()``).

    A plain ``backward()`` frees the graph it ran (PyTorch's rule): describe a graph before
    it, or after ``backward(retain_graph=True)``, which also shows the values and gradients.

    >>> x = dagrad.tensor(2.0, requires_grad=True)
    >>> z = x * 3.0 + 1.0
    >>> d = dagrad.viz.graph(z, names={"x": x})
    >>> [(n["label"], n["kind"]) for n in d["nodes"]]
    [('x', 'variable'), ('3', 'variable'), ('mul', 'op'), ('1', 'variable'), ('add', 'output')]
    """
    where = "dagrad.viz.graph"
    labels = _names(names, where)
    schedule = None
    made_by_backward = set()
    if len(tensors) == 1 and _is_program(tensors[0]):
        if backward:
            raise ValueError(f"{where}: a compiled program already holds its backward nodes; "
                             "backward=True is for tensors")
        program, outputs = _program_of(tensors[0])
        nodes, order, edges, schedule = _describe_program(program)
        output_ids = {t._id for t in outputs}
        if not output_ids:  # a bare Program: what nothing else in it reads
            read = {p._id for ins in edges.values() for p in ins}
            output_ids = {i for i in order if i not in read and nodes[i]._op != "leaf"}
        roots = []
        # A constant leaf that only backward nodes read was made by autodiff (the seed).
        readers = {}
        for i, ins in edges.items():
            for p in ins:
                readers.setdefault(p._id, []).append(i)
        made_by_backward = {i for i in order if nodes[i]._op == "leaf" and not nodes[i].requires_grad
                            and readers.get(i) and all(nodes[r]._is_backward for r in readers[i])}
    else:
        roots = _flatten(tensors, where)
        if not roots:
            raise ValueError(f"{where}: give at least one tensor")
        nodes, order = {}, []
        edges = _walk(roots, lambda t: list(t._inputs), nodes, order)
        output_ids = {t._id for t in roots}
    grad_of = {}
    if backward:
        pairs = _gradient_graph(roots, where)
        grads = [g for _, g in pairs]
        # The walk reaches the backward nodes and the forward ones they read; those already
        # described keep their place in the order, so the order stays topological. A leaf met
        # only here was made by autodiff (the seed, a constant of a backward rule).
        forward = set(nodes)
        edges.update(_walk(grads, lambda t: list(t._inputs), nodes, order))
        made_by_backward = {i for i in nodes if i not in forward and nodes[i]._op == "leaf"}
        grad_of = {g._id: leaf._id for leaf, g in pairs}
        for leaf, _ in pairs:  # a leaf the forward walk missed (it cannot: it is an input)
            if leaf._id not in nodes:
                nodes[leaf._id] = leaf
                edges[leaf._id] = []
                order.insert(0, leaf._id)
    grad_node = {leaf: g for g, leaf in grad_of.items()}

    level = {}
    for i in order:
        level[i] = 1 + max((level[p._id] for p in edges[i]), default=-1)

    out_nodes = []
    for i in order:
        t = nodes[i]
        is_leaf = t._op == "leaf"
        bw = t._is_backward or i in made_by_backward
        if i in output_ids:
            kind = "output"
        elif is_leaf:
            kind = "parameter" if t._is_param else "variable"
        else:
            kind = "op"
        value = summarize(t)
        node = {
            "id": i,
            "op": t._op,
            "kind": kind,
            "shape": list(t.shape),
            "dtype": t.dtype.name,
            "pass": "backward" if bw else "forward",
            "label": labels.get(i) or _label(t, is_leaf, value, bw),
            "value": value,
            "grad": summarize(t.grad) if t.requires_grad and not bw else None,
            "requires_grad": bool(t.requires_grad),
            "realized": bool(t._realized),
        }
        storage = getattr(t, "_storage_id", None)
        if storage is not None:
            node["storage"] = int(storage)
        if i in grad_of:
            node["grad_of"] = grad_of[i]
        if i in grad_node:
            node["grad_node"] = grad_node[i]
        out_nodes.append(node)

    out_edges = [{"src": p._id, "dst": i, "shape": list(p.shape), "index": k}
                 for i in order for k, p in enumerate(edges[i])]
    desc = {"nodes": out_nodes, "edges": out_edges, "order": list(order), "levels": level,
            "outputs": [i for i in order if i in output_ids]}
    if schedule is not None:
        desc["schedule"] = schedule
    return desc


def _describe_program(program):
    """The nodes a Program runs (in schedule order) and the tensors they read from outside it."""
    entries = program._schedule()
    schedule = []
    ran = {}
    for e in entries:
        ts = list(e.get("nodes", []))
        schedule.append({"kind": e["kind"], "nodes": [t._id for t in ts]})
        if e["kind"] == "run":
            for t in ts:
                ran.setdefault(t._id, t)
    nodes, order = {}, []
    # A tensor read from outside the program (an input, a parameter, a value computed before
    # the trace) is shown once, without what made it.
    edges = _walk(list(ran.values()), lambda t: list(t._inputs) if t._id in ran else [], nodes, order)
    return nodes, order, edges, schedule
