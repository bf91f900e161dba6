"""The recording pipeline: reused host buffers, a bounded hand-off, and one writer thread.

The training thread only copies tensors into a free buffer and hands it over. Tensors taken at
the same moment (every grad before an update, every weight after it) travel together as a
``Group``: one buffer (a *slab*) holds them all, one queue item carries them, and the writer
summarizes them in one call (``submit_group``; ``submit`` is a group of one). The writer thread
computes stats and histograms, gathers steps into per-stream batches, and commits them every
``flush_every`` seconds (when that is 1 s or more, up to 5x less often when commits are slow,
so that they take at most about 5 % of the writer's time), when a stream has gathered many steps, and on ``close()``. Full tensors
are copied into a reused block per stream and written as soon as the block fills; they are
published by the next commit.

Backpressure: each group owns at most ``buffers_per_stream`` slabs. When all are in flight the
training thread waits for one (nothing is dropped) and the time it waited is counted.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .. import _stats
from .._stats import HIST_BINS, N_STATS
from ..errors import RecordingError
from ..store.layout import values_chunk_steps

__all__ = ["Pipeline", "BufferPool", "Group", "StreamSpec"]

BATCH_BYTES = 4 << 20      # a full stream's block of steps held before it is written
MAX_BATCH_STEPS = 256
FLUSH_SHARE = 20          # commit at most every 20x the time the last commit took,
MAX_GAP_FACTOR = 5        # but at least every 5 x flush_every
MAX_PENDING_STEPS = 4096   # commit early when a stream gathers this many steps between commits


SLAB_ALIGN = 64   # bytes: each tensor of a slab starts on a cache line


@dataclass(frozen=True)
class StreamSpec:
    """One tensor of a group: the stream it goes to and its layout in host memory."""

    name: str
    meta: dict
    shape: tuple
    dtype: np.dtype
    full: bool


class Group:
    """Streams captured at the same moment, laid out back to back in one host buffer (a slab).

    Adapters make a group once (e.g. every grad of a model) and submit it at every captured
    step; the pool keeps each group's slabs, so a step costs one buffer, one queue item and
    one summary call however many tensors it holds. Groups compare by identity.
    """

    __slots__ = ("specs", "offsets", "nbytes")

    def __init__(self, specs):
        self.specs = tuple(specs)
        offsets, at = [], 0
        for spec in self.specs:
            at = -(-at // SLAB_ALIGN) * SLAB_ALIGN
            offsets.append(at)
            at += int(np.prod(spec.shape, dtype=np.int64)) * np.dtype(spec.dtype).itemsize
        self.offsets = tuple(offsets)
        self.nbytes = max(at, 1)

    def views(self, slab: np.ndarray) -> list[np.ndarray]:
        """The tensors of this group inside ``slab`` (a uint8 array of ``nbytes``)."""
        out = []
        for spec, off in zip(self.specs, self.offsets):
            dtype = np.dtype(spec.dtype)
            size = int(np.prod(spec.shape, dtype=np.int64))
            out.append(slab[off:off + size * dtype.itemsize].view(dtype).reshape(spec.shape))
        return out


class BufferPool:
    """Per-group free lists of slabs, so a step's copy reuses memory instead of allocating.

    An entry is ``(slab, views)``: the host buffer and the group's tensors inside it. The fast
    path (a free entry exists) takes no lock: ``deque.pop``/``append`` are atomic. Only
    allocating a new slab and waiting for one go through the condition.
    """

    def __init__(self, per_stream: int, alloc: Callable[[tuple, np.dtype], np.ndarray] | None = None):
        self.per_stream = per_stream
        self.alloc = alloc or (lambda shape, dtype: np.empty(shape, dtype))
        self._free: dict[Group, deque] = {}
        self._made: dict[Group, int] = {}
        self._cond = threading.Condition()
        self._waiting = 0
        self.waited_s = 0.0

    def acquire(self, group: Group, check: Callable[[], None]) -> tuple:
        free = self._free.get(group)
        if free is None:
            free = self._free.setdefault(group, deque())
        try:
            return free.pop()
        except IndexError:
            pass
        with self._cond:
            if self._made.get(group, 0) < self.per_stream:
                self._made[group] = self._made.get(group, 0) + 1
                slab = self.alloc((group.nbytes,), np.dtype(np.uint8))
                return slab, group.views(slab)
            start = time.perf_counter()
            self._waiting += 1
            try:
                while True:
                    try:
                        return free.pop()
                    except IndexError:
                        pass
                    self._cond.wait(0.5)
                    check()   # surface a writer failure instead of waiting forever
            finally:
                self._waiting -= 1
                self.waited_s += time.perf_counter() - start

    def release(self, group: Group, entry: tuple) -> None:
        self._free[group].append(entry)
        if self._waiting:
            with self._cond:
                self._cond.notify_all()


@dataclass
class _Capture:
    group: Group
    step: int
    entry: tuple             # (slab, views) from the pool
    ready: Callable[[], None] | None = None

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.group.specs]


class LiveCapture:
    """Tensors handed to the writer without a copy: it reads them where they are.

    The training thread must call ``Pipeline.settle(cap)`` before anything may change them
    (for weights: before the next optimizer update). ``settle`` waits while the writer reads
    them, or, if the writer has not started, copies them into a pooled slab with ``fill`` and
    the writer reads the copy; either way the writer never reads memory that is changing.
    ``unchanged()`` tells whether they were modified in place since the hand-over (e.g. a
    tensor version counter); a step read while it changed is not stored, and a warning says so.
    """

    PENDING, READING, DONE, COPIED = range(4)

    def __init__(self, group: Group, step: int, arrays: list, fill: Callable[[list], object],
                 unchanged: Callable[[], bool]):
        self.group = group
        self.step = step
        self.arrays = arrays
        self.fill = fill
        self.unchanged = unchanged
        self.state = LiveCapture.PENDING
        self.cond = threading.Condition()
        self.entry: tuple | None = None

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.group.specs]


@dataclass(frozen=True)
class _Rows:
    """Stats and histogram rows computed elsewhere (e.g. reduced across ranks) for a group's
    streams, in ``_stats``' layout: stored as they are, nothing summarized again."""

    group: Group
    step: int
    stats: np.ndarray   # (k, N_STATS) float64
    hist: np.ndarray    # (k, HIST_BINS) int64

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.group.specs]


