"""The recording pipeline, writer-thread side: summaries, batches, block writes and commits.

``WriterLoop.run`` is the body of the one background writer thread. It takes the messages of
``pipeline.py`` off the queue, computes stats and histograms, gathers steps into per-stream
batches, and commits them every ``flush_every`` seconds (when that is 1 s or more, up to 5x
less often when commits are slow, so that they take at most about 5 % of the writer's time),
when a stream has gathered many steps, and on ``Flush``/``Close``. Full tensors are copied
into a reused block per stream and written as soon as the block fills; they are published by
the next commit. The store is reached only through the ``StoreSink`` protocol below
(``netlapse.store.writer.StoreWriter`` implements it). See docs/architecture.md.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass, field
from typing import Callable, Protocol

import numpy as np

from .. import _stats
from .._stats import HIST_BINS, N_STATS
from ..errors import RecordingError
from ..store.layout import values_chunk_steps
from .derive import Derived
from .pipeline import BufferPool, Capture, Close, Flush, Group, LiveCapture, Rows

__all__ = ["WriterLoop", "StoreSink"]

_DATA = (Capture, LiveCapture, Rows)   # messages that carry recorded values

BATCH_BYTES = 4 << 20      # a full stream's block of steps held before it is written
MAX_BATCH_STEPS = 256
FLUSH_SHARE = 20          # commit at most every 20x the time the last commit took,
MAX_GAP_FACTOR = 5        # but at least every 5 x flush_every
MAX_PENDING_STEPS = 4096   # commit early when a stream gathers this many steps between commits


class StoreSink(Protocol):
    """What the writer loop needs from a store. Nothing written is visible to readers until
    ``commit`` publishes it."""

    def length(self, name: str) -> int:
        """Rows of stream ``name`` written so far (published or about to be)."""

    def write_values(self, name: str, meta: dict, start: int, values: np.ndarray,
                     fast: bool = False) -> None:
        """Full tensors as rows ``start...`` of stream ``name``, ahead of their steps."""

    def append_stream(self, name: str, meta: dict, steps: np.ndarray, stats: np.ndarray,
                      hist: np.ndarray, values: np.ndarray | None, extras: dict | None = None) -> None:
        """``len(steps)`` new rows of ``name``: steps, stats (k, N_STATS), histograms (k, HIST_BINS),
        and derived per-step rows (``extras``: key -> (k, ...) array; see derive.py)."""

    def append_metrics(self, steps: np.ndarray, columns: dict[str, np.ndarray]) -> None:
        """New rows of the metrics table."""

    def commit(self, **extra) -> None:
        """Publish everything written so far, atomically; ``extra`` goes into the commit record."""


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
    extra: dict = field(default_factory=dict)   # derived per-step rows (see derive.py)
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


class WriterLoop:
    """The writer thread's state and body (``run``). The training thread's ``Pipeline`` reads
    ``error``, ``beat`` and ``last_committed_step`` and sets ``abort``; nothing else is shared."""

    def __init__(self, q: queue.Queue, pool: BufferPool, writer_factory: Callable[[], StoreSink],
                 *, metrics: deque, flush_every: float, on_commit: Callable[[], dict]):
        self._queue = q
        self._logged = metrics   # Metrics the training thread appended (no wake-up; pipeline.py)
        self._got = 0            # messages taken off the queue so far (Metrics.after)
        self.pool = pool
        self.flush_every = flush_every
        self._flush_gap = flush_every   # grows when commits are slow; see _flush
        self._writer_factory = writer_factory
        self._on_commit = on_commit
        self.writer: StoreSink | None = None
        self.error: BaseException | None = None
        self.failed = threading.Event()   # set with ``error``: the writer stopped writing
        self.abort = threading.Event()   # set when close() gives up: write and commit nothing more
        self.ready = threading.Event()   # set once the store writer exists (or failed to)
        self.beat = time.monotonic()      # the writer's last sign of progress
        self.last_committed_step: dict[str, int] = {}   # per stream, and "metrics"
        self._batches: dict[str, _StreamBatch] = {}
        self._waited_seen = 0.0                  # pool.waited_s at the last block written
        self._metric_steps: list[int] = []
        self._metric_rows: list[dict] = []
        self._in_write: dict[str, list] = {}   # steps appended by the current flush, not committed
        self._staged_rows: dict[str, int] = {}   # rows a commit in progress has yet to append
        self._served_s = 0.0   # time the commit in progress spent taking messages (_serve_queue)
        self._derived = Derived()                # unit activity and updates (derive.py)
        # callables run on this thread after each commit with what it published:
        # ([(name, meta, steps, stats, extras)], (metric steps, {name: values}) or None)
        self.observers: list[Callable] = []

    def pending_steps(self) -> dict[str, list[int]]:
        """Steps taken off the queue but not committed, per stream (for messages)."""
        pending: dict[str, list[int]] = {n: list(s) for n, s in list(self._in_write.items())}
        for name, batch in list(self._batches.items()):
            if batch.steps:
                pending.setdefault(name, []).extend(batch.steps)
        if self._metric_steps:
            pending.setdefault("metrics", []).extend(self._metric_steps)
        return pending

    # ------------------------------------------------------------------ the loop
    def run(self) -> None:
        try:
            self.writer = self._writer_factory()
        except BaseException as exc:  # noqa: BLE001 - handed to the training thread
            self._fail(exc)
            self.ready.set()
            return
        self.ready.set()
        last_flush = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=self.flush_every)
            except queue.Empty:
                item = None
            else:
                self._got += 1
            self.beat = time.monotonic()
            self._take_metrics()   # before the item: a Flush or Close commits them
            if self.abort.is_set():
                self._fail(self.error or RecordingError("recording was abandoned by close()"))
                self._drain_after_error(item)
                return
            try:
                if isinstance(item, _DATA):
                    self._take_item(item)
                elif isinstance(item, Flush) and not item.commit:
                    item.done.set()   # a drain: everything before it is taken
                elif isinstance(item, (Flush, Close)):
                    self._flush()
                    last_flush = time.monotonic()
                    item.done.set()
                    if isinstance(item, Close):
                        return
                    continue
                if self._batch_full() or time.monotonic() - last_flush >= self._flush_gap:
                    self._flush()
                    last_flush = time.monotonic()
            except BaseException as exc:  # noqa: BLE001 - handed to the training thread
                self._fail(exc)
                if isinstance(item, (Flush, Close)):
                    item.done.set()          # the flush or close that failed: wake its waiter
                    if isinstance(item, Close):
                        return
                self._drain_after_error()
                return

    def _take_item(self, item) -> None:
        """Summarize and batch one data message (a capture, a live capture, or rows)."""
        if isinstance(item, Capture):
            self._take(item)
        elif isinstance(item, LiveCapture):
            self._take_live(item)
        else:
            self._store_rows(item)

    def _serve_queue(self) -> None:
        """Between two streams of a commit: take the data messages queued meanwhile (at most
        as many as are waiting now), into the batches of the next commit. A commit of many
        streams takes tens of milliseconds; weights handed over in place during it would
        otherwise be copied by the training thread at its next update, and the pool's slabs run
        out. Stops at a flush, close or drain: those wait for this commit to end."""
        start = time.monotonic()
        try:
            for _ in range(self._queue.qsize()):
                with self._queue.mutex:
                    head = self._queue.queue[0] if self._queue.queue else None
                if not isinstance(head, _DATA):
                    return
                item = self._queue.get_nowait()   # only this thread takes: the head is unchanged
                self._got += 1
                self._take_metrics()
                self._take_item(item)
        finally:
            self._served_s += time.monotonic() - start

    def _take_metrics(self) -> None:
        """Batch the metrics logged before the last message taken, not those logged after a
        capture still queued: a commit never holds a step's metrics without that step's
        captures logged before them (the last step saved is the same for both)."""
        while self._logged and self._logged[0].after <= self._got:
            m = self._logged.popleft()
            self._metric_steps.append(m.step)
            self._metric_rows.append(m.scalars)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        self.failed.set()

    def _drain_after_error(self, item=None) -> None:
        """After a failure: release buffers and wake waiters so the training thread never hangs."""
        while True:
            if item is None:
                item = self._queue.get()
            if isinstance(item, Capture):
                self.pool.release(item.group, item.entry)
            elif isinstance(item, LiveCapture):
                with item.cond:
                    if item.state == LiveCapture.COPIED:
                        self.pool.release(item.group, item.entry)
                    item.state = LiveCapture.DONE
                    item.cond.notify_all()
            elif isinstance(item, (Flush, Close)):
                item.done.set()
                if isinstance(item, Close):
                    return
            item = None

    # ------------------------------------------------------------------ one capture
    def _take(self, cap: Capture) -> None:
        if cap.ready is not None:
            cap.ready()
        self._store(cap.group, cap.step, cap.entry[1])
        self.pool.release(cap.group, cap.entry)

    def _take_live(self, cap: LiveCapture) -> None:
        if cap.hook is not None:
            cap.hook(cap, "taken")
        with cap.cond:
            live = cap.state == LiveCapture.PENDING
            if live:
                cap.state = LiveCapture.READING
        if cap.state == LiveCapture.LOST:   # changed before it was read (settle warned)
            return
        if not live:   # the training thread copied them (settle came first)
            self._store(cap.group, cap.step, cap.entry[1])
            self.pool.release(cap.group, cap.entry)
            return
        if cap.hook is not None:
            cap.hook(cap, "reading")
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
        else:   # before done(): they may be live views
            stats, hist, derived = self._derived.summarize(group, views, step)
        if check is not None and not check():
            self._derived.forget(group.specs)
            warnings.warn(f"netlapse: {', '.join(s.name for s in group.specs)} changed in place "
                          f"while step {step} was being read (between the forward pass and the "
                          "next update); that step of them is not stored.", RuntimeWarning)
            return
        if done is not None:
            done()
        if stats is None:
            stats, hist, derived = self._derived.summarize(group, views, step)
        for i, (spec, batch) in enumerate(zip(group.specs, batches)):
            batch.steps.append(step)
            batch.stats.append(stats[i])
            batch.hist.append(hist[i])
            if derived is not None and derived.units[i] is not None:
                for key, row in derived.units[i].items():
                    batch.extra.setdefault(key, []).append(row)
            if spec.full:
                self._write_if_due(spec.name, batch)
        if derived is not None:
            for name, meta, st, hi in derived.updates:
                batch = self._batches.get(name)
                if batch is None:
                    batch = self._batches[name] = _StreamBatch(meta)
                batch.steps.append(step)
                batch.stats.append(st)
                batch.hist.append(hi)

    def _store_rows(self, rows: Rows) -> None:
        for spec, stats, hist in zip(rows.group.specs, rows.stats, rows.hist):
            batch = self._batches.get(spec.name)
            if batch is None:
                batch = self._batches[spec.name] = _StreamBatch(spec.meta)
            batch.steps.append(rows.step)
            batch.stats.append(stats)
            batch.hist.append(hist)

    # ------------------------------------------------------------------ writing, committing
    def _write_if_due(self, name: str, batch: _StreamBatch) -> None:
        """After a row was added: write the block when it is full, or earlier at the last
        chunk boundary it reaches (after a commit wrote part of a chunk), so that blocks
        realign with whole chunks."""
        rows = len(batch.steps) - batch.written
        end = self._length(name) + batch.written + rows
        if rows == len(batch.values) or (
                end % batch.chunk == 0 and rows > len(batch.values) - batch.chunk):
            self._write_values(name, batch, rows)

    def _write_values(self, name: str, batch: _StreamBatch, rows: int) -> None:
        """Write the first ``rows`` held tensors of ``batch`` (unpublished until the commit).

        If the training thread waited for the writer since the last block, this block is
        stored uncompressed: compressing full tensors is the writer's largest cost (about
        0.7 ms per MB), and a writer that keeps training waiting should not spend it.
        """
        start = self._length(name) + batch.written
        waited = self.pool.waited_s
        fast, self._waited_seen = waited > self._waited_seen, waited
        self.writer.write_values(name, batch.meta, start, batch.values[:rows], fast)
        batch.written += rows

    def _length(self, name: str) -> int:
        """Rows of ``name`` in the store, counting those a commit in progress has staged but
        not yet appended (``_commit_pending``): where a new block of full tensors starts."""
        return self.writer.length(name) + self._staged_rows.get(name, 0)

    def _batch_full(self) -> bool:
        return (any(len(b.steps) >= MAX_PENDING_STEPS for b in self._batches.values())
                or len(self._metric_steps) >= MAX_PENDING_STEPS)

    def _flush(self) -> None:
        start = time.monotonic()
        self._served_s = 0.0
        self._commit_pending()
        # A commit costs about the same whatever the number of steps it carries (a few small
        # zarr writes per stream), so on a busy machine commit less often rather than let
        # commits eat the writer's time: at most about 1/FLUSH_SHARE of it goes to them.
        # A flush_every under a second is a request for frequent commits: honoured exactly.
        if self.flush_every >= 1.0:
            took = time.monotonic() - start - self._served_s   # the commit's own time
            self._flush_gap = min(MAX_GAP_FACTOR * self.flush_every,
                                  max(self.flush_every, FLUSH_SHARE * took))

    def _commit_pending(self) -> None:
        """Publish what is batched now: a cut in recording order. The batches and metrics are
        staged first (full tensors not yet written are written then) and emptied; data
        messages that arrive while the staged rows are appended are taken between two streams
        (``_serve_queue``) and go to the next commit (a block of full tensors filled meanwhile
        is written after the staged rows: ``_length``)."""
        self._in_write = {}
        staged = []
        for name, batch in self._batches.items():
            k = len(batch.steps)
            if not k:
                continue
            if batch.values is not None and k > batch.written:
                self._write_values(name, batch, k - batch.written)
            staged.append((name, batch.meta, batch.steps, batch.stats, batch.hist, batch.extra))
            self._in_write[name] = list(batch.steps)
            self._staged_rows[name] = k   # full tensors taken meanwhile are written after them
            batch.steps, batch.stats, batch.hist, batch.extra = [], [], [], {}
            batch.written = 0
        metric_steps, metric_rows = self._metric_steps, self._metric_rows
        self._metric_steps, self._metric_rows = [], []
        ends: dict[str, int] = {}
        published, metrics = [], None
        if metric_steps:   # the metrics' rows are in the commit as soon as it is staged
            self._in_write["metrics"] = list(metric_steps)
        for name, meta, steps, stats, hist, extra in staged:
            k = len(steps)
            extras = {key: np.stack(rows) for key, rows in extra.items() if len(rows) == k}
            steps_a = np.asarray(steps, np.int64)
            stats_a = np.asarray(stats, np.float64).reshape(k, N_STATS)
            self.writer.append_stream(
                name, meta, steps_a, stats_a, np.asarray(hist, np.int64).reshape(k, HIST_BINS),
                None, **({"extras": extras} if extras else {}))
            if self.observers:
                published.append((name, meta, steps_a, stats_a, extras))
            del self._staged_rows[name]
            ends[name] = steps[-1]
            self.beat = time.monotonic()
            self._serve_queue()
        if metric_steps:
            names = dict.fromkeys(k for row in metric_rows for k in row)
            cols = {n: np.array([row.get(n, np.nan) for row in metric_rows], np.float64)
                    for n in names}
            self.writer.append_metrics(np.asarray(metric_steps, np.int64), cols)
            metrics = (np.asarray(metric_steps, np.int64), cols)
            ends["metrics"] = metric_steps[-1]   # as Reader.last_step counts them
        if ends:
            if self.abort.is_set():   # close() gave up and told the user what is not written
                raise RecordingError("recording was abandoned by close()")
            self.writer.commit(waited_s=self.pool.waited_s, **self._on_commit())
            self.last_committed_step.update(ends)   # only once the commit is on disk
            self._notify(published, metrics)
        self._in_write = {}

    def _notify(self, published: list, metrics) -> None:
        """Hand what was just committed to the observers (live alerts). An observer that fails
        is dropped with a warning; recording goes on."""
        for obs in list(self.observers):
            try:
                obs(published, metrics)
            except Exception as exc:  # noqa: BLE001 - an observer never stops the writer
                self.observers.remove(obs)
                warnings.warn(f"netlapse: {obs!r} failed and was turned off: {exc!r}",
                              RuntimeWarning)
