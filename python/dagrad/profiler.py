"""Per-node execution records: which op ran on which thread, and when.

>>> import dagrad
>>> with dagrad.profiler.profile() as prof:
...     dagrad.realize(dagrad.ones(4) * 2)
>>> prof.events[0]["op"]
'mul'
"""
import json
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
        """Writes the events as a Chrome trace (chrome://tracing, Perfetto): one lane per thread."""
        t0 = min((e["start_ns"] for e in self.events), default=0)
        trace = [{
            "name": e["op"], "cat": "node", "ph": "X", "pid": 0, "tid": e["thread"],
            "ts": (e["start_ns"] - t0) / 1000.0, "dur": (e["end_ns"] - e["start_ns"]) / 1000.0,
            "args": {"node": e["node"]},
        } for e in self.events]
        with open(path, "w") as f:
            json.dump({"traceEvents": trace, "displayTimeUnit": "ns"}, f)
