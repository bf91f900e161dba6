"""``netlapse info RUN``: a plain-text table of a run's streams, status and metrics."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._sizes import human_bytes, size_on_disk
from ..errors import CorruptRunError
from ..store.reader import RunReader

__all__ = ["describe_run", "inspect_run", "first_nonfinite"]


def _steps_text(steps: np.ndarray) -> str:
    if len(steps) == 0:
        return "-"
    return f"{int(steps[0])}..{int(steps[-1])} ({len(steps)})"


def first_nonfinite(run: RunReader) -> tuple[int, str] | None:
    """The earliest (step, stream) whose stats count a NaN or Inf, or None."""
    best = None
    for name in run.streams():
        s = run[name]
        try:
            bad = np.nonzero(s.stats_array[:, 7] > 0)[0] if s.length else []
        except CorruptRunError:
            continue   # reported by inspect_run

        if len(bad):
            cand = (int(s.steps[bad[0]]), name)
            best = cand if best is None or cand < best else best
    return best


def describe_run(path) -> str:
    """The ``netlapse info`` text (damaged streams are marked in the table)."""
    return inspect_run(path)[0]


def inspect_run(path, check: bool = False) -> tuple[str, list[str]]:
    """``(text, problems)``: the info table, and one message per damaged file found.

    ``check=True`` also decodes every committed chunk (reads the whole run).
    """
    run = RunReader(path)
    problems: list[str] = []
    lines = [f"run      {run.path}", f"status   {run.status}"]
    if run.manifest.get("error"):
        lines.append(f"error    recording stopped: {run.manifest['error']}")
    exc = run.manifest.get("exception")
    if exc:
        lines.append(f"ended by {exc.get('type')}: {exc.get('message')} (at step {exc.get('step')})")
    if run.manifest.get("note"):
        lines.append(f"note     {run.manifest['note']}")
    fw = run.manifest.get("framework") or {}
    if fw:
        lines.append(f"framework {fw.get('name')} {fw.get('version')}")
    model = run.model or {}
    if model:
        lines.append(f"model    {model.get('type')} with {model.get('total_params', 0):,} parameters")
    for name, m in (run.manifest.get("models") or {}).items():
        lines.append(f"model    {name}: {(m or {}).get('type')} with "
                     f"{(m or {}).get('total_params', 0):,} parameters")
    for alias, name in run.aliases().items():
        lines.append(f"alias    {alias} is {name} (shared; its streams are stored under {name})")
    models = [("", model)] + [(f"{k}/", m) for k, m in (run.manifest.get("models") or {}).items()]
    buffers = [prefix + b["name"] for prefix, m in models for b in (m or {}).get("buffers") or []]
    if buffers:
        more = f", ... ({len(buffers)} in all)" if len(buffers) > 6 else ""
        lines.append(f"buffers  {', '.join(buffers[:6])}{more}")
    if run.config:
        lines.append("config   " + ", ".join(f"{k}={v}" for k, v in run.config.items()))
    try:
        last = str(run.last_step())
    except CorruptRunError:
        last = "unknown (damaged files, below)"
    lines.append(f"steps    last recorded step {last}; writer wait {run.waited_s:.2f} s")
    bad = first_nonfinite(run)
    if bad:
        lines.append(f"WARNING  first NaN/Inf at step {bad[0]} in {bad[1]}")
    rows = [("stream", "kind", "capture", "shape", "dtype", "steps", "on disk")]
    data = run.path / "data"
    for name in run.streams():
        s = run[name]
        try:
            steps = _steps_text(s.steps)
            s.stats_array
        except CorruptRunError as exc:
            steps = "DAMAGED"
            problems.append(str(exc))
        rows.append((name, s.kind, s.capture, "x".join(map(str, s.shape)) or "scalar", s.dtype,
                     steps, human_bytes(size_on_disk(data / name))))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines.append("")
    for r in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    try:
        metrics = run.metrics
    except CorruptRunError as exc:
        problems.append(str(exc))
        metrics = []
    if check:
        from .._progress import progress

        with progress(desc="checking chunks", unit="array") as bar:
            problems += [p for p in run.verify(bar) if p not in problems]
    if len(metrics):
        lines.append("")
        lines.append(f"metrics  {len(metrics)} steps")
        for col in metrics.columns[1:]:
            vals = metrics[col].dropna()
            if len(vals):
                lines.append(f"  {col}: first {vals.iloc[0]:.6g}, last {vals.iloc[-1]:.6g}, "
                             f"min {vals.min():.6g}, max {vals.max():.6g}")
    return "\n".join(lines), problems
