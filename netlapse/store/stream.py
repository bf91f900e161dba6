"""One recorded series of a run (``Stream``) and its histograms, read through the reader's checks."""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from .._stats import HIST_BINS, STAT_NAMES, hist_edges
from ..errors import StepNotRecordedError, StreamNotFoundError

if TYPE_CHECKING:
    from .reader import RunReader

__all__ = ["Stream", "Histograms"]

class Histograms(NamedTuple):
    """Histogram counts of a stream: ``counts[i]`` has ``HIST_BINS`` bins over ``[lo[i], hi[i]]``."""

    steps: np.ndarray
    counts: np.ndarray
    lo: np.ndarray
    hi: np.ndarray

    def edges(self, i: int) -> np.ndarray:
        return hist_edges(float(self.lo[i]), float(self.hi[i]), self.counts.shape[1])


class Stream:
    """One recorded series. Arrays are read on demand, cut to the committed length."""

    def __init__(self, reader: "RunReader", name: str, meta: dict, length: int):
        self._reader = reader
        self.name = name
        self.meta = meta
        self.length = length

    def _repr_html_(self) -> str:   # notebooks: name, shape, steps, last stats (netlapse._display)
        from .._display import stream_html

        return stream_html(self)

    def __repr__(self) -> str:
        return (f"<Stream {self.name} capture={self.capture} shape={tuple(self.shape)} "
                f"steps={self.length}>")

    @property
    def kind(self) -> str:
        return self.meta.get("kind", self.name.split("/", 1)[0])

    @property
    def capture(self) -> str:
        return self.meta.get("capture", "stats")

    @property
    def shape(self) -> tuple:
        return tuple(self.meta.get("shape", ()))

    @property
    def dtype(self) -> str:
        return self.meta.get("dtype", "")

    def _read(self, key: str, sel):
        return self._reader._read(f"{self.name}/{key}", sel, self.length)

    @cached_property
    def steps(self) -> np.ndarray:
        """The recorded steps, ascending."""
        if self.length == 0:
            return np.zeros(0, np.int64)
        return np.asarray(self._read("steps", slice(0, self.length)), dtype=np.int64)

    def index(self, step: int) -> int:
        steps = self.steps
        if step < 0:   # -1 is the last recorded step, as in Python indexing
            if -step > len(steps):
                raise StepNotRecordedError(f"{self.name} has {len(steps)} recorded steps; "
                                           f"index {step} is out of range.")
            return len(steps) + step
        i = int(np.searchsorted(steps, step))
        if i >= len(steps) or steps[i] != step:
            raise StepNotRecordedError(
                f"{self.name} has no data at step {step}. Recorded steps: {_describe_steps(steps)}.")
        return i

    def at(self, step: int) -> np.ndarray:
        """The exact tensor recorded at ``step`` (``-1``: the last one). Full streams only."""
        self._need_full()
        return np.asarray(self._read("values", self.index(step)))

    def history(self, steps=None) -> np.ndarray:
        """All recorded tensors stacked as ``(T, *shape)`` (or those at ``steps``)."""
        if self.capture != "full":
            raise StreamNotFoundError(f"{self.name} holds stats only (capture {self.capture!r}).")
        if steps is None:
            return np.asarray(self._read("values", slice(0, self.length)))
        idx = [self.index(int(s)) for s in steps]
        return (np.stack([np.asarray(self._read("values", i)) for i in idx]) if idx
                else np.zeros((0,) + self.shape))

    # ---- row access: every read goes through the reader's integrity checks
    def _stop(self, start: int, stop: int | None) -> tuple[int, int]:
        n = self.length
        start = max(0, min(n, start + n if start < 0 else start))
        stop = n if stop is None else max(0, min(n, stop + n if stop < 0 else stop))
        return start, max(start, stop)

    def _row(self, i: int) -> int:
        j = i + self.length if i < 0 else i
        if not 0 <= j < self.length:
            raise StepNotRecordedError(f"{self.name} has {self.length} recorded steps; "
                                       f"row {i} is out of range.")
        return j

    def step_of(self, i: int) -> int:
        """The step recorded in row ``i`` (``-1``: the last row). Reads one element unless
        ``steps`` was already read."""
        i = self._row(i)
        if "steps" in self.__dict__:
            return int(self.steps[i])
        return int(self._read("steps", i))

    @property
    def first_step(self) -> int | None:
        """The first recorded step (None when nothing is committed yet)."""
        return self.step_of(0) if self.length else None

    @property
    def last_step(self) -> int | None:
        """The last recorded step (None when nothing is committed yet)."""
        return self.step_of(-1) if self.length else None

    def read_steps(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The steps of rows ``start:stop`` (Python slice rules), int64."""
        start, stop = self._stop(start, stop)
        if "steps" in self.__dict__ or start == stop:
            return self.steps[start:stop]
        return np.asarray(self._read("steps", slice(start, stop)), np.int64)

    def read_stats(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """Stats rows ``start:stop`` as ``(k, 8)`` float64 (columns ``STAT_NAMES``)."""
        start, stop = self._stop(start, stop)
        if "stats_array" in self.__dict__ or start == stop:
            return self.stats_array[start:stop]
        return np.asarray(self._read("stats", slice(start, stop)), np.float64)

    def stats_row(self, i: int) -> np.ndarray:
        """The stats of row ``i`` (``-1``: the last), float64 ``(8,)``."""
        i = self._row(i)
        if "stats_array" in self.__dict__:
            return self.stats_array[i]
        return np.asarray(self._read("stats", i), np.float64)

    def index_at_or_before(self, step: int) -> int:
        """The row of the last recorded step at or before ``step`` (``-1`` if ``step`` is before
        the first). Cheap when ``step`` is at or past the end, or steps are evenly spaced: a few
        single-element reads instead of the whole steps array."""
        n = self.length
        if n == 0:
            return -1
        last = self.step_of(-1)
        if step >= last:
            return n - 1
        first = self.step_of(0)
        if step < first:
            return -1
        if "steps" not in self.__dict__ and n > 2 and last > first and (last - first) % (n - 1) == 0:
            i = (step - first) // ((last - first) // (n - 1))   # evenly spaced: guess, then check
            if 0 <= i < n - 1 and self.step_of(i) <= step < self.step_of(i + 1):
                return int(i)
        return int(np.searchsorted(self.steps, step, side="right")) - 1

    def _need_full(self) -> None:
        if self.capture != "full":
            raise StreamNotFoundError(
                f"{self.name} was captured as {self.capture!r}, so only its stats and histograms "
                "are stored. Record it with capture \"full\" to get tensors back.")

    def at_index(self, i: int) -> np.ndarray:
        """The exact tensor of row ``i`` (``-1``: the last). Full streams only."""
        self._need_full()
        return np.asarray(self._read("values", self._row(i)))

    def read_values(self, start: int = 0, stop: int | None = None) -> np.ndarray:
        """The tensors of rows ``start:stop`` stacked as ``(k, *shape)``. Full streams only."""
        self._need_full()
        start, stop = self._stop(start, stop)
        if start == stop:
            return np.zeros((0,) + self.shape)
        return np.asarray(self._read("values", slice(start, stop)))

    @property
    def values_chunk_rows(self) -> int:
        """Rows per stored chunk of a full stream's tensors: reading a whole chunk
        (``read_values(c * k, (c + 1) * k)``) decodes it once."""
        self._need_full()
        return int(self._reader._array(f"{self.name}/values").chunks[0])

    @cached_property
    def stats_array(self) -> np.ndarray:
        """``(T, 8)`` float64, columns as ``netlapse._stats.STAT_NAMES``."""
        if self.length == 0:
            return np.zeros((0, len(STAT_NAMES)))
        return np.asarray(self._read("stats", slice(0, self.length)))

    @property
    def stats(self):
        """pandas DataFrame: step, mean, std, min, max, norm, mean_abs, zero_frac, nonfinite."""
        import pandas as pd

        df = pd.DataFrame(self.stats_array, columns=list(STAT_NAMES))
        df.insert(0, "step", self.steps)
        df["nonfinite"] = df["nonfinite"].astype(np.int64)
        return df

    def units(self, key: str = "active") -> np.ndarray | None:
        """Per-unit activity of an activation stream (format 2), ``(T, units)`` float32:
        ``"active"``, the fraction of each unit's outputs that are non-zero, or
        ``"saturated"``, the fraction within the margin of a bound (bounded activations). None
        when the run holds none (older runs, other kinds, unbounded activations)."""
        info = self.meta.get("units")
        if not info or (key == "saturated" and not info.get("bounds")):
            return None
        if self.length == 0:
            return np.zeros((0, int(info.get("count") or 0)), np.float32)
        return np.asarray(self._read(key, slice(0, self.length)))

    @property
    def histograms(self) -> Histograms:
        counts = (np.asarray(self._read("hist", slice(0, self.length))) if self.length
                  else np.zeros((0, HIST_BINS), np.int64))
        st = self.stats_array
        return Histograms(self.steps, counts, st[:, 2].copy(), st[:, 3].copy())


def _rows_of(sel, length: int):
    """The rows an index, a slice or an int array selects."""
    if isinstance(sel, slice):
        return range(*sel.indices(length))
    if isinstance(sel, np.ndarray):
        return sel.tolist()
    return [int(sel)]


def _describe_steps(steps: np.ndarray) -> str:
    if len(steps) == 0:
        return "none"
    if len(steps) <= 12:
        return ", ".join(str(int(s)) for s in steps)
    head = ", ".join(str(int(s)) for s in steps[:5])
    return f"{head}, ..., {int(steps[-1])} ({len(steps)} in all)"
