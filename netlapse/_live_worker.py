"""The process that draws ``nl.live``'s pictures, so drawing never competes with training for
the kernel's GIL (a 10-map weight picture is ~0.3 s of matplotlib CPU time).

One worker per kernel, started on the first redraw and shared by every live picture. Requests
are one JSON line on stdin: ``{"paths", "view", "args", "dpi"}``; each answer is one JSON line
on stdout, ``{"ok": true, "png": N, "last": step}`` followed by N bytes of PNG, or
``{"ok": false, "netlapse": bool, "error": text}``. The worker exits when stdin closes (the
kernel ended or stopped it).
"""

from __future__ import annotations

import atexit
import io
import json
import os
import subprocess
import sys
import threading
from pathlib import Path

__all__ = ["draw_png", "render_remote", "start_worker", "WorkerError"]


class WorkerError(RuntimeError):
    """The worker process could not draw (it died, or could not start)."""


def draw_png(paths: list, view: str, args: dict, dpi: int) -> tuple[bytes, int]:
    """Draw ``nl.plot.<view>`` of the runs at ``paths`` as PNG bytes; also the last step."""
    from . import plot
    from .store.reader import RunReader

    readers = [RunReader(p) for p in paths]
    fig = getattr(plot, view)(readers if view == "compare" else readers[0], **args)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue(), max((r.last_step() for r in readers), default=0)


class _Worker:
    def __init__(self):
        import netlapse

        root = str(Path(netlapse.__file__).resolve().parents[1])   # this very netlapse
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH")) if p), NETLAPSE_PROGRESS="0")
        self.proc = subprocess.Popen([sys.executable, "-m", "netlapse._live_worker"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, env=env)

    def ask(self, request: dict) -> tuple[dict, bytes]:
        line = json.dumps(request, default=_plain) + "\n"
        try:
            self.proc.stdin.write(line.encode("utf-8"))
            self.proc.stdin.flush()
            head = self.proc.stdout.readline()
            answer = json.loads(head) if head else None
            body = self.proc.stdout.read(answer["png"]) if answer and answer.get("ok") else b""
        except (OSError, ValueError) as exc:
            raise WorkerError(f"the picture worker failed: {exc}") from exc
        if answer is None:
            raise WorkerError(f"the picture worker exited (code {self.proc.wait()}).")
        return answer, body

    def close(self) -> None:
        try:
            self.proc.stdin.close()
            self.proc.wait(10)
        except Exception:  # noqa: BLE001 - interpreter exit; nothing to report to
            self.proc.kill()


def _plain(obj):
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} cannot be passed to nl.live's picture worker")


_LOCK = threading.Lock()
_WORKER: _Worker | None = None


def _worker() -> _Worker:
    global _WORKER
    if _WORKER is None or _WORKER.proc.poll() is not None:
        _WORKER = _Worker()
        atexit.register(_WORKER.close)
    return _WORKER


def start_worker() -> None:
    """Start the worker now (it imports matplotlib in the background), if it is not running."""
    with _LOCK:
        _worker()


def render_remote(paths: list, view: str, args: dict, dpi: int) -> tuple[bytes, int]:
    """``draw_png`` in the shared worker process (started here on first use, again if it died).
    Raises ``NetlapseError`` for the view's own errors, ``WorkerError`` if the worker failed."""
    from .errors import NetlapseError

    with _LOCK:
        answer, body = _worker().ask({"paths": [str(p) for p in paths], "view": view,
                                    "args": args, "dpi": dpi})
    if not answer["ok"]:
        raise (NetlapseError if answer.get("netlapse") else WorkerError)(answer["error"])
    return body, int(answer["last"])


def _serve() -> None:
    from .errors import NetlapseError

    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        try:
            req = json.loads(line)
            png, last = draw_png(req["paths"], req["view"], req["args"], int(req["dpi"]))
            out.write(json.dumps({"ok": True, "png": len(png), "last": last}).encode() + b"\n")
            out.write(png)
        except NetlapseError as exc:
            out.write(json.dumps({"ok": False, "netlapse": True, "error": str(exc)}).encode() + b"\n")
        except Exception as exc:  # noqa: BLE001 - reported to the notebook, worker goes on
            error = f"{type(exc).__name__}: {exc}"
            out.write(json.dumps({"ok": False, "netlapse": False, "error": error}).encode() + b"\n")
        out.flush()


if __name__ == "__main__":
    _serve()
