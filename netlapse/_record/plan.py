"""What to record, decided once: capture modes, ``every``, and include/exclude name patterns.

Shared by every framework adapter so they validate arguments the same way and fail early,
with a message that names the problem and the fix.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass
from typing import Iterable, Sequence

from ..errors import NetlapseError, nearest_names

__all__ = ["CapturePlan", "check_mode", "select_names", "resolve_updates"]

MODES = ("full", "stats", None)


def check_mode(what: str, mode) -> str | None:
    if mode is False:
        return None
    if mode not in MODES:
        raise NetlapseError(f"{what}={mode!r} is not a capture mode; use \"full\" (exact tensors), "
                            "\"stats\" (summary + histogram) or None (off).")
    return mode


def _patterns(value, what: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        pats = list(value)
    except TypeError:
        raise NetlapseError(f"{what} takes a glob pattern or a list of them, e.g. {what}=['fc*'].") from None
    for p in pats:
        if not isinstance(p, str):
            raise NetlapseError(f"{what} patterns must be strings, got {p!r}.")
    return pats


def select_names(names: Sequence[str], include, exclude) -> list[str]:
    """Names matching any ``include`` glob (all when None) and no ``exclude`` glob.

    An include pattern that matches none of ``names`` is an error that lists what exists.
    """
    inc = _patterns(include, "include")
    exc = _patterns(exclude, "exclude")
    for pat in inc:
        if not any(fnmatch.fnmatchcase(n, pat) for n in names):
            near = nearest_names(pat, names)
            raise NetlapseError(f"include pattern {pat!r} matches no parameter or layer. "
                                f"Names look like: {', '.join(near)}.")
    chosen = [n for n in names if (not inc or any(fnmatch.fnmatchcase(n, p) for p in inc))]
    return [n for n in chosen if not any(fnmatch.fnmatchcase(n, p) for p in exc)]


@dataclass(frozen=True)
class CapturePlan:
    every: int
    weights: str | None
    grads: str | None
    activations: str | None

    @classmethod
    def make(cls, every, weights, grads, activations) -> "CapturePlan":
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise NetlapseError(f"every={every!r}: it must be a positive integer (1 = every step).")
        return cls(every, check_mode("weights", weights), check_mode("grads", grads),
                   check_mode("activations", activations))

    def due(self, step: int) -> bool:
        return step % self.every == 0

    def meta(self, kind: str, capture: str, shape: Iterable[int], dtype: str, **extra) -> dict:
        return {"kind": kind, "capture": capture, "shape": [int(s) for s in shape],
                "dtype": dtype, "every": self.every, **extra}


def resolve_updates(updates, has_optimizer: bool, weights) -> str | None:
    """The ``updates=`` option: ``"stats"``, None, or ``"auto"`` (stats when an optimizer is
    watched and weights are recorded: the writer derives updates from the weights it sees)."""
    if updates == "auto":
        return "stats" if has_optimizer and weights else None
    if updates in (None, False):
        return None
    if updates != "stats":
        raise NetlapseError(f"updates={updates!r}: use \"stats\" (stats of each update w_k - "
                            "w_(k-every), as updates/<param>), None (off) or \"auto\".")
    if not weights:
        raise NetlapseError("updates=\"stats\" needs the weights recorded (the writer computes "
                            "each update from them): pass weights=\"stats\" (or \"full\").")
    return "stats"
