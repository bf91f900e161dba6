"""Draw frame specs with matplotlib (Agg): a Figure per spec, updated in place for animations."""

from __future__ import annotations

import numpy as np

__all__ = ["require_matplotlib", "draw", "update", "figure_rgb", "save_figure", "FrameRenderer"]

_HINT = "pip install 'netlapse[viz]'"


def require_matplotlib():
    """Import matplotlib, or fail with the install hint. Figures are built with
    ``matplotlib.figure.Figure`` and drawn by the Agg canvas: pyplot's global state (and the
    user's interactive backend) is never touched, so nothing needs closing."""
    try:
        import matplotlib
    except ImportError as exc:
        raise ImportError(f"netlapse plots need matplotlib: {_HINT}") from exc
    return matplotlib


def _colors(classes, palette):
    from matplotlib.colors import to_rgba_array

    pal = to_rgba_array(palette)
    return pal[np.asarray(classes) % len(pal)]


def _draw_item(ax, item):
    kind = item["kind"]
    if kind == "line":
        (h,) = ax.plot(item["x"], item["y"], color=item["color"], lw=item["width"],
                       ls=item.get("style", "-"), label=item.get("label"), alpha=item.get("alpha", 1.0),
                       marker="o" if item.get("marker") else None, ms=4)
        return h
    if kind == "lines":
        from matplotlib.collections import LineCollection

        h = LineCollection(list(np.asarray(item["segs"])), colors=item["color"], linewidths=item["width"],
                           alpha=item.get("alpha", 1.0), zorder=1)
        ax.add_collection(h)
        return h
    if kind == "scatter":
        xy = np.asarray(item["xy"])
        return ax.scatter(xy[:, 0], xy[:, 1], s=item["size"], c=_colors(item["classes"], item["palette"]),
                          edgecolors="white", linewidths=0.3, zorder=3)
    if kind == "image":
        x0, x1, y0, y1 = item["extent"]
        origin = "upper" if y0 > y1 else "lower"
        ext = [x0, x1, min(y0, y1), max(y0, y1)]
        if item.get("norm") == "log":
            from matplotlib.colors import LogNorm

            data = np.ma.masked_less_equal(np.asarray(item["data"], np.float64), 0)
            return ax.imshow(data, extent=ext, origin=origin, cmap=item["cmap"],
                             norm=LogNorm(item["vmin"], item["vmax"], clip=True),
                             interpolation="nearest", aspect="auto", zorder=0)
        return ax.imshow(np.asarray(item["data"]), extent=ext, origin=origin, cmap=item["cmap"],
                         vmin=item["vmin"], vmax=item["vmax"], interpolation="nearest",
                         aspect="auto", zorder=0, alpha=item.get("alpha"))
    if kind == "vline":
        return ax.axvline(item["x"], color=item["color"], lw=1.2, zorder=4)
    raise ValueError(f"unknown spec item {kind!r}")


