"""One browser tab's state and what each of its requests does, without any web framework: the
server (``_app.py``) gives every WebSocket connection its own ``Session`` and calls ``handle``
on the dagrad worker (Note [One dagrad worker])."""
import sys
import traceback

from . import _demos
from ._demos import CAPS, InputError

REQUESTS = ("hello", "execution", "backprop", "train.reset", "train.step", "train.lr", "train.speed",
            "train.compare")


class Session:
    """What one tab has going: its training run (a ``LineFit`` or a ``DigitsFit``) and how many steps each streamed
    update takes. The execution and backprop demos keep nothing between requests.

    >>> s = Session()
    >>> s.handle({"type": "backprop", "params": {}})["grads"]
    {'x': 3.0, 'w': 2.0, 'b': 1.0}
    """

    def __init__(self):
        self.fit = None
        self.steps_per_tick = 2

    def handle(self, msg):
        """The reply data for one request ``{"type": ..., "params": {...}}``. Raises InputError
        for bad input, and whatever a run raised if it failed."""
        if not isinstance(msg, dict):
            raise InputError("a request is a JSON object with a type and params")
        kind = msg.get("type")
        params = msg.get("params") or {}
        if not isinstance(params, dict):
            raise InputError("params: expected a JSON object")
        if kind == "hello":
            return {"caps": CAPS, "max_threads": _demos.max_threads(), "graphs": list(_demos.GRAPHS),
                    "schedules": list(_demos.SCHEDULES), "examples": _demos.EXAMPLES, "states": _demos.STATES,
                    "tasks": list(_demos.TASKS)}
        if kind == "execution":
            return _demos.execution(params)
        if kind == "backprop":
            return _demos.backprop(params)
        if kind == "train.reset":
            self.fit = _demos.new_run(params)
            return {"data": self.fit.data(), "summary": self.fit.summary()}
        if kind == "train.step":
            k = _demos.number(params, "steps", 1, CAPS["steps_per_tick"], 1, integer=True, label="steps")
            return self.train(k)
        if kind == "train.lr":
            lr = _demos.learning_rate(params.get("lr"))
            self._need_fit().set_lr(lr)
            return {"lr": self.fit.lr, "summary": self.fit.summary()}
        if kind == "train.speed":
            self.steps_per_tick = _demos.number(params, "steps_per_tick", 1, CAPS["steps_per_tick"], 2, integer=True,
                                                label="steps per update")
            return {"steps_per_tick": self.steps_per_tick}
        if kind == "train.compare":
            return _demos.compare(params)
        raise InputError(f"unknown request {str(kind)[:40]!r}; expected one of {', '.join(REQUESTS)}")

    def train(self, k=None):
        """Takes ``k`` steps (default: steps_per_tick) of the tab's run: the new records and the
        run's summary (state, lr, and why it stopped if it did)."""
        fit = self._need_fit()
        steps = fit.step(self.steps_per_tick if k is None else k)
        return {"steps": steps, "summary": fit.summary()}

    def _need_fit(self):
        if self.fit is None:
            raise InputError("training: press Reset (or Play) to start a run first")
        return self.fit


def error_text(exc):
    """What the page shows for a failed request: the message of bad input as it is; for a
    failure inside a run, its type and message (the traceback goes to the server's stderr)."""
    if isinstance(exc, InputError):
        return str(exc)
    traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    return f"the run failed: {type(exc).__name__}: {exc}"
