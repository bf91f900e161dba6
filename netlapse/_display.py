"""HTML for IPython's display protocol: run and stream summaries, and the inline player.

Notebooks call ``_repr_html_`` on the last value of a cell: ``RunReader``, ``Run``, ``Stream``
and ``Animation`` delegate to the functions here. Nothing here imports IPython (the protocol
is only a method name) or a plotting library; the inline player needs matplotlib's colormaps,
as the saved player does.
"""

from __future__ import annotations

import html
import math

import numpy as np

from ._sizes import human_bytes, size_on_disk

__all__ = ["run_summary_html", "stream_html", "sparkline_svg", "animation_html",
           "EMBED_LIMIT_MB", "let_figures_show"]

EMBED_LIMIT_MB = 20.0   # the inline player's default size limit, as matplotlib's embed_limit

_STYLE = ("font-family:system-ui,-apple-system,'Segoe UI',sans-serif;font-size:13px;"
          "line-height:1.35;color:#222")
_TABLE = "border-collapse:collapse;margin:4px 0"
_CELL = "padding:2px 10px 2px 0;text-align:left;border-bottom:1px solid #eee;white-space:nowrap"
_MAX_ROWS = 40          # streams listed before "and N more"
_STATUS_COLOURS = {"running": "#1a7f37", "finished": "#555", "failed": "#c62828",
                   "not closed": "#b26a00"}


def _esc(x) -> str:
    return html.escape(str(x))


def _num(x: float) -> str:
    if x is None or not math.isfinite(x):
        return str(x)
    a = abs(x)
    if a != 0 and (a < 1e-3 or a >= 1e5):
        return f"{x:.3e}"
    return f"{x:.4g}"


def sparkline_svg(values, width: int = 140, height: int = 26, colour: str = "#1f77b4") -> str:
    """A small inline SVG line of ``values`` (NaNs skipped; at most ~2 points per pixel)."""
    v = np.asarray(values, np.float64)
    idx = np.nonzero(np.isfinite(v))[0]
    if len(idx) == 0:
        return ""
    if len(idx) > 2 * width:
        idx = idx[np.unique(np.linspace(0, len(idx) - 1, 2 * width).round().astype(int))]
    y = v[idx]
    lo, hi = float(y.min()), float(y.max())
    span_x = max(int(idx[-1] - idx[0]), 1)
    xs = 1 + (idx - idx[0]) * (width - 2) / span_x
    ys = (height - 2) - ((y - lo) / (hi - lo) * (height - 4) if hi > lo else np.full(len(y), (height - 4) / 2))
    pts = " ".join(f"{a:.1f},{b:.1f}" for a, b in zip(xs, ys))
    return (f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
            f'style="vertical-align:middle"><polyline points="{pts}" fill="none" '
            f'stroke="{colour}" stroke-width="1.3"/></svg>')


def _bars_svg(counts, width: int = 96, height: int = 22) -> str:
    c = np.asarray(counts, np.float64)
    if c.size == 0 or c.max() <= 0:
        return ""
    w = width / c.size
    bars = "".join(f'<rect x="{i * w:.2f}" y="{height - h:.2f}" width="{max(w - 0.3, 0.5):.2f}" '
                   f'height="{h:.2f}"/>' for i, h in enumerate(c / c.max() * height) if h > 0)
    return (f'<svg width="{width}" height="{height}" style="vertical-align:middle">'
            f'<g fill="#888">{bars}</g></svg>')


def _steps_text(steps) -> str:
    if len(steps) == 0:
        return "none yet"
    return f"{int(steps[0])}..{int(steps[-1])} ({len(steps)})"


def _shape_text(shape) -> str:
    return "×".join(map(str, shape)) or "scalar"


def stream_html(stream) -> str:
    """One stream: name, capture, shape, steps, the last step's stats and histogram."""
    from ._stats import STAT_NAMES

    head = (f"<b>{_esc(stream.name)}</b> · {_esc(stream.kind)} · {_esc(stream.capture)} · "
            f"shape {_esc(_shape_text(stream.shape))} {_esc(stream.dtype)} · "
            f"steps {_esc(_steps_text(stream.steps))}")
    body = ""
    if stream.length:
        st = stream.stats_array[-1]
        cells = "".join(f'<td style="{_CELL}">{_esc(n)}<br><b>{_esc(_num(float(v)))}</b></td>'
                        for n, v in zip(STAT_NAMES, st))
        hist = _bars_svg(stream.histograms.counts[-1])
        body = (f'<div>at step {int(stream.steps[-1])}:</div><table style="{_TABLE}"><tr>{cells}'
                f'<td style="{_CELL}">histogram<br>{hist}</td></tr></table>')
    return f'<div style="{_STYLE}">{head}{body}</div>'


