"""The playground: the source material's three demos, live in a browser, computed by dagrad.

``python -m dagrad.playground`` (or the ``dagrad-playground`` command) serves one page on
http://127.0.0.1:8765/ and opens it. Its three demos run dagrad in the server process:

- **Execution**: a graph (z = x*w + b, K independent branches, a small MLP's training step)
  run with the profiler on at 1 to all cores, replayed node by node with one timeline track
  per thread, with its work, span, parallelism, predicted and measured speedup;
- **Backprop**: z = x*w + b (and a 2-layer scalar network) forward, then backward one node
  at a time with each local rule written out, next to the gradients of dagrad's backward;
- **Training**: a line fitted to noisy samples of 3x + 7, streamed step by step, with a
  learning rate that changes the running optimizer, and its state named (converging, too
  slow, oscillating, diverging).

It needs the ``playground`` extra: ``pip install 'dagrad[playground]'`` (Starlette, Uvicorn
and websockets). The page and its scripts are files in this package: nothing is fetched from
the network. The caps on what a request may ask for are ``CAPS``.

>>> from dagrad.playground import CAPS
>>> CAPS["branches"], CAPS["train_steps"]
(16, 20000)
"""
from ._demos import CAPS, InputError

__all__ = ["CAPS", "InputError", "create_app", "main"]

INSTALL = "pip install 'dagrad[playground]'"


def _require():
    missing = []
    for mod in ("starlette", "uvicorn", "websockets"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise ImportError(f"dagrad.playground needs {', '.join(missing)} (the playground extra): {INSTALL}")


def create_app():
    """The playground's ASGI app (Starlette), to serve with any ASGI server.

    Raises ImportError, saying what to install, without the ``playground`` extra.
    """
    _require()
    from ._app import create_app as make
    return make()


def main(argv=None):
    """The ``dagrad-playground`` command: serves the playground and opens it in the browser.

    ``--port`` (default 8765; 0 picks a free one), ``--host`` (default 127.0.0.1: only this
    machine), ``--no-browser``. Prints the URL; Ctrl-C stops it. Returns the exit status.
    """
    from .__main__ import main as run
    return run(argv)
