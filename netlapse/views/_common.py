"""Helpers shared by the views: open a run, pick steps, order layers, read the probe layout."""

from __future__ import annotations

import numpy as np

from ..errors import NetlapseError, StreamNotFoundError, nearest_names

__all__ = ["as_reader", "select_steps", "parse_steps", "layer_order", "probe_layers",
           "probe_layout", "full_stream", "module_names", "nearest_at_or_before"]


def as_reader(run):
    """A RunReader from a path, a RunReader, or an open ``netlapse.Run``."""
    from ..store.reader import RunReader

    if isinstance(run, RunReader):
        return run
    path = getattr(run, "path", run)
    if hasattr(run, "flush") and not getattr(run, "closed", False):   # a closed run is on disk
        run.flush()
    return RunReader(path)


def parse_steps(text: str):
    """``"A:B:N"`` -> ``(A, B, N)``; any part may be empty (``":"``, ``"100:"``, ``"::50"``)."""
    parts = str(text).split(":")
    if len(parts) > 3:
        raise NetlapseError(f"steps {text!r} should look like A:B:N (first step, last step, "
                            "number of frames), e.g. 0:1000:100.")
    try:
        vals = [int(p) if p.strip() else None for p in parts] + [None] * (3 - len(parts))
    except ValueError:
        raise NetlapseError(f"steps {text!r} should hold integers, as in 0:1000:100.") from None
    return tuple(vals)


def select_steps(recorded: np.ndarray, steps=None, max_frames: int | None = None,
                 what: str = "stream") -> np.ndarray:
    """Pick frame steps among ``recorded``.

    ``steps``: None (all), an int (that one step; -1 = last), a ``"A:B:N"`` string (recorded
    steps in [A, B], at most N of them evenly spread), or a sequence of recorded steps.
    ``max_frames`` thins the result evenly (first and last kept).
    """
    recorded = np.asarray(recorded, np.int64)
    if len(recorded) == 0:
        raise NetlapseError(f"{what} has no recorded steps yet.")
    if steps is None:
        chosen = recorded
    elif isinstance(steps, (int, np.integer)):
        s = int(steps)
        if s < 0:
            if -s > len(recorded):
                raise NetlapseError(f"{what} has {len(recorded)} recorded steps; {s} is out of range.")
            s = int(recorded[s])
        elif s not in set(recorded.tolist()):
            raise NetlapseError(f"{what} has no data at step {s}; recorded: "
                                f"{_describe(recorded)}.")
        chosen = np.array([s], np.int64)
    elif isinstance(steps, str):
        a, b, n = parse_steps(steps)
        lo = recorded[0] if a is None else a
        hi = recorded[-1] if b is None else b
        chosen = recorded[(recorded >= lo) & (recorded <= hi)]
        if len(chosen) == 0:
            raise NetlapseError(f"{what} has no recorded step in {lo}..{hi}; recorded: "
                                f"{_describe(recorded)}.")
        if n is not None:
            chosen = thin(chosen, n)
    else:
        chosen = np.asarray(list(steps), np.int64)
        missing = sorted(set(chosen.tolist()) - set(recorded.tolist()))
        if missing:
            raise NetlapseError(f"{what} has no data at steps {missing[:5]}; recorded: "
                                f"{_describe(recorded)}.")
    if max_frames is not None:
        chosen = thin(chosen, max_frames)
    return chosen


def thin(values: np.ndarray, n: int) -> np.ndarray:
    """At most ``n`` of ``values``, evenly spread, first and last kept."""
    values = np.asarray(values)
    if n <= 0:
        raise NetlapseError(f"the number of frames must be positive, got {n}.")
    if len(values) <= n:
        return values
    idx = np.unique(np.round(np.linspace(0, len(values) - 1, n)).astype(np.int64))
    return values[idx]


def _describe(steps: np.ndarray) -> str:
    if len(steps) <= 8:
        return ", ".join(str(int(s)) for s in steps)
    return f"{int(steps[0])}, {int(steps[1])}, ..., {int(steps[-1])} ({len(steps)} steps)"


def nearest_at_or_before(recorded: np.ndarray, step: int) -> int:
    """Index of the last recorded step <= ``step`` (the first one when none is)."""
    i = int(np.searchsorted(recorded, step, side="right")) - 1
    return max(i, 0)


def model_modules(reader) -> list[dict]:
    """The manifest's module summaries in model order; with several named models on the run
    (``nl.watch(..., name="G")``) each model's in turn, names prefixed as in their streams."""
    out = list((reader.model or {}).get("modules", []))
    for prefix, model in (reader.manifest.get("models") or {}).items():
        out += [{**m, "name": f"{prefix}/{m['name']}"} for m in (model or {}).get("modules", [])
                if m.get("name")]
    return out


def module_names(reader) -> list[str]:
    """Module names in model order (from the manifest's model summary), leaves first-seen order."""
    return [m["name"] for m in model_modules(reader) if m.get("name")]


def layer_order(reader, names) -> list[str]:
    """``names`` (layer or parameter names) sorted by the model's module order."""
    order = {n: i for i, n in enumerate(module_names(reader))}

    def key(name):
        base = name
        while base and base not in order:
            base = base.rpartition(".")[0]
        return (order.get(base, len(order)), name)

    return sorted(names, key=key)


def probe_layers(reader) -> list[str]:
    """Layer names with a ``probe/<layer>`` stream, in model order."""
    names = [s.split("/", 1)[1] for s in reader.streams("probe")]
    if not names:
        raise NetlapseError(f"run {reader.path} has no probe streams. Record one with "
                            "nl.watch(model, run, probe=(x_probe, y_probe)).")
    return layer_order(reader, names)


def probe_layout(reader, key: str) -> list:
    layout = reader.config.get("probe_layout")
    if not layout or key not in layout:
        return None
    return layout[key]


def full_stream(reader, name: str):
    """The stream ``name``, which must be captured in full."""
    if name not in reader:
        near = nearest_names(name, reader.streams())
        raise StreamNotFoundError(f"no stream {name!r} in run {reader.path}. Nearest: "
                                  f"{', '.join(near) or 'none'}.")
    s = reader[name]
    if s.capture != "full":
        raise NetlapseError(f"{name} holds stats only; this view needs the exact tensors. "
                            f"Record it with capture \"full\" (e.g. weights=\"full\").")
    return s
