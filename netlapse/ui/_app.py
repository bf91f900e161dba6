"""The dashboard's ASGI app (Starlette): the data API, server-sent events and the static front end.

See docs/http_api.md for every endpoint. Starlette is imported here only, so that
``import netlapse`` stays light.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import threading
from pathlib import Path

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from . import _data, _tensors, _views
from ._cache import RunCache
from ._paths import RunsRoot, UnsafePathError, raw_path_is_suspicious

__all__ = ["create_app", "STATIC_DIR"]

STATIC_DIR = Path(__file__).parent / "static"
RENDER_DIR = Path(__file__).parent.parent / "render"   # specdraw.js: the spec drawer, shared
_LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}
POLL_S = 0.25


def _json(obj, status: int = 200) -> Response:
    body = json.dumps(obj, allow_nan=False, default=_default, separators=(",", ":"))
    return Response(body, status_code=status, media_type="application/json")


def _default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def _error(status: int, message: str, kind: str) -> Response:
    return JSONResponse({"error": message, "kind": kind}, status_code=status)


def _binary(arr: np.ndarray, headers: dict) -> Response:
    if arr.dtype != np.uint8:
        arr = np.ascontiguousarray(arr, dtype="<f4")
    hdr = {"X-Shape": ",".join(str(n) for n in arr.shape), "X-Dtype": arr.dtype.name,
           "Cache-Control": "no-store", **{k: str(v) for k, v in headers.items()}}
    return Response(arr.tobytes(), media_type="application/octet-stream", headers=hdr)


class _Guard:
    """ASGI middleware: refuses disguised paths, foreign Host headers on loopback, and
    requests without the token when one is set."""

    def __init__(self, app, token: str | None, loopback: bool):
        self.app = app
        self.token = token
        self.loopback = loopback

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        raw = scope.get("raw_path") or scope["path"].encode()
        if raw_path_is_suspicious(raw) or ".." in scope["path"]:
            return await _error(400, "refused: encoded or '..' path", "unsafe")(scope, receive, send)
        request = Request(scope)
        if self.loopback:
            host = (request.headers.get("host") or "").rsplit(":", 1)[0]
            if host and host not in _LOOPBACK_HOSTS:
                return await _error(403, f"refused Host {host!r}: this server answers on "
                                         "localhost only", "host")(scope, receive, send)
        set_cookie = False
        if self.token:
            given = (request.query_params.get("token") or request.cookies.get("netlapse_token")
                     or request.headers.get("authorization", "").removeprefix("Bearer ").strip())
            if not given or not hmac.compare_digest(given.encode(), self.token.encode()):
                return await _error(401, "this dashboard needs its token: open the URL that "
                                         "`netlapse ui` printed (it ends in ?token=...)",
                                    "token")(scope, receive, send)
            set_cookie = "token" in request.query_params

        async def send_with_cookie(message):
            if set_cookie and message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"set-cookie", f"netlapse_token={self.token}; Path=/; HttpOnly; "
                                               "SameSite=Strict".encode()))
                message = {**message, "headers": headers}
            await send(message)

        return await self.app(scope, receive, send_with_cookie)


def create_app(runs_dir, token: str | None = None, loopback: bool = True) -> Starlette:
    """The dashboard app over the runs under ``runs_dir``."""
    root = RunsRoot(runs_dir)
    cache = RunCache(root)
    static_files = {p.name: p for p in STATIC_DIR.iterdir() if p.is_file()}
    static_files["specdraw.js"] = RENDER_DIR / "specdraw.js"
    stopping = threading.Event()

    async def call(fn, *args):
        """Run ``fn(*args)`` off the event loop and turn failures into error cards."""
        try:
            return await run_in_threadpool(fn, *args)
        except UnsafePathError as exc:
            return _error(403, str(exc), "unsafe")
        except FileNotFoundError as exc:
            return _error(404, str(exc), "missing")
        except (KeyError, LookupError, ValueError) as exc:
            msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
            kind = "corrupt" if type(exc).__name__ == "CorruptRunError" else "bad-request"
            return _error(422, msg, kind)
        except Exception as exc:  # a half-written or damaged run: show its card, keep serving
            return _error(422, f"{type(exc).__name__}: {exc}", "corrupt")

    def q(request: Request, key: str, default=None, conv=str):
        value = request.query_params.get(key)
        if value is None:
            if default is None:
                raise ValueError(f"missing query parameter {key!r}")
            return default
        try:
            return conv(value)
        except ValueError:
            raise ValueError(f"query parameter {key!r} must be {conv.__name__}, got {value!r}") from None

    async def index(request):
        return FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-store"})

    async def static(request):
        path = static_files.get(request.path_params["name"])
        if path is None:
            return _error(404, "no such file", "missing")
        return FileResponse(path, headers={"Cache-Control": "no-cache"})

    def _runs():
        rows = []
        for name in root.find():
            try:
                row = cache.memo(name, "summary", lambda r, n=name: _data.run_summary(n, r))
                rows.append({**row, "status": cache.get(name).status})   # a writer may have died
            except Exception as exc:
                rows.append({"id": name, "name": name, "status": "error", "error": str(exc)})
        return _json({"root": str(root.root), "runs": rows})

    async def runs(request):
        return await call(_runs)

    async def run(request):
        name = request.query_params.get("run", "")
        def work():
            detail = cache.memo(name, "detail", lambda r: _data.run_detail(name, r))
            return _json({**detail, "status": cache.get(name).status})   # a writer may have died
        return await call(work)

    async def metrics(request):
        def work():
            start = request.query_params.get("start")
            end = request.query_params.get("end")
            mp = min(q(request, "max_points", _data.MAX_POINTS, int), 20000)
            return _json(cache.memo(q(request, "run"), ("metrics", start, end, mp),
                                    lambda r: _data.metric_series(r, start, end, mp)))
        return await call(work)

    async def stats(request):
        def work():
            reader = cache.get(q(request, "run"))
            names = tuple(q(request, "stat", "norm").split(","))
            mp = min(q(request, "max_points", _data.MAX_POINTS, int), 20000)
            return _json(_data.stat_series(reader, q(request, "stream"), names, mp))
        return await call(work)

    async def sparks(request):
        def work():
            points = min(q(request, "points", _data.SPARK_POINTS, int), 2000)
            return _json(cache.memo(q(request, "run"), ("sparks", points),
                                    lambda r: _data.sparklines(r, points)))
        return await call(work)

    async def heatmap(request):
        def work():
            reader = cache.get(q(request, "run"))
            rows, meta = _tensors.heatmap(reader, q(request, "stream"), min(q(request, "rows", 400, int), 2000))
            return _binary(rows, {"X-Lo": repr(meta["lo"]), "X-Hi": repr(meta["hi"]),
                                  "X-Steps": ",".join(str(s) for s in meta["steps"])})
        return await call(work)

    async def tensor(request):
        def work():
            reader = cache.get(q(request, "run"))
            step, arr, prev_step, next_step = _tensors.tensor_at(reader, q(request, "stream"),
                                                              q(request, "step", -1, int))
            name = request.query_params["stream"]
            absmax = _tensors.abs_max(reader, name)
            scale = _tensors.colour_scale(reader, name)
            form = request.query_params.get("as", "f32")
            if form not in ("f32", "u8"):
                raise ValueError("as= must be f32 (float32 values) or u8 (colour codes)")
            if form == "u8":
                arr = _tensors.codes_at(reader, name, step, arr, scale)
            return _binary(arr, {"X-Step": step, "X-Prev-Step": "" if prev_step is None else prev_step,
                                 "X-Next-Step": "" if next_step is None else next_step,
                                 "X-Absmax": repr(absmax), "X-Scale": repr(scale)})
        return await call(work)

    async def view_(request):
        def work():
            name, view = q(request, "run"), q(request, "view")
            step, layer = q(request, "step", -1, int), request.query_params.get("layer") or None
            at = _views.frame_step(cache.get(name), view, step, layer)
            return _json(cache.memo(name, ("view", view, at, layer),
                                    lambda r: _views.view_frame(r, view, at, layer)))
        return await call(work)

    async def health(request):   # the doctor's report (health panel, runs-page badge)
        def work():
            from ._health import health as report

            name = q(request, "run")
            out = cache.memo(name, "health", report)
            if request.query_params.get("badge"):
                return _json({"problems": out["problems"], "warnings": out["warnings"],
                              "kinds": sorted({f["kind"] for f in out["findings"]})})
            return _json(out)
        return await call(work)

    async def health_view(request):
        def work():
            from ._health import finding_frame, health as report

            name, i = q(request, "run"), q(request, "i", conv=int)
            rep = cache.memo(name, "health", report)
            return _json(cache.memo(name, ("health_view", i), lambda r: finding_frame(r, rep, i)))
        return await call(work)

    async def profile(request):
        def work():
            step = q(request, "step", -1, int)
            return _json(cache.memo(q(request, "run"), ("profile", step),
                                    lambda r: _data.layer_profile(r, step)))
        return await call(work)

    async def events(request):
        name = request.query_params.get("run")
        since = request.query_params.get("since")
        seq = request.query_params.get("seq")

        def first():
            reader = cache.get(name)
            return _data.start_state(reader, int(since) if since not in (None, "") else -1,
                                     int(seq) if seq not in (None, "") else None)

        def runs_state():
            out = {}
            for n in root.find():
                try:
                    r = cache.get(n)
                    out[n] = (r.seq, r.status)
                except Exception as exc:
                    out[n] = ("error", str(exc))
            return out

        if name:
            sent = await call(first)
            if isinstance(sent, Response):
                return sent

        async def stream():
            nonlocal sent
            known = None
            yield "retry: 1000\n\n"
            idle = 0.0
            ticks = -1
            while not stopping.is_set() and not await request.is_disconnected():
                ticks += 1
                try:
                    if name:
                        msg = await run_in_threadpool(lambda: _data.updates_since(cache.get(name), sent))
                        if msg is not None:
                            yield f"event: update\ndata: {json.dumps(msg, default=_default)}\n\n"
                            idle = 0.0
                    elif ticks % 4 == 0:   # the folder is walked once a second
                        state = await run_in_threadpool(runs_state)
                        if known is not None and state != known:
                            changed = [k for k in state if state[k] != known.get(k)]
                            changed += [k for k in known if k not in state]
                            yield f"event: runs\ndata: {json.dumps({'changed': changed})}\n\n"
                            idle = 0.0
                        known = state
                except Exception as exc:
                    yield f"event: failure\ndata: {json.dumps({'error': str(exc)})}\n\n"
                idle += POLL_S
                if idle >= 15:
                    yield ": keep-alive\n\n"
                    idle = 0.0
                await asyncio.sleep(POLL_S)

        sent = None if not name else sent
        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    routes = [
        Route("/", index), Route("/static/{name}", static),
        Route("/api/runs", runs), Route("/api/run", run), Route("/api/metrics", metrics),
        Route("/api/stats", stats), Route("/api/sparks", sparks), Route("/api/heatmap", heatmap), Route("/api/tensor", tensor),
        Route("/api/profile", profile), Route("/api/view", view_), Route("/api/events", events),
        Route("/api/health", health), Route("/api/health_view", health_view),
    ]
    app = Starlette(routes=routes)
    app.state.stopping = stopping
    app.state.root = root
    app.state.cache = cache

    def warm():
        """Open every run and prepare its page's data, so that the first visit is quick."""
        for name in root.find():
            if stopping.is_set():
                return
            try:
                detail = cache.memo(name, "detail", lambda r: _data.run_detail(name, r))
                cache.memo(name, ("metrics", None, None, _data.MAX_POINTS),
                           lambda r: _data.metric_series(r, None, None, _data.MAX_POINTS))
                last = detail["last_step"]
                cache.memo(name, ("profile", last), lambda r: _data.layer_profile(r, last))
                cache.memo(name, ("sparks", _data.SPARK_POINTS), lambda r: _data.sparklines(r))
            except Exception:   # a damaged run shows its error card when asked for
                pass

    app.state.warm = warm
    app.add_middleware(_Guard, token=token, loopback=loopback)
    return app
