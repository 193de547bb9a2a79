"""``stats()``: work, span and what they promise for k threads."""
import collections
import heapq

from .._core import Tensor

Speedup = collections.namedtuple("Speedup", ["threads", "low", "estimate", "high"])
Speedup.__doc__ = """Predicted speedup on ``threads`` threads: ``low <= speedup <= high`` by
Brent's bounds, and ``estimate`` from a simulated greedy schedule (see GraphStats.predicted_time)."""


def _numel(shape):
    n = 1
    for d in shape:
        n *= int(d)
    return n


def node_cost(op, shape, input_shapes):
    """dagrad's cost model, as the scheduler's (``node_cost`` in the core's plan): 2*M*N*K
    multiply-adds for a product, one unit per element touched otherwise, 0 for a leaf."""
    if op == "leaf":
        return 0.0
    numel = _numel(shape)
    if op == "matmul" and len(input_shapes) >= 1 and len(input_shapes[0]) >= 2 and len(shape) >= 2:
        a = input_shapes[0]
        m = int(shape[-2])
        # the node may read its first operand transposed; either way K is its other dimension
        k = (int(a[-2]) * int(a[-1])) // m if m else 0
        return 2.0 * numel * k
    if op == "linear" and len(input_shapes) >= 2 and len(input_shapes[1]) >= 2:
        return 2.0 * numel * int(input_shapes[1][1])
    if op in ("reshape", "detach"):
        return 1.0
    return float(max([numel] + [_numel(s) for s in input_shapes])) + 1.0


class GraphStats:
    """Work and span of a graph, and what they promise for k threads.

    Attributes
    ----------
    work : float
        The sum of node costs: the time of a one-thread run, in ``unit``.
    span : float
        The cost of the critical path: the time of a run on unboundedly many threads.
    parallelism : float
        ``work / span``: about the number of threads the graph can keep busy.
    critical_path : list of int
        The node ids on the critical path, first to last.
    nodes : int
        The nodes that cost something (leaves do not run).
    unit : str
        ``"ns"`` for measured times (from a profile), ``"cost"`` for dagrad's cost model
        (multiply-adds for products, elements touched otherwise).
    """

    def __init__(self, work, span, critical_path, nodes, unit, dags=()):
        self.work = float(work)
        self.span = float(span)
        self.parallelism = self.work / self.span if self.span > 0 else 1.0
        self.critical_path = list(critical_path)
        self.nodes = int(nodes)
        self.unit = unit
        self._dags = list(dags)  # (order, preds, cost) per run, for the simulated schedule

    @property
    def measured(self):
        """True when the costs are measured node times (stats of a profile)."""
        return self.unit == "ns"

    def predicted_time(self, k):
        """(low, estimate, high) time on k threads. The bounds are Brent's: no schedule beats
        ``max(work/k, span)``, and a greedy one (a thread never idles while a node is ready, as
        dagrad's scheduler) needs at most ``work/k + span``. The estimate is the length of such
        a greedy schedule, simulated on the graph with the same costs, ready nodes taken
        longest-remaining-path first; it lies within the bounds."""
        k = _threads(k)
        w, s = self.work, self.span
        low, high = max(w / k, s), w / k + s
        if not self._dags:
            return low, (w - s) / k + s, high
        est = sum(_simulate(order, preds, cost, k) for order, preds, cost in self._dags)
        return low, min(max(est, low), high), high

    def predicted_speedup(self, k):
        """The speedup over one thread on k threads, as a ``Speedup(threads, low, estimate, high)``.

        >>> a = [dagrad.ones(64, 64) @ dagrad.ones(64, 64) for _ in range(4)]
        >>> s = dagrad.viz.stats(a[0] + a[1] + a[2] + a[3]).predicted_speedup(4)
        >>> s.low <= s.estimate <= s.high <= 4
        True
        """
        lo_t, est_t, hi_t = self.predicted_time(k)
        w = self.work
        if w <= 0:
            return Speedup(_threads(k), 1.0, 1.0, 1.0)
        return Speedup(_threads(k), w / hi_t, w / est_t, w / lo_t)

    def to_dict(self):
        """The numbers as a plain dict (JSON-ready)."""
        return {"work": self.work, "span": self.span, "parallelism": self.parallelism,
                "critical_path": list(self.critical_path), "nodes": self.nodes, "unit": self.unit}

    def table(self, threads=(1, 2, 4, 8, 16)):
        """The numbers and the predicted speedups as text."""
        unit = "ns" if self.measured else "cost units"
        lines = [
            f"work          {self.work:,.0f} {unit} over {self.nodes} nodes",
            f"span          {self.span:,.0f} {unit} ({len(self.critical_path)} nodes on the critical path)",
            f"parallelism   {self.parallelism:.2f} (work / span: about the threads this graph can keep busy)",
            "threads   speedup (Brent's bounds)   estimate",
        ]
        for k in threads:
            s = self.predicted_speedup(k)
            lines.append(f"{k:7d}   {s.low:6.2f} .. {s.high:<6.2f}            {s.estimate:6.2f}")
        return "\n".join(lines)

    def __str__(self):
        return self.table()

    def __repr__(self):
        return (f"GraphStats(work={self.work:.6g}, span={self.span:.6g}, parallelism={self.parallelism:.3g}, "
                f"nodes={self.nodes}, unit={self.unit!r})")


def _threads(k):
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"predicted_speedup: the thread count must be a positive int, got {k!r}")
    return k


