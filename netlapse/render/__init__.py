"""Renderers: frame specs drawn by matplotlib (PNG, SVG, GIF, MP4) or in the browser (HTML).

``spec.frame_spec(view, i)`` turns one frame of a view into panels of primitives; ``mpl``
draws it into a Figure; ``video`` writes GIF (Pillow) and MP4 (imageio-ffmpeg's bundled
ffmpeg); ``html`` writes the offline player. Importing this package imports no plotting
library; each renderer imports its own on use.
"""

from .spec import frame_count, frame_spec

__all__ = ["frame_spec", "frame_count", "save"]

FORMATS = (".png", ".svg", ".pdf", ".gif", ".mp4", ".html")


def save(view, path, *, fps: float = 10, dpi: int = 100, title: str | None = None):
    """Write ``view`` to ``path``; the suffix picks the format. PNG/SVG/PDF draw the last frame."""
    from pathlib import Path

    from ..errors import NetlapseError

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise NetlapseError(f"cannot write {path.name}: use one of {', '.join(FORMATS)}.")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".gif":
        from .video import save_gif

        return save_gif(view, path, fps, dpi)
    if suffix == ".mp4":
        from .video import save_mp4

        return save_mp4(view, path, fps, dpi)
    if suffix == ".html":
        from .html import save_html

        return save_html(view, path, fps, title)
    from .mpl import draw, save_figure

    fig, _ = draw(frame_spec(view, -1, cursor=False))
    save_figure(fig, path, dpi)
    return path
