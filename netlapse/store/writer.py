"""Appending batches of steps to the zarr store, and publishing them with ``commit.json``.

Only the writer thread calls this. The protocol (see layout.py): grow arrays ahead, write the
new rows, then atomically replace ``commit.json`` with the new lengths. A reader trusts only
``commit.json``, so it never sees a half-written step, and a killed writer leaves every
committed step exact (zarr's LocalStore also writes each chunk file atomically).

Full tensors can be gigabytes a minute. Once a chunk of them is complete (appends only move
forward, so no later write touches it), the writer flushes its file and tells the kernel to
drop it from the page cache (``_release_cached``): the page cache then reuses pages instead
of growing over the whole RAM and evicting the user's data. On this project's VMs writing
into never-used memory cost about 2.5 ms of kernel CPU per MB (5 ms a step for the MLP's full
weights); with the drop-behind it is under 1 ms, and the flush waits on the disk with the
GIL released.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from pathlib import Path

import numpy as np

from .._jsonio import read_json, write_json_atomic
from .._stats import HIST_BINS, N_STATS
from .layout import (COMMIT_FILE, DATA_DIR, FORMAT_VERSION, METRICS_GROUP, SMALL_CHUNK_STEPS,
                     compressors, metric_key, values_chunk_steps, values_compressors)
from ._chunks import DirectChunks
from .manifest import Manifest

__all__ = ["StoreWriter"]

RELEASE_CHUNK_BYTES = 1 << 20   # complete chunks at least this big leave the page cache


class _Column:
    """One growable zarr array with time first; ``capacity`` rows exist, the caller tracks length."""

    def __init__(self, array, chunk_steps: int, root: Path | None = None):
        self.array = array
        self.chunk_steps = chunk_steps
        self.root = root          # the array's folder: complete chunks are released from cache
        self.released = None      # chunks below this index are released (None: not started)
        self.direct = None        # DirectChunks for full-tensor arrays (see direct_chunks)
        self.direct_checked = False
        self.rows_direct = False  # every write goes through DirectChunks.write_rows

    def direct_chunks(self) -> None:
        """Write whole aligned chunks straight to their files (full tensors; see _chunks)."""
        self.direct = DirectChunks.for_array(self.array, self.root)
        self.direct_checked = True

    def release_complete(self, start: int) -> None:
        """Flush and drop from the page cache the chunk files wholly before row ``start``
        that an earlier call did not release (rows are only ever appended after them)."""
        done = start // self.chunk_steps
        if self.released is None:
            self.released = done      # chunks from before this session (resume): leave them
            return
        tail = (0,) * (self.array.ndim - 1)
        for i in range(self.released, done):
            _RELEASER.release(self.root / self.array.metadata.encode_chunk_key((i,) + tail))
        self.released = max(self.released, done)

    def small_rows(self) -> None:
        """Write every append of this (small, per-step) array straight to its chunk files,
        keeping the growing chunk in memory: a commit then costs a few file writes, not
        zarr's read-modify-write through its event loop (about 5 ms of wall time each)."""
        self.direct = DirectChunks.for_array(self.array, self.root)
        self.rows_direct = self.direct is not None
        self.direct_checked = True

    def write(self, start: int, rows: np.ndarray, fast: bool = False) -> None:
        end = start + len(rows)
        capacity = self.array.shape[0]
        if end > capacity:
            grown = max(end, 2 * capacity)
            grown = -(-grown // self.chunk_steps) * self.chunk_steps
            self.array.resize((grown,) + tuple(self.array.shape[1:]))
        if self.rows_direct:
            self.direct.write_rows(start, rows, self.chunk_steps)
            return
        # Full tensors: whole chunks are encoded straight from the block; a started chunk (a
        # commit wrote part of it) is completed from the rows held in memory. Through zarr,
        # those read-modify-writes ran on its worker threads and grew the process by about
        # 10 MB per 500 steps (allocator fragmentation), without bound.
        if self.direct is not None:
            head = min(len(rows), -start % self.chunk_steps)
            if head:
                self.direct.write_rows(start, rows[:head], self.chunk_steps)
            done = head + self.direct.write(start + head, rows[head:], self.chunk_steps, fast)
            start, rows = start + done, rows[done:]
            if len(rows):
                self.direct.write_rows(start, rows, self.chunk_steps)
            return
        if len(rows):
            self.array[start:end] = rows


class _LikeArray:
    """A new per-step array laid out exactly as ``template`` (same dtype, row shape, chunks,
    codecs and fill value), made by writing its ``zarr.json`` (the template's, with its own
    shape) instead of through zarr: ``create_array`` costs about 4 ms of mostly GIL-holding
    Python, and a ResNet-18's weights, grads, updates and buffers need 558 small arrays at the
    first commit (2 s during which training waited). Every write to it goes through
    ``DirectChunks`` (``_Column.small_rows``), which needs only what this class has."""

    def __init__(self, template, doc: dict, folder: Path):
        self.metadata = template.metadata   # codecs, chunk key encoding, fill value: shared
        self.dtype = template.dtype
        self.ndim = template.ndim
        self.shape = tuple(template.shape)
        self._doc = doc
        self._folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._write()

    def resize(self, shape) -> None:
        self.shape = tuple(shape)
        self._write()

    def _write(self) -> None:
        write_json_atomic(self._folder / ZARR_JSON, {**self._doc, "shape": list(self.shape)})


ZARR_JSON = "zarr.json"


class StoreWriter:
    def __init__(self, root: Path, manifest: Manifest, *, resume: bool = False, level: int = 1):
        import zarr
        from zarr.storage import LocalStore

        self.root = Path(root)
        self.manifest = manifest
        self.level = level
        self.group = zarr.open_group(LocalStore(self.root / DATA_DIR), mode="a")
        self.columns: dict[tuple[str, str], _Column] = {}
        self.lengths: dict[str, int] = {}
        self.metric_rows = 0
        self.metric_names: list[str] = []
        self.seq = 0
        self._new_streams: dict[str, dict] = {}
        # arrays already on disk (a resumed run; or one cut off before its first commit, which
        # made arrays but published none): looked up before anything is made
        self._resume = resume or any(p.name != ZARR_JSON for p in (self.root / DATA_DIR).iterdir())
        self._templates: dict[tuple, tuple] = {}   # layout -> (zarr array, its zarr.json)
        self._groups_made: set[str] = set()        # group paths with a zarr.json (see _make_groups)
        if resume:
            self._load_commit()

    # ------------------------------------------------------------------ commit state
    def _load_commit(self) -> None:
        path = self.root / COMMIT_FILE
        if not path.exists():
            return
        commit = read_json(path)
        self.lengths = {k: int(v) for k, v in commit.get("lengths", {}).items()}
        self.metric_rows = int(commit.get("metric_rows", 0))
        self.metric_names = list(commit.get("metric_names", []))
        self.seq = int(commit.get("seq", 0))

    def commit(self, **extra) -> None:
        if self._new_streams:   # described in run.json before commit.json counts their rows
            self.manifest.add_streams(self._new_streams)
            self._new_streams = {}
        self.seq += 1
        write_json_atomic(self.root / COMMIT_FILE, {
            "format_version": FORMAT_VERSION,
            "seq": self.seq,
            "time": time.time(),
            "lengths": self.lengths,
            "metric_rows": self.metric_rows,
            "metric_names": self.metric_names,
            **extra,
        })

    # ------------------------------------------------------------------ arrays
    def _column(self, path: str, key: str, shape: tuple, dtype, chunk_steps: int = SMALL_CHUNK_STEPS,
                codecs=None, small: bool = True) -> _Column:
        """The array ``path/key`` (made on first use). ``small``: a per-step array appended at
        every commit, written straight to its chunk files (see ``_Column.small_rows``)."""
        col = self.columns.get((path, key))
        if col is None:
            name = f"{path}/{key}"
            layout = (tuple(shape), np.dtype(dtype).str, chunk_steps) if small and codecs is None else None
            made = self._templates.get(layout)
            array = self._existing(name)
            if array is None and made is not None:
                self._make_groups(path)
                array = _LikeArray(made[0], made[1], self.root / DATA_DIR / name)
            elif array is None:
                # small arrays start one chunk long: no resize at the first commit
                array = self.group.create_array(
                    name=name, shape=(chunk_steps if small else 0,) + tuple(shape), chunks=(chunk_steps,) + tuple(shape),
                    dtype=dtype, compressors=codecs or compressors(self.level),
                    fill_value=np.nan if np.dtype(dtype).kind == "f" else 0)
                self._groups_made.update(_parents(name))
            else:
                made = layout = None   # from disk (resume): as it is
            col = self.columns[(path, key)] = _Column(array, chunk_steps,
                                                      self.root / DATA_DIR / name)
            if small:
                col.small_rows()
            if layout is not None and made is None and col.rows_direct:   # the layout's template
                self._templates[layout] = (array, read_json(self.root / DATA_DIR / name / ZARR_JSON))
        return col

    def _existing(self, name: str):
        """The array ``name`` if it is on disk (a resumed run), else None. A new run's arrays
        are all made by this writer: no lookup (about 0.6 ms each through zarr)."""
        if not self._resume:
            return None
        # a folder copied or cut off mid-write can hold an array without its group's zarr.json
        # (zarr then does not find the array, and refuses to make it again): put those back
        self._make_groups(name.rsplit("/", 1)[0])
        try:
            return self.group[name]
        except KeyError:
            return None

    def _make_groups(self, path: str) -> None:
        """``zarr.json`` of every group on ``path`` (a stream's folder and its parents) that
        this writer has not made yet, as zarr writes them (the root group's own document)."""
        missing = [g for g in _parents(path + "/x") if g not in self._groups_made]
        if not missing:
            return
        doc = read_json(self.root / DATA_DIR / ZARR_JSON)
        for g in missing:
            folder = self.root / DATA_DIR / g
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / ZARR_JSON).exists():
                write_json_atomic(folder / ZARR_JSON, doc)
            self._groups_made.add(g)

    def length(self, name: str) -> int:
        """Rows of stream ``name`` written and about to be published by the next commit."""
        return self.lengths.get(name, 0)

    def _register(self, name: str, meta: dict) -> None:
        """A new stream goes into run.json at the next commit, with the others new by then: one
        manifest write per commit, not one per stream (the first commit of a ResNet-18's
        weights, grads and buffers wrote the whole manifest 124 times, about 5 s of CPU)."""
        if name not in self.manifest.streams and name not in self._new_streams:
            self._new_streams[name] = meta

    def write_values(self, name: str, meta: dict, start: int, values: np.ndarray,
                     fast: bool = False) -> None:
        """Write full tensors as rows ``start...`` of ``name/values`` ahead of their steps.
        ``fast``: whole chunks are stored uncompressed (the writer is behind).

        They are not published until ``append_stream`` covers those rows and ``commit`` runs,
        so big tensors can go to disk as soon as a batch is full while the small arrays of the
        same steps wait for the next commit.
        """
        self._register(name, meta)
        shape = tuple(meta["shape"])
        chunk = values_chunk_steps(shape, values.dtype)
        col = self._column(name, "values", shape, values.dtype, chunk, values_compressors(),
                           small=False)
        if not col.direct_checked:
            col.direct_chunks()
        if chunk * values[0].nbytes >= RELEASE_CHUNK_BYTES:
            col.release_complete(start)   # the chunks the last write completed, one write behind
        col.write(start, values, fast)

    def append_stream(self, name: str, meta: dict, steps: np.ndarray, stats: np.ndarray,
                      hist: np.ndarray, values: np.ndarray | None, extras: dict | None = None) -> None:
        """Write ``len(steps)`` new rows of stream ``name`` (not yet published).

        ``values``: the full tensors of these steps, or None when there are none or they were
        already written with ``write_values``. ``extras``: derived per-step rows (key ->
        ``(len(steps), ...)`` array), e.g. the unit activity of activations (``derive.py``).
        """
        self._register(name, meta)
        start = self.lengths.get(name, 0)
        self._column(name, "steps", (), np.int64).write(start, steps)
        self._column(name, "stats", (N_STATS,), np.float64).write(start, stats)
        self._column(name, "hist", (HIST_BINS,), np.int64).write(start, hist)
        for key, rows in (extras or {}).items():
            self._column(name, key, rows.shape[1:], rows.dtype).write(start, rows)
        if values is not None:
            self.write_values(name, meta, start, values)
        self.lengths[name] = start + len(steps)

    def append_metrics(self, steps: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        start = self.metric_rows
        n = len(steps)
        self._column(METRICS_GROUP, "step", (), np.int64).write(start, steps)
        for name in columns:
            if name not in self.metric_names:
                self.metric_names.append(name)
        for name in self.metric_names:
            col = self._column(METRICS_GROUP, metric_key(name), (), np.float64)
            if col.array.shape[0] < start:   # a metric first logged now: earlier rows are NaN
                col.write(col.array.shape[0], np.full(start - col.array.shape[0], np.nan))
            col.write(start, columns.get(name, np.full(n, np.nan)))
        self.metric_rows = start + n


def _parents(name: str) -> list[str]:
    """The group paths above array ``name``: ``a/b/c`` -> ``a``, ``a/b``."""
    parts = name.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]


class _Releaser:
    """Runs ``_release_cached`` on its own thread: the flush waits on the disk (about 2 ms a
    step for the MLP's full weights), and the writer should spend that time summarizing and
    compressing. A hint only: when the disk is so slow that 64 files wait, later ones are
    left in the page cache (the kernel writes them back as usual)."""

    def __init__(self):
        self._queue: queue.Queue = queue.Queue(maxsize=64)
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def release(self, path: Path) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="netlapse-release",
                                                daemon=True)
                self._thread.start()
        try:
            self._queue.put_nowait(path)
        except queue.Full:
            pass

    def _run(self) -> None:
        while True:
            _release_cached(self._queue.get())


_RELEASER = _Releaser()


def _release_cached(path: Path) -> None:
    """Write ``path`` to disk and drop its pages from the page cache (a hint: errors are
    ignored, the data is already in the file and the commit protocol does not rely on it)."""
    if not hasattr(os, "posix_fadvise"):
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fdatasync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    except OSError:
        pass
    finally:
        os.close(fd)
