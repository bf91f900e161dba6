"""Which layers the probe records, and how: ``probe_capture``, ``probe_include``, ``probe_exclude``.

The probe stores every leaf layer's output in full by default, which can be most of a store
(290 MB of 622 MB on PyTorch's MNIST example). ``probe_capture="stats"`` keeps a summary and a
histogram per layer instead (the geometry views need ``"full"``); the globs pick, among the
leaf layers the watcher keeps (its ``include``/``exclude``), layers by module name. A pattern matches a layer when it matches the layer's name or the name of a
module containing it, so ``"encoder"`` and ``"encoder.*"`` both pick every layer inside
``encoder``.
"""

from __future__ import annotations

import fnmatch

from ..errors import NetlapseError, nearest_names
from .plan import check_mode

__all__ = ["probe_layers"]


def _scopes(name: str) -> list[str]:
    parts = name.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _patterns(value, what: str) -> list[str]:
    if value is None:
        return []
    pats = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else None
    if pats is None or not all(isinstance(p, str) for p in pats):
        raise NetlapseError(f"{what} takes a glob pattern or a list of them, e.g. "
                            f"{what}=['encoder.*'], not {value!r}.")
    return pats


def probe_layers(layers: list[str], capture, include, exclude) -> tuple[str | None, set[str]]:
    """``(capture, names)``: the probe's capture mode and the names of the layers it records,
    out of ``layers`` (the leaf layers the watcher keeps)."""
    capture = check_mode("probe_capture", capture)
    inc = _patterns(include, "probe_include")
    exc = _patterns(exclude, "probe_exclude")

    def hit(name, pats):
        return any(fnmatch.fnmatchcase(s, p) for s in _scopes(name) for p in pats)

    for pat in inc:
        if not any(hit(n, [pat]) for n in layers):
            raise NetlapseError(
                f"probe_include pattern {pat!r} matches no layer. Layer names look like: "
                f"{', '.join(nearest_names(pat, layers))}.")
    return capture, {n for n in layers if (not inc or hit(n, inc)) and not hit(n, exc)}
