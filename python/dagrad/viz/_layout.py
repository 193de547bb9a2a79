"""``layout()``: where each node of a graph description goes, left to right.

Note [Graph layout]
~~~~~~~~~~~~~~~~~~~
Every view draws the same picture, so the layout is computed once, here, from the graph
description, and DOT's picture is the only one laid out elsewhere (Graphviz lays out what it
renders). It is a small Sugiyama-style layered layout:

- layers by longest path from the sources (a node's ``levels`` entry), then each source moved
  right to just before its earliest consumer, so that a bias added late in a model is drawn
  next to its add, not in the first column with the inputs;
- each edge that spans several layers gets invisible dummy nodes, one per layer it crosses,
  so that long edges take part in the ordering like short ones; but an edge longer than
  8 layers (a weight shared by every step of an unrolled RNN, read 60 times along the
  graph) only gets drawn: its dummies would outnumber the nodes a hundred to one, and
  ordering by them would not make such an edge short;
- within a layer, nodes are ordered by the barycenter heuristic (the mean position of their
  neighbours in the layer before, then after), a few sweeps down and up, keeping the order
  with the fewest edge crossings (counted exactly with a Fenwick tree).

Why not Graphviz for the HTML: the explorer must open by double-click with nothing
installed, and a ``dot`` binary (or a WebAssembly build of it inlined into every page) is a
dependency the page cannot assume; and the playground would need it again on the server.
This layout is some 100 lines of Python, deterministic, fast enough for the 2,000-node graphs
the explorer must handle (linear-time layering, a few O(E log V) sweeps), and gives the HTML,
the playground and any later view one picture. Graphviz stays the renderer of the DOT export
(``dagrad.viz.render``), where it is the standard and optional.
"""

_SWEEPS = 4
_LONGEST_ORDERED = 8  # layers an edge may span and still take part in the ordering


def _crossings(pos, edges, width):
    """Edge crossings between two adjacent layers: inversions of the lower ends once the edges
    are sorted by their upper ends (a Fenwick tree counts them in O(E log V))."""
    pairs = sorted((pos[u], pos[v]) for u, v in edges)
    size = width + 1
    tree = [0] * (size + 1)
    count = 0
    seen = 0
    for _, lv in pairs:
        # edges seen so far whose lower end lies strictly right of lv cross this one
        i, below = lv + 1, 0
        while i > 0:
            below += tree[i]
            i -= i & -i
        count += seen - below
        i = lv + 1
        while i <= size:
            tree[i] += 1
            i += i & -i
        seen += 1
    return count


def layout(desc):
    """Positions for the nodes of a graph description (``dagrad.viz.graph``): ``{id: (x, y)}``,
    x the layer (0 at the left, one per unit) and y the place in the layer (one per unit,
    each layer centred on 0). See Note [Graph layout].

    >>> x = dagrad.tensor(2.0, requires_grad=True)
    >>> pos = dagrad.viz.layout(dagrad.viz.graph(x * 3.0))
    >>> sorted(x for x, _ in pos.values())
    [0.0, 0.0, 1.0]
    """
    order = list(desc["order"])
    preds = {i: [] for i in order}
    succs = {i: [] for i in order}
    for e in desc["edges"]:
        preds[e["dst"]].append(e["src"])
        succs[e["src"]].append(e["dst"])
    layer = {}
    for i in order:
        layer[i] = 1 + max((layer[p] for p in preds[i]), default=-1)
    for i in reversed(order):
        if not preds[i] and succs[i]:
            layer[i] = min(layer[s] for s in succs[i]) - 1

    # Dummy nodes split each long edge into one edge per layer; a dummy is a tuple, never an id.
    up = {i: [] for i in order}    # neighbours in the layer before
    down = {i: [] for i in order}  # neighbours in the layer after
    layer_of = dict(layer)
    dummies = []
    for e in desc["edges"]:
        a, b = e["src"], e["dst"]
        if layer[b] - layer[a] > _LONGEST_ORDERED:
            continue  # drawn, not ordered: see Note [Graph layout]
        prev = a
        for lay in range(layer[a] + 1, layer[b]):
            d = ("dummy", len(dummies))
            dummies.append(d)
            layer_of[d] = lay
            up[d], down[d] = [prev], []
            down[prev].append(d)
            prev = d
        down[prev].append(b)
        up[b].append(prev)

    n_layers = 1 + max(layer_of.values(), default=-1)
    layers = [[] for _ in range(n_layers)]
    for i in order:  # the description's order first: dummies follow their source below
        layers[layer_of[i]].append(i)
    for d in dummies:
        layers[layer_of[d]].append(d)

    def positions():
        return {n: k for lay in layers for k, n in enumerate(lay)}

    def total_crossings(pos):
        c = 0
        for k in range(n_layers - 1):
            c += _crossings(pos, [(u, v) for u in layers[k] for v in down[u]], len(layers[k + 1]))
        return c

    def sweep(rng, neighbours):
        pos = positions()
        for k in rng:
            def key(n, pos=pos):
                ns = neighbours[n]
                return (sum(pos[m] for m in ns) / len(ns)) if ns else pos[n]
            layers[k].sort(key=key)  # stable: ties keep their current order
            for j, n in enumerate(layers[k]):
                pos[n] = j

    best = [list(lay) for lay in layers]
    best_c = total_crossings(positions())
    for _ in range(_SWEEPS):
        if best_c == 0:
            break
        sweep(range(1, n_layers), up)
        sweep(range(n_layers - 2, -1, -1), down)
        c = total_crossings(positions())
        if c < best_c:
            best, best_c = [list(lay) for lay in layers], c

    out = {}
    for k, lay in enumerate(best):
        centre = (len(lay) - 1) / 2.0
        for j, n in enumerate(lay):
            if n in layer:
                out[n] = (float(k), float(j) - centre)
    return out
