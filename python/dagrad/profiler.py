"""Per-node execution records: which op ran on which thread, and when.

``dagrad.profile`` is the public name of ``dagrad.profiler.profile``.

>>> import dagrad
>>> with dagrad.profile() as prof:
...     dagrad.realize(dagrad.ones(4) * 2)
>>> prof.events[0]["op"]
'mul'
>>> rows = prof.summary()  # doctest: +ELLIPSIS
op ...
mul ...
"""
import json
import sys
import threading

from . import _core

# Note [Nested profilers]
# ~~~~~~~~~~~~~~~~~~~~~~~
# The C++ recorder is one process-wide switch with one set of per-thread buffers, and taking
# the events empties them. Several profilers may be active at once (nested, or overlapping in
# time), so the buffers are drained here, into every profiler active at that moment, whenever
# the set of active profilers changes: an event then reaches exactly the profilers that were
# active when it was recorded. Recording is switched on by the first profiler to enter and off
# when the last one leaves. `_lock` keeps the drain and the change of the set one step.
_lock = threading.Lock()
_active = []


def _drain_locked():
    events = _core._profiler_take_events()
    if events:
        for i, p in enumerate(_active):  # own dicts per profiler: editing one leaves the others
            p.events.extend(events if i == 0 else [dict(e) for e in events])


def last_run_stats():
    """What the last scheduler run did: the nodes it computed, the threads it used, whether
    nodes ran in parallel, and how many nodes ran inside a fused group.

    >>> import dagrad
    >>> dagrad.realize(dagrad.ones(4) * 2)
    >>> stats = dagrad.profiler.last_run_stats()
    >>> sorted(stats), stats["nodes"]
    (['fused', 'nodes', 'parallel', 'peak_bytes', 'threads_used'], 1)
    """
    return _core.last_run_stats()


class profile:
    """Context manager that records every node the scheduler runs inside it.

    Profilers nest: each one sees every node run while it is active, and leaving an inner one
    neither stops the outer one nor takes its events.

    >>> import dagrad
    >>> with dagrad.profiler.profile() as outer:
    ...     dagrad.realize(dagrad.ones(2) + 1)
    ...     with dagrad.profiler.profile() as inner:
    ...         dagrad.realize(dagrad.ones(2) * 3)
    >>> [e["op"] for e in outer.events], [e["op"] for e in inner.events]
    (['add', 'mul'], ['mul'])
    """

    def __init__(self):
        self.events = []

    def __enter__(self):
        with _lock:
            if self in _active:
                raise RuntimeError("profiler.profile: this profiler is already active")
            if _active:
                _drain_locked()  # what ran so far belongs to the outer profilers only
            else:
                _core._profiler_take_events()  # drop anything recorded before any profiler
                _core._profiler_set_enabled(True)
            self.events = []
            _active.append(self)
        return self

    def __exit__(self, *exc):
        with _lock:
            if self not in _active:
                return False
            if len(_active) == 1:
                _core._profiler_set_enabled(False)
            _drain_locked()
            _active.remove(self)
        self.events.sort(key=lambda e: (e["start_ns"], e["node"]))
        return False

    def threads(self):
        """The set of worker indices that ran at least one node."""
        return {e["thread"] for e in self.events}

    def export_chrome_trace(self, path):
        """Writes the run as a Chrome trace (chrome://tracing, ui.perfetto.dev).

        One named track per worker thread; one ``X`` slice per node with its op, id, shape,
        dtype, pass, inputs and fused members in ``args`` (a fused group is named after its
        members); a flow arrow (``s`` to ``f``) for each dependency whose producer and consumer
        ran on different threads; and a ``C`` counter of the ready list's length.
        """
        with open(path, "w") as f:
            json.dump(chrome_trace(self.events), f)
        return path

    def summary(self, file=None):
        """Prints (to ``file``, default stdout; None: sys.stdout) and returns a table of time
        by op: calls, total and mean time, share of the total. A backward op is its own row,
        ``mul (backward)``.

        Returns
        -------
        list of dict
            One row per (op, pass), most time first: ``op``, ``pass``, ``calls``,
            ``total_ns``, ``mean_ns``, ``share`` (0 to 1).
        """
        rows = summary_rows(self.events)
        print(format_summary(rows), file=file or sys.stdout)
        return rows


def _slice_name(e):
    ops = [m["op"] for m in e.get("fused", ())]
    if ops:
        if e["op"] not in ops or e["node"] not in {m["node"] for m in e["fused"]}:
            ops = ops + [e["op"]]
        name = "fused " + "+".join(ops)
    else:
        name = e["op"]
    return name + (" (backward)" if e.get("pass") == "backward" else "")


