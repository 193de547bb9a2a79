"""The ASGI app: the page and its files, and one WebSocket per tab that carries requests,
replies and the training stream. Starlette only; Uvicorn serves it (``__main__.py``).

The protocol, JSON both ways: the page sends ``{"id": n, "type": ..., "params": {...}}``; the
reply is ``{"id": n, "type": ..., "ok": true, "data": ...}`` or ``{"id": n, "type": ...,
"ok": false, "error": "..."}``. While a run plays, the server also sends ``{"type":
"train.update", "data": {"steps": [...], "summary": {...}}}`` and, when it stops,
``{"type": "train.stopped", "data": {...}}``; ``train.play`` and ``train.pause`` start and
stop that stream.
"""
import asyncio
import concurrent.futures
import contextlib
import json
import pathlib

from starlette.applications import Starlette
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

from ..viz import COLORS
from ..viz.html import _tint
from ._session import Session, error_text

STATIC = pathlib.Path(__file__).with_name("static")
VIZ_STATIC = pathlib.Path(__file__).resolve().parents[1] / "viz" / "static"

MAX_SESSIONS = 32          # tabs at once; one more is told so and closed
MAX_MESSAGE = 64 * 1024    # bytes in one request
TICK_S = 0.04              # pause between two streamed training updates

# Note [One dagrad worker]
# ~~~~~~~~~~~~~~~~~~~~~~~~
# Every dagrad call of the server runs on one worker thread, never on the event loop:
# - the loop stays free while dagrad computes (dagrad releases the GIL while it runs), so
#   pages, replies and other tabs' streams keep moving;
# - what dagrad keeps per process (the thread budget, the schedule, the profiler's recording;
#   Note [Nested profilers]) is changed by one request at a time: the execution demo's
#   profile holds its own run only, not another tab's training steps, and its thread count is
#   not changed under it (Note [One thread count at a time] in _demos.py);
# - a tab's training state is touched by that thread only, so a learning-rate change lands
#   between two steps, never inside one: the next step uses the new rate.
# The price: tabs take turns. Every request is bounded (the CAPS in _demos.py), and a playing
# run hands the worker back after each update of a few steps.


def create_app():
    """The playground's Starlette app (one dagrad worker thread, one Session per WebSocket)."""
    worker = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="dagrad-playground")
    sessions = set()

    async def run(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(worker, fn, *args)

    async def index(request):
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    async def theme(request):
        css = ":root {" + "".join(
            f"--{k}-line: {c}; --{k}-fill: {_tint(c)};" for k, c in
            (("var", COLORS["variable"]), ("param", COLORS["parameter"]), ("op", COLORS["op"]),
             ("out", COLORS["output"]), ("bwd", COLORS["backward"]))) + "}\n"
        return Response(css, media_type="text/css")

    async def health(request):
        return JSONResponse({"ok": True, "sessions": len(sessions)})

    async def socket(ws: WebSocket):
        await ws.accept()
        if len(sessions) >= MAX_SESSIONS:
            await ws.send_json({"type": "error", "ok": False,
                                "error": f"the playground serves at most {MAX_SESSIONS} tabs at once; close one"})
            await ws.close(code=1013)
            return
        tab = _Tab(ws, Session(), run)
        sessions.add(tab)
        try:
            await tab.serve()
        finally:
            sessions.discard(tab)
            await tab.pause()

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        for tab in list(sessions):
            await tab.pause()
        worker.shutdown(wait=True, cancel_futures=True)

    routes = [
        Route("/", index),
        Route("/theme.css", theme),
        Route("/health", health),
        WebSocketRoute("/ws", socket),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Mount("/viz", StaticFiles(directory=VIZ_STATIC), name="viz"),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


class _Tab:
    """One WebSocket: reads requests, answers each, and streams the tab's training while it plays."""

    def __init__(self, ws, session, run):
        self.ws = ws
        self.session = session
        self.run = run
        self.player = None
        self.lock = asyncio.Lock()  # the reader and the player both send; one message at a time

    async def send(self, msg):
        async with self.lock:
            await self.ws.send_text(json.dumps(msg, allow_nan=False, separators=(",", ":")))

    async def serve(self):
        while True:
            try:
                message = await self.ws.receive()
            except (WebSocketDisconnect, RuntimeError):  # closed under us
                return
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            msg, rid, kind = None, None, None
            try:
                if text is None:
                    raise _Bad("a request is JSON text, not a binary message")
                if len(text) > MAX_MESSAGE:
                    raise _Bad(f"a request of {len(text)} bytes; at most {MAX_MESSAGE}")
                try:
                    msg = json.loads(text)
                except ValueError:
                    raise _Bad("a request must be JSON") from None
                if not isinstance(msg, dict):
                    raise _Bad("a request is a JSON object with a type and params")
                rid, kind = msg.get("id"), msg.get("type")
                if kind == "train.play":
                    data = await self.play(msg)
                elif kind == "train.pause":
                    await self.pause()
                    data = {"playing": False}
                else:
                    data = await self.run(self.session.handle, msg)
                reply = {"id": rid, "type": kind, "ok": True, "data": data}
            except _Bad as e:
                reply = {"id": rid, "type": kind, "ok": False, "error": str(e)}
            except Exception as e:  # noqa: BLE001 - a failed request is reported; the server goes on
                reply = {"id": rid, "type": kind, "ok": False, "error": error_text(e)}
            try:
                await self.send(reply)
            except (WebSocketDisconnect, RuntimeError):
                return
            except ValueError as e:  # a result that is not JSON (a NaN that slipped through)
                await self.send({"id": rid, "type": kind, "ok": False, "error": error_text(e)})

    async def play(self, msg):
        """Starts streaming the tab's run (a new one first if there is none)."""
        if self.session.fit is None or self.session.fit.stopped:
            await self.run(self.session.handle, {"type": "train.reset", "params": msg.get("params") or {}})
        if self.player is None or self.player.done():
            self.player = asyncio.get_running_loop().create_task(self._play())
        return {"playing": True, "data": self.session.fit.data(), "summary": self.session.fit.summary()}

    async def pause(self):
        if self.player is not None:
            self.player.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.player
            self.player = None

    async def _play(self):
        try:
            while True:
                out = await self.run(self.session.train)
                await self.send({"type": "train.update", "data": out})
                if out["summary"]["stopped"]:
                    await self.send({"type": "train.stopped", "data": out["summary"]})
                    return
                await asyncio.sleep(TICK_S)
        except asyncio.CancelledError:
            raise
        except WebSocketDisconnect:
            return
        except Exception as e:  # noqa: BLE001 - shown on the page; the next run works
            await self._failed(e)

    async def _failed(self, e):
        with contextlib.suppress(Exception):
            await self.send({"type": "train.stopped", "ok": False, "error": error_text(e)})


class _Bad(ValueError):
    pass
