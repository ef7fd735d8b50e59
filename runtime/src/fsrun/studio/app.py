"""The studio's web app (Starlette): pages, the JSON API, server-sent events, the guard.

Every request passes the guard (security.py): token, then for changing requests the Origin
and Host checks. Paths come as `video=RELATIVE/PATH` and are resolved under the folder only.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.requests import Request
from starlette.responses import (FileResponse, JSONResponse, PlainTextResponse, Response,
                                 StreamingResponse)
from starlette.routing import Route

import fsrun
from fsrun import defaults
from fsrun.defaults import DEFAULT_STRIDE, DEFAULT_TRAIN_EPOCHS
from fsrun.crop import parse_crop
from fsrun.errors import FsError
from fsrun.run.request import RunHooks, SessionSpec
from fsrun.numbers import is_finite
from fsrun.studio import security
from fsrun.studio.jobs import JobQueue
from fsrun.axes import AXES, STROKE
from fsrun.studio.library import Library
from fsrun.studio.state import StudioState
from fsrun.studio.training import Training
from fsrun.studio.viewer import Viewer
from fsrun.studio.words import page_words

STATIC = Path(__file__).resolve().parent / "static"
PAGES = {"/": "library.html", "/viewer": "viewer.html"}
STATIC_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html",
                ".svg": "image/svg+xml"}


# Events a page may fall behind by; past that its oldest are dropped (a page that stalls, a tab
# in the background): the worker that publishes never waits for a reader.
LISTENER_BACKLOG = 1000
# Seconds between keep-alive comments on a quiet event stream (proxies close idle ones).
KEEPALIVE_S = 15.0


class EventHub:
    """Fan-out of events to every page listening (server-sent events). publish() never blocks:
    a listener that does not read loses its oldest events, never slows the job publishing."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.listeners: list[queue.Queue] = []

    def publish(self, event: dict) -> None:
        with self.lock:
            listeners = list(self.listeners)
        for listener in listeners:
            while True:
                try:
                    listener.put_nowait(event)
                    break
                except queue.Full:
                    try:
                        listener.get_nowait()  # drop the oldest: the page reloads its state
                    except queue.Empty:
                        pass

    def listen(self) -> queue.Queue:
        listener: queue.Queue = queue.Queue(maxsize=LISTENER_BACKLOG)
        with self.lock:
            self.listeners.append(listener)
        return listener

    def leave(self, listener: queue.Queue) -> None:
        with self.lock:
            if listener in self.listeners:
                self.listeners.remove(listener)


@dataclass
class Studio:
    root: Path  # the folder the studio serves
    spec: SessionSpec  # the model session's settings (model, backend, cache)
    token: str = field(default_factory=security.new_token)
    host: str = "127.0.0.1"  # address bound to
    port: int = 0  # port bound to (set once the server listens)
    hooks: RunHooks = field(default_factory=lambda: RunHooks(quiet=True, progress=False))
    # the session's hooks: quiet, no bar (pages hear progress through events); tests slow it

    def __post_init__(self) -> None:
        self.root = Path(self.root).resolve()
        self.events = EventHub()
        self.state = StudioState(self.root)
        self.library = Library(self.root, self.state, self.events.publish)
        self.jobs = JobQueue(self.root, self.state, self.spec, self.hooks, self.events.publish)
        self.viewer = Viewer(self.root, self.spec, self.hooks, self.events.publish)
        self.training = Training(self.root, self.events.publish)
        self.hosts = security.allowed_hosts(self.host)
        self.models = {"started": self.spec.model, "trained": self.training.package}
        self.model = "started"  # which of self.models the queue and the viewer use

    def model_choices(self) -> dict[str, Any]:
        """The models a person can pick: the one the studio started with, and the one trained
        on the folder's labels once it exists."""
        choices = [{"name": "started", "path": str(self.spec.model or "default"),
                    "available": True},
                   {"name": "trained", "path": str(self.training.package),
                    "available": (self.training.package / "meta.json").is_file()}]
        return {"current": self.model, "choices": choices}

    def use_model(self, name: str) -> dict[str, Any]:
        """Switch the queue and the viewer to another of the offered models."""
        offered = {c["name"]: c for c in self.model_choices()["choices"]}
        if name not in offered:
            raise ValueError(f"no model {name!r}; offered: {', '.join(offered)}")
        if not offered[name]["available"]:
            raise ValueError("no trained model yet: train one on this folder's labels first")
        spec = dataclasses.replace(self.spec, model=self.models[name])
        self.jobs.use(spec)
        self.viewer.use(spec)
        self.model = name
        self.events.publish({"type": "model", **self.model_choices()})
        return self.model_choices()

    def url(self) -> str:
        return f"http://{security.url_host(self.host)}:{self.port}/?token={self.token}"

    def close(self) -> None:
        self.jobs.stop()
        self.viewer.close()
        self.training.stop()


