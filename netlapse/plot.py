"""``nl.plot.<view>(run, ...)``: one matplotlib Figure per call, drawn from the store.

Each function computes a view (``netlapse.views``) and draws it; nothing re-runs a model.
Figures are ``matplotlib.figure.Figure`` objects drawn by the Agg canvas, not registered with
pyplot: nothing to close, and the caller's backend is left alone. In a notebook the figure
shows itself; ``fig.savefig("x.png")`` writes it. Needs ``pip install 'netlapse[viz]'``.
"""

from __future__ import annotations

from . import views as _views
from ._display import let_figures_show

__all__ = ["trajectories", "weight_images", "layer_profile", "distributions", "function_fit",
           "hidden_space", "compare", "figure", "save"]


def figure(view, frame: int = -1, cursor: bool = False):
    """Draw frame ``frame`` of an already computed view as a Figure."""
    from .render.mpl import draw, require_matplotlib
    from .render.spec import frame_spec

    require_matplotlib()
    fig, _ = draw(frame_spec(view, frame, cursor=cursor))
    let_figures_show()
    return fig


def save(fig_or_view, path, dpi: int = 100):
    """Write a Figure (or a view: its last frame) to ``path``; the suffix picks the format
    (.png, .svg, .pdf; for a view also .gif, .mp4, .html)."""
    from .render import save as _save
    from .render.mpl import save_figure

    if hasattr(fig_or_view, "savefig"):
        save_figure(fig_or_view, path, dpi)
        return path
    return _save(fig_or_view, path, dpi=dpi)


def trajectories(run, stream=None, *, elements=None, sample: int = 8, seed: int = 0, steps=None):
    """Chosen elements of ``stream`` (default the first full weights stream) over steps."""
    return figure(_views.trajectories(run, stream, elements=elements, sample=sample, seed=seed, steps=steps))


def weight_images(run, stream, step=-1, *, units_axis=None, image=None, labels=None, vmax=None):
    """Each output unit's incoming weights at ``step`` as an image, one symmetric colour scale.

    ``step`` may also be a list of steps (e.g. after epoch 1 and after the last): one block of
    images per step, all on the same colour scale."""
    view = _views.weight_images(run, stream, step, units_axis=units_axis, image=image,
                                labels=labels, vmax=vmax)
    if len(view.steps) == 1:
        return figure(view)
    from .render.mpl import draw, require_matplotlib
    from .render.spec import frame_spec, stack_specs

    require_matplotlib()
    subs = [frame_spec(view, i) for i in range(len(view.steps))]
    fig, _ = draw(stack_specs(subs, [f"step {int(s)}" for s in view.steps], stream))
    let_figures_show()
    return fig


def layer_profile(run, step=-1, *, source: str = "stats", example: int = 0, layers=None):
    """Mean |grad| and mean |activation| per layer at ``step`` (or a few steps: None / "A:B:N")."""
    view = _views.layer_profile(run, step, source=source, example=example, layers=layers)
    return figure(view)


def distributions(run, stream, *, bins: int = 100, percentiles=(5, 25, 50, 75, 95), steps=None):
    """``stream``'s histograms over steps as a heatmap, with min/max/mean/percentile lines."""
    return figure(_views.distributions(run, stream, bins=bins, percentiles=percentiles, steps=steps))


def function_fit(run, layer=None, step=-1):
    """The output layer's probe output against the target curve at ``step``."""
    return figure(_views.function_fit(run, layer, steps=step))


def hidden_space(run, layer=None, step=-1, *, head="auto", output_layer="auto",
                 max_points: int | None = 2000):
    """A 2-unit layer's view of the data, grid lines and decision boundary, plus the decision
    regions over the input plane, at ``step``."""
    return figure(_views.hidden_space(run, layer, head=head, output_layer=output_layer, steps=step,
                                      max_points=max_points))


def compare(runs, view: str = "function_fit", step=-1, *, names=None, **kwargs):
    """``view`` for several runs in a grid at the same ``step`` (-1: the last shared step); each
    run shows its last recorded frame at or before it. ``kwargs`` go to the view."""
    if view in ("weight_images", "layer_profile"):
        kwargs.setdefault("step", None)   # every step, so that ``step`` picks on the shared axis
    c = _views.compare(runs, view, names=names, **kwargs)
    if step == -1:
        return figure(c, -1, cursor=False)
    import numpy as np

    i = int(np.searchsorted(c.steps, step, side="right")) - 1
    return figure(c, max(i, 0), cursor=False)
