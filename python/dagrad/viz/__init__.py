"""See the graph: one plain description of a graph, and the views built from it.

``graph(*tensors, backward=False)`` describes the graph; ``layout`` places it left to right;
``to_dot`` / ``render`` draw it with Graphviz; ``to_text`` lists it (a compiled program in
schedule order, with its shapes and shared buffers); ``stats`` measures its work, span and
parallelism; ``html`` writes a self-contained explorer. Every view reads the description,
never the C++ graph (DESIGN.md, "One graph description feeds every view").

>>> x = dagrad.tensor(2.0, requires_grad=True)
>>> w = dagrad.tensor(3.0, requires_grad=True)
>>> b = dagrad.tensor(1.0, requires_grad=True)
>>> d = dagrad.viz.graph(x * w + b)
>>> sorted(n["kind"] for n in d["nodes"])
['op', 'output', 'variable', 'variable', 'variable']

The graph description
---------------------
``graph()`` returns a dict of plain Python data (lists, dicts, str, int, float, bool, None),
ready for ``json.dumps``; the views rely on exactly these fields:

``nodes``: list of dicts, in ``order``, one per node:

- ``id`` (int): unique for the life of the tensor (``Tensor._id``);
- ``op`` (str): the op that makes it (``"mul"``, ``"matmul"``, ...; ``"leaf"`` for a leaf);
- ``kind`` (str): ``"variable"`` (a leaf: an input or a constant), ``"parameter"`` (a leaf
  that is an ``nn.Parameter``), ``"op"``, or ``"output"`` (a tensor passed to ``graph``);
- ``shape`` (list of int), ``dtype`` (str, ``"float32"``, ...);
- ``pass`` (str): ``"forward"``, or ``"backward"`` for a node made by autodiff;
- ``label`` (str): the name given in ``names=``, else the op for an op, the value for a
  one-element constant, else ``"variable"`` / ``"parameter"`` (``"constant"`` for a leaf made
  by autodiff);
- ``value``: a summary of the value if it is already computed, else None. Nothing is ever
  computed to describe a graph. A summary is a dict: ``text`` (str, short: ``"7"``,
  ``"[1, 2, 3]"`` or ``"mean 0.1, min -2, max 3"``), ``numel`` (int), ``values`` (the
  flattened values when ``numel <= 16``, else None), ``min``, ``max``, ``mean`` (float; None
  where not finite; non-finite entries of ``values`` are None too);
- ``grad``: a summary of ``.grad`` (leaves, and tensors that called ``retain_grad``) if there is
  one and it is computed, else None;
- ``requires_grad`` (bool), ``realized`` (bool: its value is computed);
- ``storage`` (int, only once the node has a buffer, i.e. has run): the identity of its
  buffer, shared by views (reshape, detach) and by nodes that reuse one buffer;
- ``grad_of`` (int, only with ``backward=True``, on a gradient result): the id of the leaf
  whose gradient it is; ``grad_node`` (int, on that leaf): the id of its gradient.

``edges``: list of dicts ``{"src": id, "dst": id, "shape": [..], "index": k}``: ``dst`` reads
``src`` as its input number ``k``; ``shape`` is what flows along it (``src``'s shape). A node
that reads one tensor twice (``x * x``) has two edges.

``order``: list of ids, topological: every node after its inputs.

``levels``: dict id -> int, the longest distance from a root (a node with no inputs: leaves,
and computed values whose inputs were released). In JSON the keys become strings.

``outputs``: list of ids, the outputs in ``order``.

``schedule`` (only for a compiled program): list of ``{"kind": str, "nodes": [ids]}`` in the
order the program does them; ``kind`` is ``"run"`` (nodes in schedule order), ``"assign"``,
``"grad_set"``, ``"grad_accumulate"``, ``"grad_clear"`` or ``"call"``.

Colours (``COLORS``, shared by every view): variables and parameters green, ops teal, outputs
purple, backward nodes orange; ``THREAD_COLORS`` gives thread i of a timeline its colour.
``layout(desc)`` gives ``{id: (x, y)}``: x the layer, y the place in it (Note [Graph layout]).
"""
from ._describe import graph, summarize
from ._dot import render, to_dot
from ._layout import layout
from ._stats import GraphStats, Speedup, node_cost, stats
from ._style import COLORS, THREAD_COLORS, node_color
from ._text import to_text

__all__ = ["graph", "layout", "to_dot", "to_text", "render", "stats", "GraphStats", "Speedup", "node_cost",
           "summarize", "COLORS", "THREAD_COLORS", "node_color"]

from .html import HTMLView, html  # noqa: E402  (the explorer: html.py, the JS and CSS beside it)

__all__ += ["html", "HTMLView"]
