"""``to_text()``: a graph description as a listing, in schedule order for a compiled program."""


def _shape(shape):
    return "(" + ", ".join(str(d) for d in shape) + ("," if len(shape) == 1 else "") + ")"


def to_text(graph, names=None):
    """A listing of the nodes, one per line, with their shapes, inputs and buffers: for a
    compiled program (``dagrad.compile`` function or ``Program``), everything it does in
    schedule order; for tensors, their graph in topological order.

    A node that shares a buffer with an earlier one (a view, or a reused buffer) says so.

    >>> x = dagrad.tensor([1.0, 2.0], requires_grad=True)
    >>> print(dagrad.viz.to_text(x * 2.0, names={"x": x}))  # doctest: +NORMALIZE_WHITESPACE
    graph: 1 op, 2 leaves
      #... x    (2,)  variable
      #... 2    ()    variable
      #... mul  (2,)  output  <- #... x, #... 2
    """
    from ._dot import _describe
    desc = _describe(graph, False, names)
    nodes = {n["id"]: n for n in desc["nodes"]}
    inputs = {i: [] for i in desc["order"]}
    for e in sorted(desc["edges"], key=lambda e: (e["dst"], e.get("index", 0))):
        inputs[e["dst"]].append(e["src"])
    owner = {}  # buffer -> first node seen with it

    def name(n):
        if n["op"] == "leaf" or n["label"] == n["op"]:
            return n["label"]
        return f"{n['op']} {n['label']}"

    width = max([len(name(n)) for n in desc["nodes"]] + [4])

    def ref(i):
        n = nodes.get(i)
        return f"#{i}" + (f" {n['label']}" if n and n["label"] != n["op"] else "")

    def line(i):
        n = nodes[i]
        kind = n["kind"] + (" (backward)" if n["pass"] == "backward" else "")
        text = f"  #{i:<5} {name(n):<{width}} {_shape(n['shape']):<12} {kind:<14}"
        if n["dtype"] != "float32":
            text += f" {n['dtype']}"
        if inputs[i]:
            text += " <- " + ", ".join(ref(p) for p in inputs[i])
        buf = n.get("storage")
        if buf is not None:
            if buf in owner and owner[buf] != i:
                text += f"  [buffer of #{owner[buf]}]"
            owner.setdefault(buf, i)
        return text.rstrip()

    if "schedule" not in desc:
        ops = sum(1 for n in desc["nodes"] if n["op"] != "leaf")
        lines = [f"graph: {ops} op{'s' * (ops != 1)}, {len(desc['nodes']) - ops} leaves"]
        lines += [line(i) for i in desc["order"]]
        return "\n".join(lines)

    runs = [e for e in desc["schedule"] if e["kind"] == "run"]
    counts = {}
    for e in desc["schedule"]:
        counts[e["kind"]] = counts.get(e["kind"], 0) + 1
    lines = ["program: " + ", ".join(f"{c} {k}" for k, c in counts.items())
             + f"; {sum(len(e['nodes']) for e in runs)} nodes run"]
    ran = {i for e in runs for i in e["nodes"]}
    read = [i for i in desc["order"] if i not in ran]
    if read:
        lines.append("reads")
        lines += [line(i) for i in read]
    for k, e in enumerate(desc["schedule"]):
        if e["kind"] == "run":
            lines.append(f"{k + 1}. run ({len(e['nodes'])} nodes, in schedule order)")
            lines += [line(i) for i in e["nodes"]]
        else:
            lines.append(f"{k + 1}. {e['kind']}" + (" " + ", ".join(ref(i) for i in e["nodes"]) if e["nodes"] else ""))
    return "\n".join(lines)
