"""The exceptions netlapse raises. Each message names the problem and what to do about it."""

from __future__ import annotations

import difflib

__all__ = [
    "NetlapseError",
    "NotARunError",
    "RunExistsError",
    "StreamNotFoundError",
    "StepNotRecordedError",
    "CorruptRunError",
    "RecordingError",
    "CollectiveError",
    "nearest_names",
]


class NetlapseError(Exception):
    """Base class of every error netlapse raises on purpose."""


class NotARunError(NetlapseError, FileNotFoundError):
    """The folder is not a netlapse run (no ``run.json``)."""


class RunExistsError(NetlapseError, FileExistsError):
    """A run already exists where a new one was asked for."""


class StreamNotFoundError(NetlapseError, KeyError):
    """No stream of that name in the run."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class StepNotRecordedError(NetlapseError, KeyError):
    """The stream has no data at that step."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CorruptRunError(NetlapseError, ValueError):
    """A file of the run is missing, truncated or malformed."""


class RecordingError(NetlapseError, RuntimeError):
    """Recording failed (the background writer hit an error, or the disk is full)."""


class CollectiveError(NetlapseError, RuntimeError):
    """A netlapse collective under torch.distributed failed or timed out (another rank died or
    stopped taking part); see docs/distributed.md."""


def nearest_names(name: str, names, n: int = 5) -> list[str]:
    """The names closest to ``name``; the first few names when none is close."""
    names = list(names)
    close = difflib.get_close_matches(name, names, n=n, cutoff=0.4)
    if not close:
        tail = name.rsplit("/", 1)[-1]
        close = [x for x in names if tail and tail in x][:n]
    return close or names[:n]