def chrome_trace(events):
    """The Chrome trace-event JSON object for a list of profiler events (see
    ``profile.export_chrome_trace``)."""
    events = sorted(events, key=lambda e: (e["start_ns"], e["node"]))
    t0 = min((e["start_ns"] for e in events), default=0)

    def us(ns):
        return (ns - t0) / 1000.0

    trace = [{"name": "process_name", "ph": "M", "pid": 0, "args": {"name": "dagrad"}}]
    for tid in sorted({e["thread"] for e in events}):
        trace.append({"name": "thread_name", "ph": "M", "pid": 0, "tid": tid, "args": {"name": f"worker {tid}"}})
        trace.append({"name": "thread_sort_index", "ph": "M", "pid": 0, "tid": tid, "args": {"sort_index": tid}})
    for e in events:
        trace.append({
            "name": _slice_name(e), "cat": e.get("pass", "forward"), "ph": "X", "pid": 0, "tid": e["thread"],
            "ts": us(e["start_ns"]), "dur": (e["end_ns"] - e["start_ns"]) / 1000.0,
            "args": {
                "node": e["node"], "op": e["op"], "pass": e.get("pass", "forward"),
                "shape": list(e.get("shape", ())), "dtype": e.get("dtype"), "inputs": list(e.get("inputs", ())),
                "fused": [f"{m['op']} #{m['node']}" for m in e.get("fused", ())],
                "ready": e.get("ready", -1), "run": e.get("run", 0),
            },
        })
    # Flow arrows for the dependencies that cross threads. Each end sits strictly inside its
    # slice (the producer's last instant, the consumer's first) so that both viewers bind it
    # to that slice ("bp": "e": the enclosing slice).
    by_node = {(e.get("run", 0), e["node"]): e for e in events}
    flow = 0
    for e in events:
        for i in e.get("inputs", ()):
            p = by_node.get((e.get("run", 0), i))
            if p is None or p["thread"] == e["thread"]:
                continue
            flow += 1
            p_end, p_dur = us(p["end_ns"]), (p["end_ns"] - p["start_ns"]) / 1000.0
            c_start, c_dur = us(e["start_ns"]), (e["end_ns"] - e["start_ns"]) / 1000.0
            common = {"name": "dependency", "cat": "dependency", "id": flow, "pid": 0}
            trace.append({**common, "ph": "s", "tid": p["thread"], "ts": p_end - min(p_dur / 2, 0.001)})
            trace.append({**common, "ph": "f", "bp": "e", "tid": e["thread"],
                          "ts": c_start + min(c_dur / 2, 0.001)})
    for e in events:
        if e.get("ready", -1) >= 0:
            trace.append({"name": "ready nodes", "ph": "C", "pid": 0, "ts": us(e["start_ns"]),
                          "args": {"ready": e["ready"]}})
    return {"traceEvents": trace, "displayTimeUnit": "ns"}


def summary_rows(events):
    """Rows of ``profile.summary``: time by (op, pass), most first."""
    acc = {}
    for e in events:
        key = (_slice_name(e).replace(" (backward)", ""), e.get("pass", "forward"))
        calls, total = acc.get(key, (0, 0))
        acc[key] = (calls + 1, total + (e["end_ns"] - e["start_ns"]))
    grand = sum(total for _, total in acc.values())
    rows = [{"op": op, "pass": pass_, "calls": calls, "total_ns": total, "mean_ns": total / calls,
             "share": total / grand if grand else 0.0}
            for (op, pass_), (calls, total) in acc.items()]
    rows.sort(key=lambda r: (-r["total_ns"], r["op"], r["pass"]))
    return rows


def format_summary(rows):
    """The rows of ``summary_rows`` as a text table."""
    names = [r["op"] + (" (backward)" if r["pass"] == "backward" else "") for r in rows]
    width = max([len("op")] + [len(n) for n in names])
    lines = [f"{'op':<{width}}  {'calls':>7}  {'total (us)':>12}  {'mean (us)':>11}  {'share':>7}"]
    for name, r in zip(names, rows):
        lines.append(f"{name:<{width}}  {r['calls']:>7}  {r['total_ns'] / 1e3:>12.1f}  "
                     f"{r['mean_ns'] / 1e3:>11.2f}  {100 * r['share']:>6.1f}%")
    total = sum(r["total_ns"] for r in rows)
    lines.append(f"{'total':<{width}}  {sum(r['calls'] for r in rows):>7}  {total / 1e3:>12.1f}  "
                 f"{'':>11}  {100.0 if rows else 0.0:>6.1f}%")
    return "\n".join(lines)
