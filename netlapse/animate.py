"""``nl.animate.<view>(run, ...)``: a view over steps, saved as GIF, MP4 or an HTML player.

    anim = nl.animate.hidden_space(run, max_frames=100)
    anim.frames                 # the steps shown, one per frame
    anim.save("rings.mp4")      # .gif (Pillow), .mp4 (imageio-ffmpeg's ffmpeg), .html (player)

Frames come from the store; nothing re-trains or re-runs the model while drawing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from . import views as _views
from ._display import EMBED_LIMIT_MB

__all__ = ["Animation", "trajectories", "weight_images", "layer_profile", "distributions",
           "function_fit", "hidden_space", "compare"]


class Animation:
    """A computed view and how to write it. ``frames``: the step of each frame.

    In a notebook it shows itself as the offline HTML player, up to ``embed_limit_mb``
    megabytes (past it, a note saying how to save it instead)."""

    embed_limit_mb: float = EMBED_LIMIT_MB

    def __init__(self, view, fps: float = 10):
        self.view = view
        self.fps = fps

    @property
    def frames(self) -> np.ndarray:
        return np.asarray(self.view.frames)

    def __len__(self) -> int:
        return len(self.frames)

    def frame_spec(self, i: int) -> dict:
        from .render.spec import frame_spec

        return frame_spec(self.view, i)

    def save(self, path, fps: float | None = None, dpi: int = 100, title: str | None = None) -> Path:
        """Write to ``path``: .gif, .mp4 or .html (a still .png/.svg draws the last frame)."""
        from .render import save

        return save(self.view, path, fps=fps or self.fps, dpi=dpi, title=title)

    def _repr_html_(self) -> str:
        from ._display import animation_html

        return animation_html(self.view, self.fps, self.embed_limit_mb)

    def __repr__(self) -> str:
        return f"<netlapse Animation {self.view.view}: {len(self)} frames>"


def trajectories(run, stream=None, *, elements=None, sample: int = 8, seed: int = 0, steps=None,
                 max_frames: int = 100, fps: float = 10) -> Animation:
    return Animation(_views.trajectories(run, stream, elements=elements, sample=sample, seed=seed,
                                         steps=steps, max_frames=max_frames), fps)


def weight_images(run, stream, steps=None, *, units_axis=None, image=None, labels=None, vmax=None,
                  max_frames: int = 100, fps: float = 10) -> Animation:
    return Animation(_views.weight_images(run, stream, steps, units_axis=units_axis, image=image,
                                          labels=labels, vmax=vmax, max_frames=max_frames), fps)


def layer_profile(run, steps=None, *, source: str = "stats", example: int = 0, layers=None,
                  max_frames: int = 100, fps: float = 10) -> Animation:
    return Animation(_views.layer_profile(run, steps, source=source, example=example, layers=layers,
                                          max_frames=max_frames), fps)


def distributions(run, stream, *, bins: int = 100, percentiles=(5, 25, 50, 75, 95), steps=None,
                  max_frames: int = 100, fps: float = 10) -> Animation:
    return Animation(_views.distributions(run, stream, bins=bins, percentiles=percentiles, steps=steps,
                                          max_frames=max_frames), fps)


def function_fit(run, layer=None, steps=None, *, max_frames: int = 100, fps: float = 10) -> Animation:
    return Animation(_views.function_fit(run, layer, steps=steps, max_frames=max_frames), fps)


def hidden_space(run, layer=None, steps=None, *, head="auto", output_layer="auto",
                 max_points: int | None = 2000, max_frames: int = 100, fps: float = 10) -> Animation:
    return Animation(_views.hidden_space(run, layer, head=head, output_layer=output_layer, steps=steps,
                                         max_points=max_points, max_frames=max_frames), fps)


def compare(runs, view: str = "function_fit", *, names=None, max_frames: int = 100, fps: float = 10,
            **kwargs) -> Animation:
    """``view`` for several runs side by side; ``kwargs`` go to the view (e.g. ``steps=``)."""
    if view in ("weight_images", "layer_profile"):
        kwargs.setdefault("step", None)   # these views draw one step unless told otherwise
    return Animation(_views.compare(runs, view, names=names, max_frames=max_frames, **kwargs), fps)
