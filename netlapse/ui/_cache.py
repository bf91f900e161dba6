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
        self._memo: dict[str, tuple[tuple, dict]] = {}
        self._locks: dict = {}

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

    def memo(self, name: str, key, compute):
        """``compute(reader)`` for this run, remembered until the run's files change."""
        reader = self.get(name)
        stamp = self._entries[name][0]
        with self._lock:
            held = self._memo.get(name)
            if held is None or held[0] != stamp:
                held = self._memo[name] = (stamp, {})
            key_lock = self._locks.setdefault((name, key), threading.Lock())
        if key in held[1]:
            return held[1][key]
        with key_lock:   # a second asker waits for the first one's result
            if key not in held[1]:
                if len(held[1]) > 256:
                    held[1].clear()
                held[1][key] = compute(reader)
            return held[1][key]

    def forget(self, name: str) -> None:
        with self._lock:
            self._entries.pop(name, None)
