"""Saving the tour's pictures: each returns the gallery entry ``{"file", "caption"}``."""

from __future__ import annotations

from pathlib import Path

__all__ = ["save_figure", "save_animation"]


def save_figure(fig, path: Path, caption: str, dpi: int = 100) -> dict:
    """Save a matplotlib Figure as PNG/SVG (by suffix), close it, return its gallery entry."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fig.savefig(path, dpi=dpi)
    finally:
        plt.close(fig)
    return {"file": path.name, "caption": caption}


def save_animation(anim, paths, caption: str, **options) -> list[dict]:
    """Save one animation to each path (the suffix picks GIF, MP4 or HTML)."""
    if isinstance(paths, (str, Path)):
        paths = [paths]
    entries = []
    for path in paths:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        anim.save(path, **options)
        entries.append({"file": path.name, "caption": caption})
    return entries