def _summarize_all(views: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Stats (k, N_STATS) and histograms (k, HIST_BINS) of every tensor of a group (one
    kernel call; a module-level name so tests can slow the writer down)."""
    return _stats.summarize_many(views)


@dataclass
class _StreamBatch:
    """Steps of one stream since the last commit.

    Full tensors go into ``values``, a block of ``capacity`` rows reused all run long; when it
    fills, its rows are written to the store at once (``written`` counts those), and the small
    per-step arrays (steps, stats, histograms) wait for the next commit.
    """

    meta: dict
    steps: list = field(default_factory=list)
    stats: list = field(default_factory=list)
    hist: list = field(default_factory=list)
    values: np.ndarray | None = None
    written: int = 0
    chunk: int = 1           # steps per chunk of the values array

    def put_row(self, value: np.ndarray) -> None:
        """Copy one full tensor into the block's next row (counted once its step is added)."""
        if self.values is None:
            n = self.capacity(value.shape, value.dtype)
            self.values = np.empty((n,) + value.shape, value.dtype)
            self.chunk = values_chunk_steps(tuple(value.shape), value.dtype)
        self.values[len(self.steps) - self.written] = value

    def next_row(self) -> np.ndarray:
        """The row ``put_row`` filled last (before its step is added)."""
        return self.values[len(self.steps) - self.written]

    def capacity(self, shape, dtype) -> int:
        """Steps per block: about BATCH_BYTES, and whole chunks of the values array when a
        chunk holds several steps, so that a full block rewrites no chunk."""
        nbytes = max(1, int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize)
        n = max(1, min(MAX_BATCH_STEPS, BATCH_BYTES // nbytes))
        chunk = values_chunk_steps(tuple(shape), dtype)
        return int(max(chunk, n // chunk * chunk) if chunk <= MAX_BATCH_STEPS else n)


class Pipeline:
    """Owns the writer thread. ``submit``/``log`` from the training thread; ``close`` flushes."""

    def __init__(self, writer_factory: Callable[[], object], *, flush_every: float = 1.0,
                 buffers_per_stream: int = 4, alloc=None, on_commit: Callable[[], dict] | None = None):
        self.pool = BufferPool(buffers_per_stream, alloc)
        self.flush_every = flush_every
        self._flush_gap = flush_every   # grows when commits are slow; see _flush
        self._queue: queue.Queue = queue.Queue()
        self._writer_factory = writer_factory
        self._on_commit = on_commit or (lambda: {})
        self._error: BaseException | None = None
        self._abort = threading.Event()   # set when close() gives up: write and commit nothing more
        self._beat = time.monotonic()      # the writer's last sign of progress
        self._closed = False
        self._batches: dict[str, _StreamBatch] = {}
        self._singles: dict[tuple, Group] = {}   # submit(): one group per stream layout
        self._waited_seen = 0.0                  # pool.waited_s at the last block written
        self._metric_steps: list[int] = []
        self._metric_rows: list[dict] = []
        self.last_committed_step: dict[str, int] = {}
        self._in_write: dict[str, list] = {}   # steps appended by the current flush, not committed
        self.stall_timeout = 300.0         # a writer with no progress this long is reported as failed
        self._thread = threading.Thread(target=self._run, name="netlapse-writer", daemon=True)
        self._ready = threading.Event()
        self._thread.start()
        self._ready.wait()
        self.raise_if_failed()

    # ------------------------------------------------------------------ training thread
    def raise_if_failed(self) -> None:
        if self._error is not None:
            err = self._error
            raise RecordingError(f"netlapse's background writer failed: {err!r}. "
                                 "Steps committed before the failure are intact on disk.") from err

    def submit(self, name: str, step: int, meta: dict, fill: Callable[[np.ndarray], object],
               shape: tuple, dtype, full: bool) -> None:
        """Copy one tensor into a pooled buffer with ``fill(buf)`` and hand it to the writer."""
        key = (name, tuple(shape), np.dtype(dtype).str, full)
        group = self._singles.get(key)
        if group is None:
            group = self._singles[key] = Group([StreamSpec(name, meta, tuple(shape), np.dtype(dtype), full)])
        self.submit_group(group, step, lambda views: fill(views[0]))

    def submit_group(self, group: Group, step: int, fill: Callable[[list], object]) -> None:
        """Copy a group's tensors into a pooled slab with ``fill(views)`` and hand it over.

        ``fill`` may return a callable that the writer calls before reading the slab (e.g. to
        wait for an asynchronous device-to-host copy).
        """
        self.raise_if_failed()
        if self._closed:
            raise RecordingError("this run is closed; open a new Run (or Run(..., resume=True)).")
        entry = self.pool.acquire(group, self._check_alive)
        ready = fill(entry[1])
        self._queue.put(_Capture(group, step, entry, ready))

    def submit_live(self, group: Group, step: int, arrays: list, fill: Callable[[list], object],
                    unchanged: Callable[[], bool]) -> LiveCapture:
        """Hand over ``arrays`` (views of the live tensors) without copying; see LiveCapture."""
        self.raise_if_failed()
        if self._closed:
            raise RecordingError("this run is closed; open a new Run (or Run(..., resume=True)).")
        cap = LiveCapture(group, step, arrays, fill, unchanged)
        self._queue.put(cap)
        return cap

    def settle(self, cap: LiveCapture) -> None:
        """Return once the writer no longer needs ``cap``'s live tensors (copy them if it has
        not started on them; wait if it is reading them)."""
        with cap.cond:
            if cap.state == LiveCapture.PENDING:
                entry = self.pool.acquire(cap.group, self._check_alive)
                cap.fill(entry[1])
                cap.entry, cap.state = entry, LiveCapture.COPIED
                return
            start = time.perf_counter()
            while cap.state == LiveCapture.READING:
                cap.cond.wait(0.5)
                self._check_alive()
            self.pool.waited_s += time.perf_counter() - start

    def submit_rows(self, group: Group, step: int, stats: np.ndarray, hist: np.ndarray) -> None:
        """Hand over precomputed stats rows ``(k, N_STATS)`` and histograms ``(k, HIST_BINS)``
        of a group's ``k`` streams (none of them full) at ``step``."""
        self.raise_if_failed()
        if self._closed:
            raise RecordingError("this run is closed; open a new Run (or Run(..., resume=True)).")
        stats = np.asarray(stats, np.float64).reshape(len(group.specs), N_STATS)
        hist = np.asarray(hist, np.int64).reshape(len(group.specs), HIST_BINS)
        self._queue.put(_Rows(group, step, stats, hist))

    def _check_alive(self) -> None:
        """While the training thread waits for a buffer: surface a failed or stalled writer."""
        self.raise_if_failed()
        stalled = time.monotonic() - self._beat
        if stalled > self.stall_timeout and self._thread.is_alive():
            self._abort.set()
            raise RecordingError(
                f"netlapse's background writer made no progress for {stalled:.0f} s (is the disk "
                f"hanging?). {self.pending_summary()}")

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.raise_if_failed()
        self._queue.put(("metrics", step, scalars))

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything submitted so far is committed to disk."""
        done = threading.Event()
        self._beat = time.monotonic()   # an idle writer is not a stalled one: time from now
        self._queue.put(("flush", done))
        self._wait(done, timeout)
        self.raise_if_failed()

    def close(self, timeout: float = 60.0) -> None:
        """Flush and stop the writer. ``timeout``: seconds without progress before giving up."""
        if self._closed:
            return
        self._closed = True
        done = threading.Event()
        self._beat = time.monotonic()
        self._queue.put(("close", done))
        self._wait(done, timeout)
        self._thread.join(timeout=1.0)
        self.raise_if_failed()

    def _wait(self, done: threading.Event, timeout: float | None) -> None:
        """Wait for ``done`` while the writer makes progress; give up after ``timeout`` s without."""
        while not done.wait(0.05 if timeout is None else min(0.05, timeout)):
            if self._error is not None and not self._thread.is_alive():
                return   # the writer died; raise_if_failed reports why
            if timeout is not None and time.monotonic() - self._beat > timeout:
                summary = self.pending_summary()   # before abort: what is queued or batched now
                self._abort.set()
                raise RecordingError(
                    f"netlapse's writer made no progress for {timeout:.0f} s (is the disk hanging "
                    f"or very slow?); gave up waiting. {summary}")

    def writer_alive(self) -> bool:
        return self._thread.is_alive()

    def pending_summary(self) -> str:
        """Which steps of which streams are queued or batched but not committed (for messages)."""
        with self._queue.mutex:
            items = list(self._queue.queue)
        pending: dict[str, list[int]] = {n: list(s) for n, s in list(self._in_write.items())}
        for name, batch in list(self._batches.items()):
            if batch.steps:
                pending.setdefault(name, []).extend(batch.steps)
        for item in items:
            if isinstance(item, (_Capture, LiveCapture, _Rows)):
                for name in item.names:
                    pending.setdefault(name, []).append(item.step)
            elif isinstance(item, tuple) and item[0] == "metrics":
                pending.setdefault("metrics", []).append(item[1])
        if self._metric_steps:
            pending.setdefault("metrics", []).extend(self._metric_steps)
        if not pending:
            return "Nothing was left unwritten; steps committed before are intact on disk."
        parts = [f"{n} steps {min(s)}..{max(s)} ({len(s)})" for n, s in sorted(pending.items())]
        more = f" and {len(parts) - 6} more streams" if len(parts) > 6 else ""
        return ("Not written: " + "; ".join(parts[:6]) + more +
                ". Steps committed before are intact on disk.")

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        try:
            self.writer = self._writer_factory()
        except BaseException as exc:  # noqa: BLE001 - handed to the training thread
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        last_flush = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self.flush_every)
            except queue.Empty:
                item = None
            self._beat = time.monotonic()
            if self._abort.is_set():
                self._error = self._error or RecordingError("recording was abandoned by close()")
                self._drain_after_error(item)
                return
            try:
                if isinstance(item, _Capture):
                    self._take(item)
                elif isinstance(item, LiveCapture):
                    self._take_live(item)
                elif isinstance(item, _Rows):
                    self._store_rows(item)
                elif isinstance(item, tuple) and item[0] == "metrics":
                    self._metric_steps.append(item[1])
                    self._metric_rows.append(item[2])
                elif isinstance(item, tuple):
                    self._flush()
                    last_flush = time.monotonic()
                    item[1].set()
                    if item[0] == "close":
                        return
                    continue
                if self._batch_full() or time.monotonic() - last_flush >= self._flush_gap:
                    self._flush()
                    last_flush = time.monotonic()
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread
                self._error = exc
                if isinstance(item, tuple) and item[0] in ("flush", "close"):
                    item[1].set()          # the flush or close that failed: wake its waiter
                    if item[0] == "close":
                        return
                self._drain_after_error()
                return

    def _drain_after_error(self, item=None) -> None:
        """After a failure: release buffers and wake waiters so the training thread never hangs."""
        while True:
            if item is None:
                item = self._queue.get()
            if isinstance(item, _Capture):
                self.pool.release(item.group, item.entry)
            elif isinstance(item, LiveCapture):
                with item.cond:
                    if item.state == LiveCapture.COPIED:
                        self.pool.release(item.group, item.entry)
                    item.state = LiveCapture.DONE
                    item.cond.notify_all()
            elif isinstance(item, tuple) and item[0] in ("flush", "close"):
                item[1].set()
                if item[0] == "close":
                    return
            item = None

    def _take(self, cap: _Capture) -> None:
        if cap.ready is not None:
            cap.ready()
        self._store(cap.group, cap.step, cap.entry[1])
        self.pool.release(cap.group, cap.entry)

    def _take_live(self, cap: LiveCapture) -> None:
        with cap.cond:
            live = cap.state == LiveCapture.PENDING
            if live:
                cap.state = LiveCapture.READING
        if not live:   # the training thread copied them (settle came first)
            self._store(cap.group, cap.step, cap.entry[1])
            self.pool.release(cap.group, cap.entry)
            return
        read = False

        def done():
            nonlocal read
            read = True
            with cap.cond:
                cap.state = LiveCapture.DONE
                cap.cond.notify_all()

        try:
            self._store(cap.group, cap.step, cap.arrays, check=cap.unchanged, done=done)
        finally:
            if not read:
                done()

    def _store(self, group: Group, step: int, views: list, check=None, done=None) -> None:
        """Summarize a group's tensors and add them to their streams' batches.

        Live tensors (``check`` and ``done`` given): ``check()`` after the last read says
        whether they changed meanwhile; ``done()`` then lets the training thread go on, before
        the summaries (when every tensor was copied into its block) and before any disk write.
        """
        batches = []
        for spec, view in zip(group.specs, views):
            batch = self._batches.get(spec.name)
            if batch is None:
                batch = self._batches[spec.name] = _StreamBatch(spec.meta)
            if spec.full:
                batch.put_row(view)
            batches.append(batch)
        if all(spec.full for spec in group.specs):   # summarize the copies, not live memory
            views = [b.next_row() for b in batches]
            stats = None
        else:
            stats, hist = _summarize_all(views)
        if check is not None and not check():
            import warnings
            warnings.warn(f"netlapse: {', '.join(s.name for s in group.specs)} changed in place "
                          f"while step {step} was being read (between the forward pass and the "
                          "next update); that step of them is not stored.", RuntimeWarning)
            return
        if done is not None:
            done()
        if stats is None:
            stats, hist = _summarize_all(views)
        for i, (spec, batch) in enumerate(zip(group.specs, batches)):
            batch.steps.append(step)
            batch.stats.append(stats[i])
            batch.hist.append(hist[i])
            if spec.full:
                self._write_if_due(spec.name, batch)

    def _store_rows(self, rows: _Rows) -> None:
        for spec, stats, hist in zip(rows.group.specs, rows.stats, rows.hist):
            batch = self._batches.get(spec.name)
            if batch is None:
                batch = self._batches[spec.name] = _StreamBatch(spec.meta)
            batch.steps.append(rows.step)
            batch.stats.append(stats)
            batch.hist.append(hist)

    def _write_if_due(self, name: str, batch: _StreamBatch) -> None:
        """After a row was added: write the block when it is full, or earlier at the last
        chunk boundary it reaches (after a commit wrote part of a chunk), so that blocks
        realign with whole chunks."""
        rows = len(batch.steps) - batch.written
        end = self.writer.length(name) + batch.written + rows
        if rows == len(batch.values) or (
                end % batch.chunk == 0 and rows > len(batch.values) - batch.chunk):
            self._write_values(name, batch, rows)

    def _write_values(self, name: str, batch: _StreamBatch, rows: int) -> None:
        """Write the first ``rows`` held tensors of ``batch`` (unpublished until the commit).

        If the training thread waited for the writer since the last block, this block is
        stored uncompressed: compressing full tensors is the writer's largest cost (about
        0.7 ms per MB), and a writer that keeps training waiting should not spend it.
        """
        start = self.writer.length(name) + batch.written
        waited = self.pool.waited_s
        fast, self._waited_seen = waited > self._waited_seen, waited
        self.writer.write_values(name, batch.meta, start, batch.values[:rows], fast)
        batch.written += rows

    def _batch_full(self) -> bool:
        return (any(len(b.steps) >= MAX_PENDING_STEPS for b in self._batches.values())
                or len(self._metric_steps) >= MAX_PENDING_STEPS)

    def _flush(self) -> None:
        start = time.monotonic()
        self._commit_pending()
        # A commit costs about the same whatever the number of steps it carries (a few small
        # zarr writes per stream), so on a busy machine commit less often rather than let
        # commits eat the writer's time: at most about 1/FLUSH_SHARE of it goes to them.
        # A flush_every under a second is a request for frequent commits: honoured exactly.
        if self.flush_every >= 1.0:
            took = time.monotonic() - start
            self._flush_gap = min(MAX_GAP_FACTOR * self.flush_every,
                                  max(self.flush_every, FLUSH_SHARE * took))

    def _commit_pending(self) -> None:
        wrote = False
        ends: dict[str, int] = {}
        self._in_write = {}
        for name, batch in self._batches.items():
            k = len(batch.steps)
            if not k:
                continue
            if batch.values is not None and k > batch.written:
                self._write_values(name, batch, k - batch.written)
            self.writer.append_stream(
                name, batch.meta, np.asarray(batch.steps, np.int64),
                np.asarray(batch.stats, np.float64).reshape(k, N_STATS),
                np.asarray(batch.hist, np.int64).reshape(k, HIST_BINS), None)
            ends[name] = batch.steps[-1]
            self._in_write[name] = list(batch.steps)
            self._beat = time.monotonic()
            batch.steps.clear(), batch.stats.clear(), batch.hist.clear()
            batch.written = 0
            wrote = True
        if self._metric_steps:
            names = dict.fromkeys(k for row in self._metric_rows for k in row)
            cols = {n: np.array([row.get(n, np.nan) for row in self._metric_rows], np.float64)
                    for n in names}
            self.writer.append_metrics(np.asarray(self._metric_steps, np.int64), cols)
            self._metric_steps, self._metric_rows = [], []
            wrote = True
        if wrote:
            if self._abort.is_set():   # close() gave up and told the user what is not written
                raise RecordingError("recording was abandoned by close()")
            self.writer.commit(waited_s=self.pool.waited_s, **self._on_commit())
            self.last_committed_step.update(ends)   # only once the commit is on disk
        self._in_write = {}