def _longest_path(order, preds, cost):
    """(span, critical path) of a DAG given in topological order."""
    finish, via = {}, {}
    for n in order:
        best, arg = 0.0, None
        for p in preds[n]:
            if finish[p] > best or (arg is None and finish[p] >= best):
                best, arg = finish[p], p
        finish[n] = best + cost[n]
        via[n] = arg
    if not finish:
        return 0.0, []
    end = order[0]
    for n in order:  # the last of the longest: the path ends at a sink, not a zero-cost node before it
        if finish[n] >= finish[end]:
            end = n
    span = finish[end]
    path = []
    while end is not None:
        path.append(end)
        end = via[end]
    path.reverse()
    # Leaves cost nothing: the path starts at the first node that runs.
    while len(path) > 1 and cost[path[0]] == 0:
        path.pop(0)
    return span, path


def _from_description(desc):
    by_id = {n["id"]: n for n in desc["nodes"]}
    preds = {i: [] for i in desc["order"]}
    in_shapes = {i: [] for i in desc["order"]}
    for e in sorted(desc["edges"], key=lambda e: (e["dst"], e.get("index", 0))):
        preds[e["dst"]].append(e["src"])
        in_shapes[e["dst"]].append(e["shape"])
    cost = {i: node_cost(by_id[i]["op"], by_id[i]["shape"], in_shapes[i]) for i in desc["order"]}
    span, path = _longest_path(desc["order"], preds, cost)
    return GraphStats(sum(cost.values()), span, path, sum(1 for c in cost.values() if c > 0), "cost",
                      [(desc["order"], preds, cost)])


def _from_events(events):
    """Measured: each run of the profile is a DAG of its nodes (edges from their inputs that ran
    in the same run); runs follow one another, so their spans add up."""
    runs = collections.defaultdict(list)
    for e in events:
        runs[e.get("run", 0)].append(e)
    work = span = 0.0
    path = []
    count = 0
    dags = []
    for run in sorted(runs):
        evs = sorted(runs[run], key=lambda e: (e["start_ns"], e["end_ns"]))
        ids = {e["node"] for e in evs}
        cost = {e["node"]: float(e["end_ns"] - e["start_ns"]) for e in evs}
        preds = {e["node"]: [p for p in e.get("inputs", ()) if p in ids and p != e["node"]] for e in evs}
        order = _topological(list(cost), preds)
        s, p = _longest_path(order, preds, cost)
        work += sum(cost.values())
        span += s
        path += p
        count += len(evs)
        dags.append((order, preds, cost))
    return GraphStats(work, span, path, count, "ns", dags)


def _simulate(order, preds, cost, k):
    """The length of a greedy list schedule of the DAG on k threads (event-driven): whenever a
    thread is free and a node is ready, it starts the ready node with the longest path to the
    end of the graph (ties: topological order)."""
    succs = {n: [] for n in order}
    indeg = {n: len(preds[n]) for n in order}
    for n in order:
        for p in preds[n]:
            succs[p].append(n)
    rank = {n: r for r, n in enumerate(order)}
    bottom = {}
    for n in reversed(order):
        bottom[n] = cost[n] + max((bottom[c] for c in succs[n]), default=0.0)
    ready = [(-bottom[n], rank[n], n) for n in order if indeg[n] == 0]
    heapq.heapify(ready)
    running = []
    now, free = 0.0, k
    while ready or running:
        while free and ready:
            _, r, n = heapq.heappop(ready)
            heapq.heappush(running, (now + cost[n], r, n))
            free -= 1
        now, _, n = heapq.heappop(running)
        free += 1
        for c in succs[n]:
            indeg[c] -= 1
            if indeg[c] == 0:
                heapq.heappush(ready, (-bottom[c], rank[c], c))
    return now


def _topological(nodes, preds):
    """Kahn's order, ties in the given order (the nodes' start times)."""
    indeg = {n: len(preds[n]) for n in nodes}
    succs = {n: [] for n in nodes}
    for n in nodes:
        for p in preds[n]:
            succs[p].append(n)
    ready = collections.deque(n for n in nodes if indeg[n] == 0)
    order = []
    while ready:
        n = ready.popleft()
        order.append(n)
        for c in succs[n]:
            indeg[c] -= 1
            if indeg[c] == 0:
                ready.append(c)
    if len(order) != len(nodes):
        raise ValueError("dagrad.viz.stats: the profile's dependencies form a cycle")
    return order


def stats(*graph, backward=False):
    """Work, span, parallelism and the critical path of a graph: how many threads it can use.

    Parameters
    ----------
    *graph : Tensor(s), a compiled program, a graph description, or a profile
        With tensors or a program, node costs come from dagrad's cost model; with a
        ``dagrad.profile`` (or its ``events``), they are the measured node times.
    backward : bool
        With tensors: include their gradient graph (``dagrad.viz.graph(..., backward=True)``).

    Returns
    -------
    GraphStats
        ``work``, ``span``, ``parallelism = work / span``, ``critical_path`` (node ids) and
        ``predicted_speedup(k)``.

    >>> branches = [dagrad.ones(64, 64) @ dagrad.ones(64, 64) for _ in range(4)]
    >>> s = dagrad.viz.stats(dagrad.stack(branches))
    >>> round(s.parallelism, 1)
    3.9
    """
    from ._describe import _flatten, graph as describe
    if len(graph) == 1:
        g = graph[0]
        if hasattr(g, "events") and not isinstance(g, Tensor):
            return _from_events(g.events)
        if isinstance(g, dict) and "nodes" in g:
            return _from_description(g)
        if isinstance(g, (list, tuple)) and g and all(isinstance(e, dict) for e in g):
            return _from_events(g)
        if not isinstance(g, (Tensor, list, tuple)):
            return _from_description(describe(g))
    return _from_description(describe(*_flatten(graph, "dagrad.viz.stats"), backward=backward))
