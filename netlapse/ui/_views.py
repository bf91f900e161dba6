"""The dashboard's view panels: one frame of a view (``netlapse.views``) as the spec that
``render.spec`` builds for matplotlib and the HTML player, packed for ``specdraw.js``.

So a panel drawn this way shows what ``nl.plot.<view>`` draws, from the same view data. To add
a panel: name its view in ``VIEWS`` with the stream whose recorded steps are its frames.
"""

from __future__ import annotations

from ..errors import NetlapseError

__all__ = ["VIEWS", "view_frame", "frame_step"]


def _hidden_space(reader, layer):
    from ..views import hidden_space
    from ..views._common import probe_layers

    if layer is None:
        two = [n for n in probe_layers(reader)[:-1] if reader[f"probe/{n}"].shape[-1:] == (2,)]
        if not two:
            raise NetlapseError("no probe layer has 2 units: the hidden-space panel needs one.")
        layer = two[-1]
    return f"probe/{layer}", lambda step: hidden_space(reader, layer, steps=step)


def _function_fit(reader, layer):
    from ..views import function_fit
    from ..views._common import probe_layers

    layer = layer or probe_layers(reader)[-1]
    return f"probe/{layer}", lambda step: function_fit(reader, layer, steps=step)


VIEWS = {"hidden_space": _hidden_space, "function_fit": _function_fit}


def _resolve(reader, view: str, layer):
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; the dashboard draws: {', '.join(VIEWS)}")
    if layer is not None and layer.startswith("probe/"):
        layer = layer[len("probe/"):]
    stream, make = VIEWS[view](reader, layer)
    s = reader[stream]
    if not s.length:
        raise LookupError(f"{stream} has no committed steps yet")
    return s, make


def frame_step(reader, view: str, step: int, layer: str | None = None) -> int:
    """The recorded step whose frame ``view_frame`` draws for ``step``."""
    s, _ = _resolve(reader, view, layer)
    return s.step_of(-1 if step < 0 else max(0, s.index_at_or_before(step)))


def view_frame(reader, view: str, step: int, layer: str | None = None) -> dict:
    """``{"step", "prev", "next", "spec", "arrays", "cmaps"}``: the frame of ``view`` at the last
    recorded step at or before ``step`` (the first if earlier; ``-1``: the last) and its
    neighbouring recorded steps (None at the ends)."""
    from ..render.html import frame_document
    from ..render.spec import frame_spec

    s, make = _resolve(reader, view, layer)
    i = s.length - 1 if step < 0 else max(0, s.index_at_or_before(step))
    at = s.step_of(i)
    doc = frame_document(frame_spec(make(at), 0))
    return {"step": at, "prev": s.step_of(i - 1) if i > 0 else None,
            "next": s.step_of(i + 1) if i + 1 < s.length else None, **doc}
