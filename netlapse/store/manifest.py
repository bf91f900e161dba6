"""``run.json``: the run's manifest, shared by the training thread and the writer thread."""

from __future__ import annotations

import os
import platform
import socket
import threading
import time
from pathlib import Path

from .._jsonio import read_json, write_json_atomic
from .._version import __version__
from .layout import FORMAT_VERSION, RUN_FILE

__all__ = ["Manifest", "new_manifest"]


def new_manifest(name: str, config: dict | None) -> dict:
    import numpy as np

    return {
        "format_version": FORMAT_VERSION,
        "name": name,
        "created": time.time(),
        "status": "running",
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "versions": {"netlapse": __version__, "python": platform.python_version(),
                     "numpy": np.__version__},
        "framework": None,
        "config": dict(config or {}),
        "model": None,
        "streams": {},
        "events": [],
    }


class Manifest:
    """The manifest as a dict plus a lock; every change is saved atomically at once."""

    def __init__(self, root: Path, data: dict):
        self.path = Path(root) / RUN_FILE
        self.data = data
        self._lock = threading.Lock()

    @classmethod
    def load(cls, root: Path) -> "Manifest":
        return cls(root, read_json(Path(root) / RUN_FILE))

    def update(self, **fields) -> None:
        with self._lock:
            self.data.update(fields)
            write_json_atomic(self.path, self.data)

    def add_streams(self, streams: dict[str, dict]) -> None:
        with self._lock:
            self.data.setdefault("streams", {}).update(streams)
            write_json_atomic(self.path, self.data)

    def add_event(self, event: dict) -> None:
        with self._lock:
            self.data.setdefault("events", []).append(event)
            write_json_atomic(self.path, self.data)

    @property
    def streams(self) -> dict:
        return self.data.get("streams", {})