def _legend(ax, p, handles) -> None:
    """Labelled lines first (in item order), then one marker per class of a scatter."""
    from matplotlib.lines import Line2D

    hs, labels = [], []
    for item, h in zip(p["items"], handles):
        if item.get("label"):
            hs.append(h)
            labels.append(item["label"])
    for item in p["items"]:
        for c in item.get("legend_classes", []):
            color = item["palette"][c % len(item["palette"])]
            hs.append(Line2D([], [], ls="none", marker="o", ms=5, color=color))
            labels.append(f"y = {c}")
    if not hs:
        return
    if p["legend"] == "outside":
        ax.legend(hs, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    else:
        ax.legend(hs, labels, fontsize=7, loc="best", framealpha=0.8)


def _setup_axes(ax, p):
    ax.set_title(p["title"], fontsize=10, y=1.0)   # a fixed place: frames redraw it alone
    if p.get("axis_off"):
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_visible(False)
    else:
        ax.set_xlabel(p["xlabel"])
        ax.set_ylabel(p["ylabel"])
    if p["xscale"] != "linear":
        ax.set_xscale(p["xscale"])
    if p["yscale"] != "linear":
        ax.set_yscale(p["yscale"])
    if p["xlim"] is not None:
        ax.set_xlim(*p["xlim"])
    if p["ylim"] is not None:
        ax.set_ylim(*p["ylim"])
    if p["aspect"]:
        ax.set_aspect(p["aspect"], adjustable="box")
    if p["xticks"] is not None:
        ax.set_xticks(p["xticks"])
        if p["xticklabels"] is not None:
            labels = p["xticklabels"]
            rot = p.get("xtickrotation", 45 if len(labels) > 6 else 0)
            ax.set_xticklabels(labels, rotation=rot, ha="right" if rot == 45 else "center",
                               rotation_mode="anchor" if rot == 45 else "default",
                               fontsize=7 if rot == 90 else 8)
    if not p.get("axis_off"):
        ax.grid(alpha=0.25, lw=0.5)


def draw(spec: dict, fig=None):
    """A new matplotlib Figure for ``spec``; returns ``(fig, handles)`` for ``update``."""
    require_matplotlib()
    from matplotlib.figure import Figure

    panels = spec["panels"]
    ncols = max(1, min(spec["ncols"], len(panels)))
    nrows = int(np.ceil(len(panels) / ncols))
    fig = Figure(figsize=spec["size"], dpi=100, layout="constrained") if fig is None else fig
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    handles = []
    for ax, p in zip(axes, panels):
        if p.get("hidden"):
            ax.set_visible(False)
            handles.append([])
            continue
        _setup_axes(ax, p)
        hs = [_draw_item(ax, item) for item in p["items"]]
        if p["aspect"]:   # imshow may have reset it
            ax.set_aspect(p["aspect"], adjustable="box")
        if p["legend"]:
            _legend(ax, p, hs)
        handles.append(hs)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    if spec.get("colorbar"):
        cb = spec["colorbar"]
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import LogNorm, Normalize

        norm = (LogNorm if cb.get("norm") == "log" else Normalize)(cb["vmin"], cb["vmax"])
        sm = ScalarMappable(norm=norm, cmap=cb["cmap"])
        shown = [ax for ax, p in zip(axes, panels) if not p.get("hidden")]
        fig.colorbar(sm, ax=shown, shrink=0.8, label=cb.get("label", ""))
    fig.suptitle(spec["title"], fontsize=11)
    return fig, {"axes": list(axes[:len(panels)]), "items": handles}


def update(fig, handles, spec: dict) -> bool:
    """Update the artists of ``draw(old_spec)`` to ``spec`` in place. False if the structure
    changed (then draw again)."""
    panels = spec["panels"]
    if len(panels) != len(handles["items"]):
        return False
    for ax, p, hs in zip(handles["axes"], panels, handles["items"]):
        if len(p["items"]) != len(hs):
            return False
        ax.set_title(p["title"], fontsize=10, y=1.0)
        for item, h in zip(p["items"], hs):
            kind = item["kind"]
            if kind == "line":
                h.set_data(item["x"], item["y"])
                if item.get("label") and not item["label"].startswith("_"):
                    h.set_label(item["label"])
            elif kind == "lines":
                h.set_segments(list(np.asarray(item["segs"])))
            elif kind == "scatter":
                h.set_offsets(np.asarray(item["xy"]))
            elif kind == "image":
                data = np.asarray(item["data"], np.float64)
                h.set_data(np.ma.masked_less_equal(data, 0) if item.get("norm") == "log" else data)
            elif kind == "vline":
                h.set_xdata([item["x"], item["x"]])
        if p["legend"] and ax.get_legend() is not None:
            for text, item in zip(ax.get_legend().get_texts(), [i for i in p["items"] if i.get("label")]):
                text.set_text(item["label"])
    fig.suptitle(spec["title"], fontsize=11)
    return True


def figure_rgb(fig) -> np.ndarray:
    """The figure drawn to an ``(H, W, 3)`` uint8 array."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()


def save_figure(fig, path, dpi: int = 100) -> None:
    """Write a figure to PNG/SVG/PDF (the suffix picks) with the Agg-family canvases."""
    fig.savefig(path, dpi=dpi, facecolor="white")


class FrameRenderer:
    """Draw the frames of a view fast: the axes, ticks and labels (the same in every frame)
    are drawn once and kept as a background; each frame restores it and draws only the
    artists that change (the spec's items, titles, legends)."""

    def __init__(self, dpi: int = 100):
        require_matplotlib()
        self.dpi = dpi
        self.fig = self.handles = self.background = None
        self.dynamic: list = []

    def _setup(self, spec) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=spec["size"], dpi=self.dpi, layout="constrained")
        FigureCanvasAgg(self.fig)
        self.fig, self.handles = draw(spec, self.fig)
        self.fig.canvas.draw()                       # lay out once, then freeze the layout
        self.fig.set_layout_engine("none")
        dyn = [h for hs in self.handles["items"] for h in hs]
        for ax in self.handles["axes"]:
            dyn.append(ax.title)
            if ax.get_legend() is not None:
                dyn.append(ax.get_legend())
        if self.fig._suptitle is not None:
            dyn.append(self.fig._suptitle)
        self.dynamic = dyn
        for a in dyn:
            a.set_visible(False)
        self.fig.canvas.draw()
        self.background = self.fig.canvas.copy_from_bbox(self.fig.bbox)
        for a in dyn:
            a.set_visible(True)

    def render(self, spec) -> np.ndarray:
        """The frame ``spec`` as an ``(H, W, 3)`` uint8 array."""
        if self.fig is None or not update(self.fig, self.handles, spec):
            self._setup(spec)
        canvas = self.fig.canvas
        canvas.restore_region(self.background)
        renderer = canvas.get_renderer()
        for ax, hs in zip(self.handles["axes"], self.handles["items"]):
            for a in sorted(hs, key=lambda a: a.get_zorder()):
                a.draw(renderer)
            for spine in ax.spines.values():   # an image may have covered the frame
                spine.draw(renderer)
            ax.title.draw(renderer)
            if ax.get_legend() is not None:
                ax.get_legend().draw(renderer)
        if self.fig._suptitle is not None:
            self.fig._suptitle.draw(renderer)
        return np.asarray(canvas.buffer_rgba())[:, :, :3].copy()