def run_summary_html(reader, note: str = "") -> str:
    """A run: name, status, last step, config, metric sparklines and the streams table."""
    from .errors import CorruptRunError

    status = reader.status
    colour = _STATUS_COLOURS.get(status, "#555")
    try:
        last = str(reader.last_step())
    except CorruptRunError:
        last = "unknown (damaged files: run `netlapse info RUN --check`)"
    parts = [f'<div style="{_STYLE}"><div><b>netlapse run</b> {_esc(reader.name)} · '
             f'<span style="color:{colour};font-weight:600">{_esc(status)}</span> · '
             f'last step {_esc(last)} · {len(reader.streams())} streams'
             f'{" · " + _esc(note) if note else ""}</div>',
             f'<div style="color:#777">{_esc(reader.path)}</div>']
    if reader.config:
        cfg = ", ".join(f"{k}={v}" for k, v in list(reader.config.items())[:12])
        parts.append(f'<div style="color:#555">config: {_esc(cfg)}</div>')
    try:
        metrics = reader.metrics
    except CorruptRunError as exc:
        metrics = None
        parts.append(f'<div style="color:#c62828">metrics unreadable: {_esc(exc)}</div>')
    if metrics is not None and len(metrics):
        rows = []
        for col in metrics.columns[1:]:
            vals = metrics[col].to_numpy(np.float64)
            fin = vals[np.isfinite(vals)]
            if not fin.size:
                continue
            rows.append(f'<tr><td style="{_CELL}">{_esc(col)}</td><td style="{_CELL}">'
                        f'{sparkline_svg(vals)}</td><td style="{_CELL}">last <b>{_num(fin[-1])}</b>'
                        f' · min {_num(fin.min())} · max {_num(fin.max())}</td></tr>')
        parts.append(f'<table style="{_TABLE}"><caption style="text-align:left;color:#555;font-size:13px">'
                     f'metrics ({len(metrics)} steps)</caption>{"".join(rows)}</table>')
    names = reader.streams()
    if names:
        head = "".join(f'<th style="{_CELL}">{h}</th>' for h in
                       ("stream", "kind", "capture", "shape", "dtype", "steps", "on disk"))
        rows = []
        for name in names[:_MAX_ROWS]:
            s = reader[name]
            try:
                steps = _steps_text(s.steps)
            except CorruptRunError:
                steps = "DAMAGED"
            cells = (name, s.kind, s.capture, _shape_text(s.shape), s.dtype, steps,
                     human_bytes(size_on_disk(reader.path / "data" / name)))
            rows.append("<tr>" + "".join(f'<td style="{_CELL}">{_esc(c)}</td>' for c in cells) + "</tr>")
        more = (f'<div style="color:#777">and {len(names) - _MAX_ROWS} more: '
                f'run.streams() lists them all</div>' if len(names) > _MAX_ROWS else "")
        parts.append(f'<table style="{_TABLE}"><tr>{head}</tr>{"".join(rows)}</table>{more}')
    else:
        parts.append('<div style="color:#777">no stream recorded yet</div>')
    parts.append("</div>")
    return "".join(parts)


def animation_html(view, fps: float, limit_mb: float | None = None, title: str | None = None) -> str:
    """The offline player inline (an ``<iframe srcdoc>``, so several players on one page keep
    their own ids and styles), or a note with the ``.save()`` hint past ``limit_mb``."""
    from .render.html import player_page

    limit_mb = EMBED_LIMIT_MB if limit_mb is None else float(limit_mb)
    page, doc = player_page(view, fps, title)
    size_mb = len(page.encode("utf-8")) / 1e6
    if size_mb > limit_mb:
        return (f'<div style="{_STYLE}">netlapse animation <b>{_esc(doc["title"])}</b>: '
                f'{len(doc["frames"])} frames make a {size_mb:.1f} MB player, over the inline '
                f'limit of {limit_mb:g} MB. Save it and open the file instead: '
                f'<code>anim.save("animation.html")</code> (or .mp4, .gif); or show fewer frames '
                f'(<code>max_frames=</code>), or raise the limit '
                f'(<code>nl.animate.Animation.embed_limit_mb = {math.ceil(size_mb) + 1}</code>).</div>')
    w, h = doc["frames"][0].get("size", (6.4, 4.8))
    height = int(round(float(h) * 100)) + 150
    width = int(round(float(w) * 100)) + 40
    page = page.replace("</body>", _FIT + "</body>", 1)
    return (f'<iframe srcdoc="{html.escape(page, quote=True)}" title="{_esc(doc["title"])}" '
            f'style="width:100%;max-width:{width}px;height:{height}px;border:0" '
            f'data-netlapse-player="{len(doc["frames"])}"></iframe>')


# inline only: the iframe takes the height of the player it holds (the canvas scales with the
# width); a frame the page may not reach (a sandbox) keeps the estimated height
_FIT = """<script>(function () {
  function fit() {
    try { const f = window.frameElement; if (f) f.style.height = (Math.ceil(document.body.getBoundingClientRect().bottom) + 20) + "px"; }
    catch (e) { /* not allowed: keep the height given */ }
  }
  window.addEventListener("load", fit); window.addEventListener("resize", fit); setTimeout(fit, 50);
})();</script>
"""


def let_figures_show() -> None:
    """Make matplotlib Figures display as PNG in an IPython kernel where nothing did it yet.

    ``nl.plot`` builds Figures without pyplot (the user's backend is left alone), and IPython
    only learns to show Figures when pyplot or ``%matplotlib`` sets up the inline backend. So,
    when IPython is already loaded and no display formatter knows Figures, register the PNG
    one the inline backend would (``print_figure``, tight bounding box). IPython is never
    imported here."""
    import sys

    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    if shell is None or not hasattr(shell, "display_formatter"):
        return
    from functools import partial

    from matplotlib.figure import Figure

    formatters = shell.display_formatter.formatters
    for formatter in formatters.values():
        try:
            formatter.lookup_by_type(Figure)
            return
        except (KeyError, AttributeError):
            continue
    from IPython.core.pylabtools import print_figure

    formatters["image/png"].for_type(Figure, partial(print_figure, fmt="png", base64=True,
                                                     bbox_inches="tight"))
