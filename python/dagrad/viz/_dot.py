"""``to_dot()`` and ``render()``: the graph description as Graphviz DOT, and drawn by Graphviz."""
import os

from ._style import COLORS, node_color

_INSTALL = ("pip install dagrad[viz] (the graphviz Python package) and the Graphviz program "
            "(apt-get install graphviz, brew install graphviz, or https://graphviz.org/download/)")

_SHAPE = {"variable": "ellipse", "parameter": "ellipse", "op": "box", "output": "box"}


def _quote(s):
    return '"' + str(s).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def _shape_text(shape):
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def _describe(obj, show_backward, names):
    from ._describe import _flatten, _is_program, graph
    if isinstance(obj, dict) and "nodes" in obj:
        return obj
    if _is_program(obj):
        return graph(obj, names=names)
    return graph(*_flatten([obj], "dagrad.viz.to_dot"), backward=show_backward, names=names)


def to_dot(tensor, show_backward=False, show_values=False, names=None):
    """Graphviz DOT text of the graph that computes ``tensor``, drawn left to right in the source
    material's colours: variables and parameters green, ops teal, outputs purple, backward
    nodes orange; each edge is labelled with the shape it carries.

    Parameters
    ----------
    tensor : Tensor, list of tensors, compiled program or graph description
        What to draw (see ``dagrad.viz.graph``).
    show_backward : bool
        Add the gradient graph, built but not run.
    show_values : bool
        Put each node's value, and its gradient where there is one, in its label. Only
        values already computed are shown: nothing is computed for the picture.
    names : dict, optional
        Labels for some tensors, ``{"x": x}``.

    >>> x = dagrad.tensor(2.0, requires_grad=True)
    >>> print(dagrad.viz.to_dot(x * 3.0).splitlines()[1])
      rankdir=LR;
    """
    desc = _describe(tensor, show_backward, names)
    lines = [
        "digraph dagrad {",
        "  rankdir=LR;",
        '  node [style="filled", fontname="Helvetica", fontsize=11, fontcolor="white", '
        'color="#37474f", penwidth=0.8];',
        '  edge [fontname="Helvetica", fontsize=9, color="#607d8b", fontcolor="#455a64"];',
    ]
    labels = {n["id"]: n["label"] for n in desc["nodes"]}
    for n in desc["nodes"]:
        label = [n["label"]]
        if n["op"] != n["label"] and n["kind"] in ("op", "output"):
            label[0] += f" ({n['op']})"
        label.append(_shape_text(n["shape"]) + ("" if n["dtype"] == "float32" else " " + n["dtype"]))
        if "grad_of" in n:  # the gradient a leaf will receive
            label.append("grad of " + labels[n["grad_of"]])
        if show_values:
            if n.get("value") is not None:
                label.append("value " + n["value"]["text"])
            if n.get("grad") is not None:
                label.append("grad " + n["grad"]["text"])
        attrs = {
            "label": "\n".join(label),
            "shape": _SHAPE[n["kind"]],
            "fillcolor": node_color(n),
            "class": f"{n['kind']} {n['pass']}",
            "tooltip": f"{n['op']} #{n['id']} {n['pass']}",
        }
        if n["kind"] == "output":
            attrs["penwidth"] = "2"
        style = ["filled"] + (["rounded"] if attrs["shape"] == "box" else [])
        if n["pass"] == "backward":
            style.append("dashed")
        attrs["style"] = ",".join(style)
        lines.append(f"  n{n['id']} [" + ", ".join(f"{k}={_quote(v)}" for k, v in attrs.items()) + "];")
    backward = {n["id"] for n in desc["nodes"] if n["pass"] == "backward"}
    for e in desc["edges"]:
        attrs = {"label": _shape_text(e["shape"])}
        if e["dst"] in backward:
            attrs["color"] = COLORS["backward"]
            attrs["style"] = "dashed"
        lines.append(f"  n{e['src']} -> n{e['dst']} [" + ", ".join(f"{k}={_quote(v)}" for k, v in attrs.items())
                     + "];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(tensor, path, show_backward=False, show_values=False, names=None):
    """Draws the graph to ``path`` (.svg, .png or .pdf, by its extension) with Graphviz.

    Needs the optional extra: ``pip install dagrad[viz]`` and the Graphviz program
    (``apt-get install graphviz``); without them it raises ImportError or RuntimeError
    saying so. Returns ``path``.
    """
    fmt = os.path.splitext(str(path))[1].lstrip(".").lower()
    if fmt not in ("svg", "png", "pdf"):
        raise ValueError(f"dagrad.viz.render: cannot tell the format from {str(path)!r}; "
                         "give a path ending in .svg, .png or .pdf")
    text = to_dot(tensor, show_backward=show_backward, show_values=show_values, names=names)
    try:
        import graphviz
    except ImportError as e:
        raise ImportError(f"dagrad.viz.render needs the graphviz Python package and program: {_INSTALL}") from e
    try:
        data = graphviz.Source(text).pipe(format=fmt)
    except graphviz.ExecutableNotFound as e:
        raise RuntimeError(f"dagrad.viz.render: the Graphviz program 'dot' was not found on PATH: {_INSTALL}") from e
    with open(path, "wb") as f:
        f.write(data)
    return path
