"""The recording pipeline: reused host buffers, a bounded hand-off, and one writer thread.

The training thread only copies a tensor into a free buffer of that stream and hands it over
(``Pipeline.submit``). The writer thread computes stats and histograms (``summarize``, into
reused scratch arrays), gathers steps into per-stream batches, and commits them every
``flush_every`` seconds (when that is 1 s or more, up to 5x less often when commits are slow,
so that they take at most about 5 % of the writer's time), when a stream has gathered many steps, and on ``close()``. Full tensors
are copied into a reused block per stream and written as soon as the block fills; they are
published by the next commit.

Backpressure: each stream owns at most ``buffers_per_stream`` buffers. When all are in flight the
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

from ._stats import HIST_BINS, N_STATS, summarize
from .errors import RecordingError
from .store.layout import values_chunk_steps

__all__ = ["Pipeline", "BufferPool"]

BATCH_BYTES = 4 << 20      # a full stream's block of steps held before it is written
MAX_BATCH_STEPS = 256
FLUSH_SHARE = 20          # commit at most every 20x the time the last commit took,
MAX_GAP_FACTOR = 5        # but at least every 5 x flush_every
MAX_PENDING_STEPS = 4096   # commit early when a stream gathers this many steps between commits


class BufferPool:
    """Per-stream free lists of host arrays, so a step's copy reuses memory instead of allocating.

    The fast path (a free buffer exists) takes no lock: ``deque.pop``/``append`` are atomic.
    Only allocating a new buffer and waiting for one go through the condition.
    """

    def __init__(self, per_stream: int, alloc: Callable[[tuple, np.dtype], np.ndarray] | None = None):
        self.per_stream = per_stream
        self.alloc = alloc or (lambda shape, dtype: np.empty(shape, dtype))
        self._free: dict[tuple, deque] = {}
        self._made: dict[tuple, int] = {}
        self._cond = threading.Condition()
        self._waiting = 0
        self.waited_s = 0.0

    def acquire(self, key: str, shape: tuple, dtype, check: Callable[[], None]) -> tuple[tuple, np.ndarray]:
        slot = (key, tuple(shape), np.dtype(dtype).str)
        free = self._free.get(slot)
        if free is None:
            free = self._free.setdefault(slot, deque())
        try:
            return slot, free.pop()
        except IndexError:
            pass
        with self._cond:
            if self._made.get(slot, 0) < self.per_stream:
                self._made[slot] = self._made.get(slot, 0) + 1
                return slot, self.alloc(tuple(shape), np.dtype(dtype))
            start = time.perf_counter()
            self._waiting += 1
            try:
                while True:
                    try:
                        return slot, free.pop()
                    except IndexError:
                        pass
                    self._cond.wait(0.5)
                    check()   # surface a writer failure instead of waiting forever
            finally:
                self._waiting -= 1
                self.waited_s += time.perf_counter() - start

    def release(self, slot: tuple, buf: np.ndarray) -> None:
        self._free[slot].append(buf)
        if self._waiting:
            with self._cond:
                self._cond.notify_all()


@dataclass
class _Capture:
    name: str
    step: int
    meta: dict
    slot: tuple
    buf: np.ndarray
    full: bool
    ready: Callable[[], None] | None = None


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
        self.raise_if_failed()
        if self._closed:
            raise RecordingError("this run is closed; open a new Run (or Run(..., resume=True)).")
        slot, buf = self.pool.acquire(name, shape, dtype, self._check_alive)
        ready = fill(buf)
        self._queue.put(_Capture(name, step, meta, slot, buf, full, ready))

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
            if isinstance(item, _Capture):
                pending.setdefault(item.name, []).append(item.step)
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
                self.pool.release(item.slot, item.buf)
            elif isinstance(item, tuple) and item[0] in ("flush", "close"):
                item[1].set()
                if item[0] == "close":
                    return
            item = None

    def _take(self, cap: _Capture) -> None:
        if cap.ready is not None:
            cap.ready()
        stats, hist = summarize(cap.buf)
        batch = self._batches.get(cap.name)
        if batch is None:
            batch = self._batches[cap.name] = _StreamBatch(cap.meta)
        if cap.full:
            if batch.values is None:
                n = batch.capacity(cap.buf.shape, cap.buf.dtype)
                batch.values = np.empty((n,) + cap.buf.shape, cap.buf.dtype)
                batch.chunk = values_chunk_steps(tuple(cap.buf.shape), cap.buf.dtype)
            row = len(batch.steps) - batch.written
            batch.values[row] = cap.buf
            # Write when the block is full, or earlier at the last chunk boundary it reaches
            # (after a commit wrote part of a chunk), so that blocks realign with whole chunks.
            end = self.writer.length(cap.name) + batch.written + row + 1
            if row + 1 == len(batch.values) or (
                    end % batch.chunk == 0 and row + 1 > len(batch.values) - batch.chunk):
                self._write_values(cap.name, batch, row + 1)
        self.pool.release(cap.slot, cap.buf)
        batch.steps.append(cap.step)
        batch.stats.append(stats)
        batch.hist.append(hist)

    def _write_values(self, name: str, batch: _StreamBatch, rows: int) -> None:
        """Write the first ``rows`` held tensors of ``batch`` (unpublished until the commit)."""
        start = self.writer.length(name) + batch.written
        self.writer.write_values(name, batch.meta, start, batch.values[:rows])
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
