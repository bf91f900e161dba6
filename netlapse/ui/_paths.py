"""Which runs the dashboard may read: only folders under the runs root, named safely.

A run is named by its path relative to the root, with ``/`` between parts (``sweep/lr-0.1``).
Names with ``..``, ``.`` parts, backslashes, percent signs (an encoding left after decoding),
NUL, or a leading ``/`` are refused, and so is any name whose real path (symlinks resolved)
leaves the root.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..store.layout import RUN_FILE

__all__ = ["RunsRoot", "UnsafePathError", "raw_path_is_suspicious"]

_MAX_DEPTH = 8
_SUSPICIOUS_RAW = ("%2e", "%2f", "%5c", "%00", "%25", "..", "\\")


class UnsafePathError(ValueError):
    """A request named a path outside the runs folder, or named it in a disguised way."""


def raw_path_is_suspicious(raw: bytes) -> bool:
    """True for a request path (before decoding) with encoded dots/slashes or ``..`` parts."""
    text = raw.decode("latin-1").lower()
    return any(token in text for token in _SUSPICIOUS_RAW)


class RunsRoot:
    """The runs folder: finds the runs in it and resolves run names, refusing unsafe ones."""

    def __init__(self, root):
        self.root = Path(root).resolve()
        if not self.root.is_dir():
            raise FileNotFoundError(f"{root} is not a folder. Pass the folder that holds your runs, "
                                    "e.g. `netlapse ui runs/`.")

    def _inside(self, path: Path) -> bool:
        try:
            real = path.resolve()
        except (OSError, RuntimeError):
            return False
        return real == self.root or self.root in real.parents

    def resolve(self, name: str) -> Path:
        """The folder of run ``name``; ``UnsafePathError`` if the name is not a safe relative path."""
        if not isinstance(name, str) or not name:
            raise UnsafePathError("no run named: pass ?run=NAME")
        if "\x00" in name or "%" in name or "\\" in name or name.startswith("/") or ":" in name:
            raise UnsafePathError(f"refused run name {name!r}: use a plain relative path")
        parts = name.split("/")
        if any(p in ("", ".", "..") for p in parts):
            raise UnsafePathError(f"refused run name {name!r}: '.' and '..' parts are not allowed")
        path = self.root.joinpath(*parts)
        if not self._inside(path):
            raise UnsafePathError(f"refused run name {name!r}: it points outside the runs folder")
        if not (path / RUN_FILE).is_file() or not self._inside(path / RUN_FILE):
            raise FileNotFoundError(f"no run named {name!r} under the runs folder")
        return path

    def find(self) -> list[str]:
        """Names of every run under the root (nested folders too), sorted; symlinks leading
        outside the root are skipped."""
        found: list[str] = []
        if (self.root / RUN_FILE).is_file():
            return []   # the root is a run itself: the CLI asks for the folder that holds it
        for dirpath, dirnames, filenames in os.walk(self.root, followlinks=True):
            here = Path(dirpath)
            rel = here.relative_to(self.root)
            if len(rel.parts) > _MAX_DEPTH or not self._inside(here):
                dirnames[:] = []
                continue
            if RUN_FILE in filenames and rel.parts:
                found.append("/".join(rel.parts))
                dirnames[:] = []          # a run's own folders (data/) hold no runs
                continue
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        return sorted(found)