def _refused(status: int, why: str) -> JSONResponse:
    return JSONResponse({"error": why}, status_code=status)


def build_app(studio: Studio) -> Starlette:
    async def guard(request: Request, call_next: Any) -> Response:
        token = studio.token
        cookie = security.cookie_name(studio.port)
        given = (request.query_params.get("token"), request.cookies.get(cookie),
                 request.headers.get(security.HEADER))
        if not security.token_ok(token, *given):
            return _refused(403, "forbidden: open the address `fsrun studio` printed")
        if not security.host_ok(request.headers.get("host"), studio.hosts):
            return _refused(403, "forbidden: unknown Host")
        if request.method in security.CHANGING_METHODS and not security.origin_ok(
                request.headers.get("origin"), studio.hosts, studio.port):
            return _refused(403, "forbidden: a change from another site")
        try:
            response = await call_next(request)
        except security.PathRefused as exc:
            return _refused(400, str(exc))
        if request.query_params.get("token") == token:  # later requests carry the cookie
            response.set_cookie(cookie, token, httponly=True, samesite="strict")
        return response

    async def page(request: Request) -> Response:
        return FileResponse(STATIC / PAGES[request.url.path], media_type="text/html",
                            headers={"cache-control": "no-store"})

    async def static(request: Request) -> Response:
        name = request.path_params["name"]
        path = security.inside(STATIC, name)
        if not path.is_file():
            return _refused(404, "no such file")
        return FileResponse(path, media_type=STATIC_TYPES.get(path.suffix, "text/plain"))

    async def info(request: Request) -> Response:
        model = studio.models[studio.model] or _default_model()
        return JSONResponse({"folder": str(studio.root), "model": str(model),
                             "version": fsrun.__version__, "defaults": defaults.as_dict()})

    async def model(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(studio.model_choices())
        body = await _json(request)
        return JSONResponse(await asyncio.to_thread(studio.use_model, str(body.get("model"))))

    async def library(request: Request) -> Response:
        began = time.perf_counter()
        rows = await asyncio.to_thread(studio.library.listing)
        jobs = {j["video"]: j for j in studio.jobs.snapshot() if j["status"] in ("queued",
                                                                                  "running")}
        for row in rows:
            row["job"] = jobs.get(row["video"])
        return JSONResponse({"videos": rows, "seconds": round(time.perf_counter() - began, 4)})

    async def jobs(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse({"jobs": studio.jobs.snapshot(), "paused": studio.jobs.paused})
        body = await _json(request)
        added = studio.jobs.add(list(body.get("videos", [])), dict(body.get("options", {})))
        return JSONResponse({"added": added})

    async def cancel(request: Request) -> Response:
        job = studio.jobs.cancel(request.path_params["job"])
        return JSONResponse(job) if job else _refused(404, "no such job")

    async def pause(request: Request) -> Response:
        body = await _json(request)
        paused = body.get("paused")
        if not isinstance(paused, bool):
            raise ValueError("paused must be true or false")
        studio.jobs.pause(paused)
        return JSONResponse({"paused": studio.jobs.paused})

    async def move(request: Request) -> Response:
        body = await _json(request)
        job = studio.jobs.move(request.path_params["job"], _text(body.get("direction"),
                                                                 "direction"))
        return JSONResponse(job) if job else _refused(404, "no such queued job")

    async def train_cancel(request: Request) -> Response:
        return JSONResponse(studio.training.cancel())

    async def clear(request: Request) -> Response:
        studio.jobs.clear_finished()
        return JSONResponse({"ok": True})

    async def events(request: Request) -> Response:
        listener = studio.events.listen()

        async def stream() -> Any:
            try:
                yield "retry: 2000\n\n"
                quiet_since = time.monotonic()
                while not await request.is_disconnected():
                    try:
                        event = listener.get_nowait()
                    except queue.Empty:
                        await asyncio.sleep(0.2)
                        if time.monotonic() - quiet_since >= KEEPALIVE_S:
                            quiet_since = time.monotonic()
                            yield ": keep-alive\n\n"
                        continue
                    quiet_since = time.monotonic()
                    yield f"data: {json.dumps(event)}\n\n"
            finally:
                studio.events.leave(listener)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"cache-control": "no-store"})

    async def media(request: Request) -> Response:
        try:
            path = security.video_file(studio.root, request.query_params.get("video", ""))
        except security.PathRefused as exc:
            return _refused(404, str(exc))
        return FileResponse(path)  # answers Range requests: seeking works

    async def frame(request: Request) -> Response:
        name = request.query_params.get("video", "")
        at_ms = _number(request.query_params.get("at", "0"), "at", 0, MAX_MS)
        data = await asyncio.to_thread(studio.viewer.frame_jpeg, name, at_ms)
        return Response(data, media_type="image/jpeg")

    async def look(request: Request) -> Response:
        q = request.query_params
        name = q.get("video", "")
        options = json.loads(q["options"]) if q.get("options") else None
        if options is not None and not isinstance(options, dict):
            raise ValueError("options must be a JSON object")
        saved = studio.state.settings(name)
        crop = q.get("crop") or saved.get("crop", "full")  # the video's own crop by default
        stride = int(_number(q["stride"], "stride", 1, 10_000, whole=True)) \
            if q.get("stride") else None
        result = await asyncio.to_thread(studio.viewer.look, name, stride, crop, options,
                                         _axis(q.get("axis", STROKE)))
        return JSONResponse({**result, "crop": crop, "settings": saved})

    async def redo(request: Request) -> Response:
        body = await _json(request)
        result = await asyncio.to_thread(
            studio.viewer.redo, body.get("video", ""),
            int(_number(body.get("stride", DEFAULT_STRIDE), "stride", 1, 10_000, whole=True)),
            _text(body.get("crop", "full"), "crop"), _object(body.get("options", {}), "options"),
            _axis(body.get("axis", STROKE)))
        return JSONResponse(result)

    async def compare(request: Request) -> Response:
        body = await _json(request)
        return JSONResponse(studio.viewer.agreement(
            body.get("video", ""), _points(body.get("first"), "first"),
            _points(body.get("second"), "second")))

    async def save(request: Request) -> Response:
        body = await _json(request)
        kind = _text(body.get("kind", "script"), "kind")
        if kind not in ("script", "truth"):
            raise ValueError(f"kind must be script or truth, not {kind!r}")
        result = await asyncio.to_thread(studio.viewer.save, body.get("video", ""), kind,
                                         _points(body.get("actions"), "actions"),
                                         bool(body.get("replace")),
                                         _axis(body.get("axis", STROKE)))
        studio.events.publish({"type": "library"})
        return JSONResponse(result)

    async def settings(request: Request) -> Response:
        body = await _json(request)
        name = body.get("video", "")
        security.video_file(studio.root, name)
        crop = str(body.get("crop", "full"))
        parse_crop(crop)  # a crop no run could use is refused now
        return JSONResponse(studio.state.set_settings(name, {"crop": crop}))

    async def train(request: Request) -> Response:
        if request.method == "GET":
            return JSONResponse(studio.training.status())
        body = await _json(request)
        return JSONResponse(studio.training.start(
            str(body.get("variant", "tiny")),
            int(_number(body.get("epochs", DEFAULT_TRAIN_EPOCHS), "epochs", 1, 10_000,
                        whole=True))))

    async def favicon(request: Request) -> Response:
        return Response(FAVICON, media_type="image/svg+xml",
                        headers={"cache-control": "max-age=86400"})

    routes = [Route(path, page) for path in PAGES] + [Route("/favicon.ico", favicon),
        Route("/static/{name:path}", static), Route("/api/info", info),
        Route("/api/library", library), Route("/api/jobs", jobs, methods=["GET", "POST"]),
        Route("/api/jobs/{job}/cancel", cancel, methods=["POST"]),
        Route("/api/jobs/clear", clear, methods=["POST"]), Route("/api/events", events),
        Route("/api/jobs/pause", pause, methods=["POST"]),
        Route("/api/jobs/{job}/move", move, methods=["POST"]),
        Route("/api/train/cancel", train_cancel, methods=["POST"]),
        Route("/api/media", media), Route("/api/frame", frame), Route("/api/look", look),
        Route("/api/redo", redo, methods=["POST"]),
        Route("/api/compare", compare, methods=["POST"]),
        Route("/api/save", save, methods=["POST"]),
        Route("/api/settings", settings, methods=["POST"]),
        Route("/api/train", train, methods=["GET", "POST"]),
        Route("/api/model", model, methods=["GET", "POST"]),
    ]
    return Starlette(routes=routes, middleware=[Middleware(BaseHTTPMiddleware, dispatch=guard)],
                     exception_handlers={FsError: _fs_error, ValueError: _value_error})


