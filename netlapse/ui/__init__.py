"""``netlapse ui``: a live dashboard over a folder of runs (Starlette + uvicorn, plain JS front end).

``serve(runs_dir, host="127.0.0.1", port=8765)`` runs it; ``create_app(runs_dir)`` gives the
ASGI app. Needs the ``ui`` extra: ``pip install 'netlapse[ui]'``.
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("the dashboard needs Starlette and uvicorn: pip install 'netlapse[ui]'") from exc

from ._app import create_app
from ._server import Dashboard, is_loopback, serve

__all__ = ["create_app", "serve", "Dashboard", "is_loopback"]
