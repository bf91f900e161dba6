"""``nl.export.tensorboard(run, logdir)``: a run as TensorBoard event files.

Written with the ``tensorboard`` package's own event-file writer
(``tensorboard.summary.writer.event_file_writer.EventFileWriter``) and its summary protos
(``tensorboard.compat.proto``); no TensorFlow needed. What goes where:

- each metric -> a scalar with the metric's name (TensorBoard stores scalars as float32);
- each stream -> a histogram tagged with the stream's name, one per recorded step, with the
  stored bins as they are: ``bucket_limit`` are the right edges of the 64 stored bins,
  ``bucket`` their counts, ``min``/``max`` the step's range, ``sum`` and ``sum_squares``
  from its mean and L2 norm (only finite values are in a histogram; see ``netlapse._stats``);
- with ``images=True``, each 2-D stream captured in full -> an image tagged ``<stream>/image``
  per step: one tile per output unit, as ``nl.plot.weight_images`` draws them (blue
  negative, white zero, red positive, one symmetric scale per step; see ``weight_picture``).

The export folder keeps ``netlapse-export.json`` (which run, how many rows of each stream and
the last step of each metric are exported): exporting again writes a new event file with only
what was committed since.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import numpy as np

from .._jsonio import read_json, write_json_atomic
from .._stats import hist_edges
from ..errors import NetlapseError

__all__ = ["tensorboard", "weight_picture", "STATE_FILE", "IMAGE_MAX"]

STATE_FILE = "netlapse-export.json"
IMAGE_MAX = 1024     # pixels per side; bigger matrices are shown every k-th row/column
_HINT = "pip install 'netlapse[tensorboard]'"


def _require_tensorboard():
    try:
        from tensorboard.compat.proto import event_pb2, summary_pb2
        from tensorboard.compat.proto.histogram_pb2 import HistogramProto
        from tensorboard.summary.writer.event_file_writer import EventFileWriter
    except ImportError as exc:
        raise ImportError(f"exporting to TensorBoard needs the tensorboard package: {_HINT}") from exc
    return event_pb2, summary_pb2, HistogramProto, EventFileWriter


class _Events:
    """Opens one event file on the first event (an export with nothing new writes no file)."""

    def __init__(self, logdir: Path, protos):
        self.logdir, self.protos, self.writer, self.count = logdir, protos, None, 0
        self.wall_time = time.time()

    def add(self, step: int, value) -> None:
        event_pb2, summary_pb2, _, EventFileWriter = self.protos
        if self.writer is None:
            self.writer = EventFileWriter(str(self.logdir), filename_suffix=".netlapse")
        self.writer.add_event(event_pb2.Event(wall_time=self.wall_time, step=int(step),
                                              summary=summary_pb2.Summary(value=[value])))
        self.count += 1

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _identity(reader) -> dict:
    return {"path": str(reader.path.resolve()), "name": reader.name,
            "created": reader.manifest.get("created")}


def _load_state(logdir: Path, reader) -> dict:
    path = logdir / STATE_FILE
    ident = _identity(reader)
    if not path.exists():
        if logdir.is_dir() and any(logdir.glob("events.out.tfevents.*")):
            raise NetlapseError(f"{logdir} already holds TensorBoard event files but no "
                                f"{STATE_FILE}, so netlapse cannot tell what they hold. Export "
                                "into an empty folder (or a folder netlapse exported to before).")
        return {"run": ident, "streams": {}, "metrics": {}}
    state = read_json(path)
    if state.get("run", {}).get("created") != ident["created"]:
        old = state.get("run", {}).get("path", "another run")
        raise NetlapseError(f"{logdir} holds an export of {old} (created "
                            f"{state.get('run', {}).get('created')}), not of {reader.path}. "
                            "Export each run into its own folder, e.g. tb/<run name>, or delete "
                            f"{logdir} to start over.")
    state.setdefault("streams", {})
    state.setdefault("metrics", {})
    return state


def _colours(m: np.ndarray) -> np.ndarray:
    """RGB of ``m`` on one symmetric scale: blue negative, white zero, red positive; NaN black."""
    finite = np.isfinite(m)
    vmax = float(np.abs(m[finite]).max()) if finite.any() else 0.0
    t = np.clip(np.where(finite, m, 0.0) / vmax, -1, 1) if vmax > 0 else np.zeros_like(m)
    pos, neg = np.clip(t, 0, 1)[..., None], np.clip(-t, 0, 1)[..., None]
    white, red, blue = np.array([255.0] * 3), np.array([178.0, 24, 43]), np.array([33.0, 102, 172])
    rgb = white - pos * (white - red) - neg * (white - blue)
    rgb[~finite] = 0.0
    return rgb


def weight_picture(name: str, matrix: np.ndarray) -> np.ndarray:
    """The image of a 2-D stream (uint8 RGB): each output unit's incoming weights as a tile of
    ``views.weight_images.image_shape`` (784 -> 28x28), tiles in a near-square grid with
    1-pixel grey gaps, all on one symmetric scale; a matrix whose units do not make 2-D tiles
    (a prime number of inputs) or that has over 1024 units is drawn as it is (every k-th row
    and column past IMAGE_MAX). Small pictures are enlarged (whole pixels) to ~320 px wide."""
    from ..views.weight_images import default_units_axis, image_shape

    m = np.asarray(matrix, np.float64)
    units = np.moveaxis(m, default_units_axis(name, m.shape), 0)
    h, w = image_shape(units.shape[1])
    if h == 1 or units.shape[0] > 1024:
        m = m[::max(1, -(-m.shape[0] // IMAGE_MAX)), ::max(1, -(-m.shape[1] // IMAGE_MAX))]
        rgb = _colours(m)
    else:
        n = units.shape[0]
        cols = int(np.ceil(np.sqrt(n)))
        rows = -(-n // cols)
        tiles = _colours(units.reshape(n, h, w))
        rgb = np.full((rows * (h + 1) - 1, cols * (w + 1) - 1, 3), 200.0)
        for u in range(n):
            r, c = divmod(u, cols)
            rgb[r * (h + 1): r * (h + 1) + h, c * (w + 1): c * (w + 1) + w] = tiles[u]
    k = int(np.clip(320 // max(rgb.shape[1], 1), 1, 8))
    rgb = rgb.repeat(k, 0).repeat(k, 1)
    return rgb.round().astype(np.uint8)


def _png(rgb: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, format="PNG")
    return buf.getvalue()


def tensorboard(run, logdir, *, images: bool = False, streams=None) -> dict:
    """Export ``run`` (a folder, reader or ``Run``) to TensorBoard event files in ``logdir``.

    Metrics become scalars; every stream's stored histograms become TensorBoard histograms
    (same bin edges and counts); ``images=True`` adds each full 2-D stream as an image per
    step. ``streams``: names to export (default all). Exporting again appends only steps
    committed since the last export (see ``netlapse-export.json`` in ``logdir``).
    Returns what was written: ``{"scalars": n, "histograms": n, "images": n, "skipped": n,
    "logdir": path}`` (``skipped``: steps whose tensor had no finite value, so no histogram).
    """
    from ..views._common import as_reader

    protos = _require_tensorboard()
    _, summary_pb2, HistogramProto, _ = protos
    reader = as_reader(run)
    logdir = Path(logdir)
    state = _load_state(logdir, reader)
    logdir.mkdir(parents=True, exist_ok=True)
    names = reader.streams() if streams is None else list(streams)
    for name in names:
        reader[name]   # unknown names fail here, with the nearest ones
    if state.get("images", images) != images:
        raise NetlapseError(f"{logdir} was exported {'with' if state['images'] else 'without'} "
                            f"images; export again the same way, or into a new folder to "
                            f"{'drop' if state['images'] else 'add'} them.")
    state["images"] = images
    before = set(logdir.glob("events.out.tfevents.*"))
    events = _Events(logdir, protos)
    counts = {"scalars": 0, "histograms": 0, "images": 0, "skipped": 0}
    try:
        metrics = reader.metrics
        for col in metrics.columns[1:]:
            last = state["metrics"].get(col)
            steps, vals = metrics["step"].to_numpy(), metrics[col].to_numpy(np.float64)
            keep = np.isfinite(vals) & (steps > (last if last is not None else -np.inf))
            for step, v in zip(steps[keep], vals[keep]):
                events.add(step, summary_pb2.Summary.Value(tag=col, simple_value=float(v)))
                counts["scalars"] += 1
            if keep.any():
                state["metrics"][col] = int(steps[keep][-1])
        for name in names:
            s = reader[name]
            start = int(state["streams"].get(name, 0))
            if s.length <= start:
                continue
            h = s.histograms
            st = s.stats_array
            for i in range(start, s.length):
                lo, hi = float(h.lo[i]), float(h.hi[i])
                if not (np.isfinite(lo) and np.isfinite(hi)):
                    counts["skipped"] += 1
                    continue
                c = h.counts[i]
                num = float(c.sum())
                proto = HistogramProto(min=lo, max=hi, num=num, sum=float(st[i, 0]) * num,
                                       sum_squares=float(st[i, 4]) ** 2,
                                       bucket_limit=hist_edges(lo, hi, len(c))[1:].tolist(),
                                       bucket=c.astype(np.float64).tolist())
                events.add(h.steps[i], summary_pb2.Summary.Value(tag=name, histo=proto))
                counts["histograms"] += 1
                if images and s.capture == "full" and len(s.shape) == 2:
                    rgb = weight_picture(name, s.at(int(h.steps[i])))
                    img = summary_pb2.Summary.Image(height=rgb.shape[0], width=rgb.shape[1],
                                                    colorspace=3, encoded_image_string=_png(rgb))
                    events.add(h.steps[i], summary_pb2.Summary.Value(tag=f"{name}/image", image=img))
                    counts["images"] += 1
            state["streams"][name] = s.length
    except BaseException:
        events.close()    # all or nothing: a failed export leaves no half-written event file
        for path in set(logdir.glob("events.out.tfevents.*")) - before:
            path.unlink()
        raise
    events.close()
    if events.count:
        state["exported"] = time.time()
        write_json_atomic(logdir / STATE_FILE, state)
    return {**counts, "logdir": str(logdir)}
