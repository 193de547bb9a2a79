"""Per-node execution records: which op ran on which thread, and when.

>>> import dagrad
>>> with dagrad.profiler.profile() as prof:
...     dagrad.realize(dagrad.ones(4) * 2)
>>> prof.events[0]["op"]
'mul'
"""
import json

from . import _core


class profile:
    """Context manager that records every node the scheduler runs inside it."""

    def __init__(self):
        self.events = []

    def __enter__(self):
        _core._profiler_take_events()  # drop anything recorded earlier
        _core._profiler_set_enabled(True)
        return self

    def __exit__(self, *exc):
        _core._profiler_set_enabled(False)
        self.events = list(_core._profiler_take_events())
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
