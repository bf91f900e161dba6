"""Open runs, kept between requests and refreshed when their ``commit.json`` or ``run.json`` changes."""

from __future__ import annotations

import threading
from pathlib import Path

from ..store.layout import COMMIT_FILE, RUN_FILE
from ..store.reader import RunReader
from ._paths import RunsRoot

__all__ = ["RunCache"]


def _stamp(path: Path) -> tuple:
    out = []
    for name in (RUN_FILE, COMMIT_FILE):
        try:
            st = (path / name).stat()
            out.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append(None)
    return tuple(out)


class RunCache:
    """``get(name)`` returns an up-to-date ``RunReader``; errors (corrupt runs) propagate."""

    def __init__(self, root: RunsRoot):
        self.root = root
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[tuple, RunReader]] = {}
        self._locks: dict[str, threading.Lock] = {}

    def get(self, name: str) -> RunReader:
        path = self.root.resolve(name)
        stamp = _stamp(path)
        with self._lock:
            entry = self._entries.get(name)
        if entry is not None and entry[0] == stamp:
            return entry[1]
        with self._lock:
            lock = self._locks.setdefault(name, threading.Lock())
        with lock:   # one opener/refresher per run; the others wait and reuse its work
            with self._lock:
                entry = self._entries.get(name)
            if entry is not None and entry[0] == stamp:
                return entry[1]
            if entry is not None:
                reader = entry[1]
                reader.refresh()
            else:
                reader = RunReader(path)
            with self._lock:
                self._entries[name] = (stamp, reader)
        return reader

    def forget(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)
