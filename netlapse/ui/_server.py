"""Running the dashboard: host/token rules, a uvicorn server in the foreground or in a thread."""

from __future__ import annotations

import ipaddress
import secrets
import socket
import threading
import time

import uvicorn

from ._app import create_app

__all__ = ["Dashboard", "serve", "is_loopback"]


def is_loopback(host: str) -> bool:
    if host in ("localhost",):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _prime() -> None:
    """Load what the first request would otherwise wait for: pandas, and zarr's I/O machinery
    (its event loop and codecs, started by a first read)."""
    import numpy as np
    import pandas  # noqa: F401
    import zarr
    from zarr.storage import MemoryStore

    from ..store.layout import compressors

    arr = zarr.create_array(store=MemoryStore(), shape=(4,), chunks=(4,), dtype="i8",
                            compressors=compressors())
    arr[:] = np.arange(4)
    arr[:]


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host.strip("[]"), 0))
        return s.getsockname()[1]


class Dashboard:
    """A configured dashboard server. ``start()`` runs it in a thread (tests, notebooks);
    ``run()`` in the foreground. A non-loopback host always gets a token."""

    def __init__(self, runs_dir, host: str = "127.0.0.1", port: int = 8765, token: str | None = None):
        self.host = host
        self.loopback = is_loopback(host)
        if not self.loopback and not token:
            token = secrets.token_urlsafe(24)
        self.token = token or None
        self.port = _free_port(host) if port == 0 else int(port)
        self.app = create_app(runs_dir, token=self.token, loopback=self.loopback)
        _prime()
        config = uvicorn.Config(self.app, host=host.strip("[]"), port=self.port, log_level="warning",
                                access_log=False, timeout_graceful_shutdown=1, lifespan="off")
        self.server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        base = f"http://{host}:{self.port}/"
        return base + (f"?token={self.token}" if self.token else "")

    def _warm_in_background(self) -> None:
        threading.Thread(target=self.app.state.warm, name="netlapse-ui-warm", daemon=True).start()

    def run(self) -> None:
        self._warm_in_background()
        try:
            self.server.run()
        finally:
            self.app.state.stopping.set()

    def start(self, timeout: float = 10.0) -> "Dashboard":
        self._thread = threading.Thread(target=self.server.run, name="netlapse-ui", daemon=True)
        self._thread.start()
        self._warm_in_background()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the dashboard did not start on {self.host}:{self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.app.state.stopping.set()
        self.server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def serve(runs_dir, host: str = "127.0.0.1", port: int = 8765, token: str | None = None,
          open_browser: bool = True) -> None:
    """Serve the dashboard until Ctrl-C, printing its URL."""
    dash = Dashboard(runs_dir, host=host, port=port, token=token)
    print(f"netlapse dashboard: {dash.url}", flush=True)
    if not dash.loopback:
        print("  listening beyond this machine: anyone with the URL (and its token) can read the runs.",
              flush=True)
    if open_browser:
        import webbrowser

        threading.Timer(0.5, lambda: webbrowser.open(dash.url)).start()
    dash.run()
