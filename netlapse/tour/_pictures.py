"""Saving the tour's pictures; each call returns gallery entries ``{"file", "caption"}``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["save_figure", "save_animation"]


def save_figure(fig, path, caption: str, dpi: int = 100) -> list[dict]:
    """Write a Figure from ``nl.plot`` (PNG/SVG by suffix)."""
    import netlapse as nl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    nl.plot.save(fig, path, dpi=dpi)
    return [{"file": path.name, "caption": caption}]


def save_animation(anim, paths, caption: str, title: str | None = None) -> list[dict]:
    """Write an ``nl.animate`` Animation to each path; the suffix picks GIF, MP4 or HTML."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    entries = []
    for path in map(Path, paths):
        anim.save(path, title=title)
        entries.append({"file": path.name, "caption": caption})
    return entries