# The latest time a request may name: a day, in ms (far past any video, far below overflow).
MAX_MS = 86_400_000.0


def _number(value: Any, name: str, low: float, high: float, whole: bool = False) -> float:
    """value as a finite number in [low, high]: ValueError (a 400 naming the field) for
    anything else (a string that is no number, NaN, Infinity, 1e30, a bool)."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            raise ValueError(f"{name} must be a number, got {value!r}") from None
    if not is_finite(value) or not low <= value <= high \
            or (whole and value != int(value)):
        kind = "a whole number" if whole else "a number"
        raise ValueError(f"{name} must be {kind} from {low:g} to {high:g}, got {value!r}")
    return float(value)


# The tab's icon: a stroke's up and down.
FAVICON = (b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><path d="M1 12 L5 3 '
           b'L9 12 L13 3" fill="none" stroke="#3b82f6" stroke-width="2"/></svg>')


def _default_model() -> str:
    """The model the studio runs when none was named: as `fsrun` picks it."""
    from fsrun.run.plan import resolve_model  # noqa: PLC0415

    try:
        return str(resolve_model(None)[0])
    except FsError:
        return "none (pass --model)"


def _points(value: Any, name: str) -> list[dict]:
    """A list of points, each {at: ms, pos: 0-100} with finite numbers (a 400 naming the field
    otherwise)."""
    if not isinstance(value, list):
        raise ValueError(f"{name} must be a list of points")
    for point in value:
        if not isinstance(point, dict):
            raise ValueError(f"each point of {name} must be an object with at and pos")
        _number(point.get("at"), "a point's time (at)", 0, MAX_MS)
        _number(point.get("pos"), "a point's position (pos)", 0, 100)
    return value


def _object(value: Any, name: str) -> dict:
    if not isinstance(value, dict):
        raise ValueError(f"{name} must be an object")
    return value


def _axis(value: Any) -> str:
    """An axis name of fsrun/axes.py (ValueError: 400 for anything else)."""
    axis = _text(value, "axis")
    if axis not in AXES:
        raise ValueError(f"unknown axis {axis!r}; valid: {', '.join(AXES)}")
    return axis


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str) or len(value) > 200:
        raise ValueError(f"{name} must be a short text")
    return value


async def _json(request: Request) -> dict:
    try:
        body = await request.json()
    except ValueError:
        raise ValueError("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise ValueError("the request body must be a JSON object")
    return body


async def _fs_error(request: Request, exc: Exception) -> Response:
    code = 409 if getattr(exc, "exit_code", 1) == 5 else 400
    return JSONResponse({"error": page_words(str(exc)),
                         "exit_code": getattr(exc, "exit_code", 1)}, status_code=code)


async def _value_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, security.PathRefused):
        return _refused(400, str(exc))
    return PlainTextResponse(page_words(str(exc)), status_code=400)
