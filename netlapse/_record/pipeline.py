"""The recording pipeline, training-thread side: reused host buffers and a bounded hand-off.

The training thread only copies tensors into a free buffer and hands it over. Tensors taken at
the same moment (every grad before an update, every weight after it) travel together as a
``Group``: one buffer (a *slab*) holds them all, one queue item carries them, and the writer
summarizes them in one call (``submit_group``; ``submit`` is a group of one). Weights can also
travel without a copy (``submit_live``, ``settle``). What the writer thread does with them is
in ``writer_loop.py``; the queue carries only the small message types defined here.

Backpressure: each group owns at most ``buffers_per_stream`` slabs. When all are in flight the
training thread waits for one (nothing is dropped) and the time it waited is counted.
See docs/architecture.md for where this sits.
"""

from __future__ import annotations

import queue
import threading
import time
import warnings
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .._stats import HIST_BINS, N_STATS
from ..errors import RecordingError

__all__ = ["Pipeline", "BufferPool", "Group", "StreamSpec", "LiveCapture",
           "Capture", "Rows", "Metrics", "Flush", "Close", "Allocator"]

SLAB_ALIGN = 64   # bytes: each tensor of a slab starts on a cache line

Allocator = Callable[[tuple, np.dtype], np.ndarray]   # (shape, dtype) -> a host buffer


def _numpy_alloc(shape: tuple, dtype: np.dtype) -> np.ndarray:
    return np.empty(shape, dtype)


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

    def __init__(self, per_stream: int, alloc: Allocator | None = None):
        self.per_stream = per_stream
        self.alloc: Allocator = alloc or _numpy_alloc
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


# ---------------------------------------------------------------------- queue messages
@dataclass(frozen=True, slots=True)
class Capture:
    """A group's tensors copied into a pooled slab at ``step``."""

    group: Group
    step: int
    entry: tuple                               # (slab, views) from the pool
    ready: Callable[[], None] | None = None    # wait for an asynchronous copy before reading

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.group.specs]


@dataclass(frozen=True, slots=True)
class Rows:
    """Stats and histogram rows computed elsewhere (e.g. reduced across ranks) for a group's
    streams, in ``_stats``' layout: stored as they are, nothing summarized again."""

    group: Group
    step: int
    stats: np.ndarray   # (k, N_STATS) float64
    hist: np.ndarray    # (k, HIST_BINS) int64

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.group.specs]


@dataclass(frozen=True, slots=True)
class Metrics:
    """Scalars logged at ``step``, after the pipeline had put ``after`` messages on its queue
    (the writer takes them once it has taken those: a commit is a consistent cut)."""

    step: int
    scalars: dict
    after: int = 0


@dataclass(frozen=True, slots=True)
class Flush:
    """Commit everything before this message, then set ``done`` (with ``commit=False``: set
    ``done`` once the writer has taken everything before it, committing on its usual schedule)."""

    done: threading.Event
    commit: bool = True


@dataclass(frozen=True, slots=True)
class Close:
    """Commit everything, set ``done`` and stop the writer."""

    done: threading.Event


class LiveCapture:
    """Tensors handed to the writer without a copy: it reads them where they are.

    The training thread must call ``Pipeline.settle(cap)`` before anything may change them
    (for weights: before the next optimizer update). ``settle`` waits while the writer reads
    them, or, if the writer has not started, copies them into a pooled slab with ``fill`` and
    the writer reads the copy; either way the writer never reads memory that is changing.
    ``unchanged()`` tells whether they were modified in place since the hand-over (e.g. a
    tensor version counter); a step read while it changed is not stored, and a warning says so.

    Unlike the other messages it carries state shared by both threads (``state``, guarded by
    ``cond``). ``hook``, when set (tests do, to order the two threads without sleeping), is
    called as ``hook(cap, event)`` with event ``"taken"`` (the writer took it off the queue),
    ``"reading"`` (the writer starts reading it in place) or ``"waiting"`` (``settle`` found
    the writer reading and is about to wait).
    """

    PENDING, READING, DONE, COPIED, LOST = range(5)   # LOST: changed before it was read
    hook: Callable[["LiveCapture", str], None] | None = None

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


# ---------------------------------------------------------------------- the hand-off
class _Queue(queue.Queue):
    """The queue to the writer, with ``put_quiet``: enqueue without waking a waiting writer."""

    def put_quiet(self, item) -> None:
        """Add ``item`` at the end without notifying: a writer asleep in ``get`` takes it when
        the next ``put`` wakes it, or when its ``get`` times out (``flush_every``). Waking a
        thread costs the caller a system call, about 30 us of CPU on this project's VMs."""
        with self.mutex:
            self._put(item)
            self.unfinished_tasks += 1


class Pipeline:
    """The training thread's end of the pipeline: ``submit``/``log``/``settle``, ``flush``,
    ``close``. Owns the writer thread (a ``WriterLoop``) and the queue between them."""

    def __init__(self, writer_factory: Callable[[], object], *, flush_every: float = 1.0,
                 buffers_per_stream: int = 4, alloc: Allocator | None = None,
                 on_commit: Callable[[], dict] | None = None):
        from .writer_loop import WriterLoop   # it imports this module's message types

        self.pool = BufferPool(buffers_per_stream, alloc)
        self.flush_every = flush_every
        self._queue = _Queue()
        # logged metrics wait here, not on the queue (a put wakes the writer; a few scalars
        # need not): the writer takes them before its next message or within flush_every,
        # so always before a flush or close commits (docs/performance.md, "Metrics")
        self._metrics: deque = deque()
        self._sent = 0   # messages put on the queue so far (Metrics.after)
        self._closed = False
        self._singles: dict[tuple, Group] = {}   # submit(): one group per stream layout
        self.stall_timeout = 300.0         # a writer with no progress this long is reported as failed
        self._loop = WriterLoop(self._queue, self.pool, writer_factory, metrics=self._metrics,
                                flush_every=flush_every,
                                on_commit=on_commit or (lambda: {}))
        self._thread = threading.Thread(target=self._loop.run, name="netlapse-writer", daemon=True)
        self._thread.start()
        self._loop.ready.wait()
        self.raise_if_failed()

    @property
    def observers(self) -> list:
        """Callables the writer thread runs after each commit (live alerts; writer_loop.py)."""
        return self._loop.observers

    @property
    def last_committed_step(self) -> dict[str, int]:
        """Per stream (and ``"metrics"``), the last step on disk (published by a commit)."""
        return self._loop.last_committed_step

    def raise_if_failed(self) -> None:
        err = self._loop.error
        if err is not None:
            raise RecordingError(f"netlapse's background writer failed: {err!r}. "
                                 "Steps committed before the failure are intact on disk.") from err

    def _check_open(self) -> None:
        self.raise_if_failed()
        if self._closed:
            raise RecordingError("this run is closed; open a new Run (or Run(..., resume=True)).")

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
        self._check_open()
        entry = self.pool.acquire(group, self._check_alive)
        ready = fill(entry[1])
        self._put(Capture(group, step, entry, ready))

    def submit_live(self, group: Group, step: int, arrays: list, fill: Callable[[list], object],
                    unchanged: Callable[[], bool], wake: bool = True) -> LiveCapture:
        """Hand over ``arrays`` (views of the live tensors) without copying; see LiveCapture.
        ``wake=False``: the caller knows another message follows soon (it wakes the writer for
        both); queue order, and so ``Metrics.after``, are as for any message."""
        self._check_open()
        cap = LiveCapture(group, step, arrays, fill, unchanged)
        self._put(cap, wake)
        return cap

    def settle(self, cap: LiveCapture) -> None:
        """Return once the writer no longer needs ``cap``'s live tensors (copy them if it has
        not started on them; wait if it is reading them)."""
        with cap.cond:
            if cap.state == LiveCapture.PENDING and not cap.unchanged():
                cap.state = LiveCapture.LOST   # the writer skips it
                cap.cond.notify_all()
                warnings.warn(f"netlapse: {', '.join(cap.names)} changed in place before step "
                              f"{cap.step} of them was read; that step of them is not stored.",
                              RuntimeWarning, stacklevel=2)
                return
            if cap.state == LiveCapture.PENDING:
                entry = self.pool.acquire(cap.group, self._check_alive)
                cap.fill(entry[1])
                cap.entry, cap.state = entry, LiveCapture.COPIED
                cap.cond.notify_all()
                return
            if cap.state == LiveCapture.READING and cap.hook is not None:
                cap.hook(cap, "waiting")
            start = time.perf_counter()
            while cap.state == LiveCapture.READING:
                cap.cond.wait(0.5)
                self._check_alive()
            self.pool.waited_s += time.perf_counter() - start

    def submit_rows(self, group: Group, step: int, stats: np.ndarray, hist: np.ndarray) -> None:
        """Hand over precomputed stats rows ``(k, N_STATS)`` and histograms ``(k, HIST_BINS)``
        of a group's ``k`` streams (none of them full) at ``step``."""
        self._check_open()
        stats = np.asarray(stats, np.float64).reshape(len(group.specs), N_STATS)
        hist = np.asarray(hist, np.int64).reshape(len(group.specs), HIST_BINS)
        self._put(Rows(group, step, stats, hist))

    def _check_alive(self) -> None:
        """While the training thread waits for a buffer: surface a failed or stalled writer."""
        self.raise_if_failed()
        stalled = time.monotonic() - self._loop.beat
        if stalled > self.stall_timeout and self._thread.is_alive():
            self._loop.abort.set()
            raise RecordingError(
                f"netlapse's background writer made no progress for {stalled:.0f} s (is the disk "
                f"hanging?). {self.pending_summary()}")

    def _put(self, item, wake: bool = True) -> None:
        self._sent += 1
        if wake:
            self._queue.put(item)
        else:
            self._queue.put_quiet(item)

    def log(self, step: int, scalars: dict[str, float]) -> None:
        self.raise_if_failed()
        self._metrics.append(Metrics(step, scalars, self._sent))

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything submitted so far is committed to disk."""
        done = threading.Event()
        self._loop.beat = time.monotonic()   # an idle writer is not a stalled one: time from now
        self._put(Flush(done))
        self._wait(done, timeout)
        self.raise_if_failed()

    def drain(self, timeout: float | None = None) -> None:
        """Block until the writer has taken (summarized and batched) everything submitted so
        far, without a commit of its own (benchmarks/_paired.py: the writer's work is charged
        to the steps that made it, at the commit rate a run has anyway)."""
        done = threading.Event()
        self._loop.beat = time.monotonic()
        self._put(Flush(done, commit=False))
        self._wait(done, timeout)
        self.raise_if_failed()

    def close(self, timeout: float = 60.0) -> None:
        """Flush and stop the writer. ``timeout``: seconds without progress before giving up."""
        if self._closed:
            return
        self._closed = True
        done = threading.Event()
        self._loop.beat = time.monotonic()
        self._put(Close(done))
        self._wait(done, timeout)
        self._thread.join(timeout=1.0)
        self.raise_if_failed()

    def _wait(self, done: threading.Event, timeout: float | None) -> None:
        """Wait for ``done`` while the writer makes progress; give up after ``timeout`` s without."""
        while not done.wait(0.05 if timeout is None else min(0.05, timeout)):
            if self._loop.error is not None and not self._thread.is_alive():
                return   # the writer died; raise_if_failed reports why
            if timeout is not None and time.monotonic() - self._loop.beat > timeout:
                summary = self.pending_summary()   # before abort: what is queued or batched now
                self._loop.abort.set()
                raise RecordingError(
                    f"netlapse's writer made no progress for {timeout:.0f} s (is the disk hanging "
                    f"or very slow?); gave up waiting. {summary}")

    def writer_alive(self) -> bool:
        return self._thread.is_alive()

    def pending_summary(self) -> str:
        """Which steps of which streams are queued or batched but not committed (for messages)."""
        with self._queue.mutex:
            items = list(self._queue.queue)
        items += list(self._metrics)
        pending = self._loop.pending_steps()
        for item in items:
            if isinstance(item, (Capture, LiveCapture, Rows)):
                for name in item.names:
                    pending.setdefault(name, []).append(item.step)
            elif isinstance(item, Metrics):
                pending.setdefault("metrics", []).append(item.step)
        if not pending:
            return "Nothing was left unwritten; steps committed before are intact on disk."
        parts = [f"{n} steps {min(s)}..{max(s)} ({len(s)})" for n, s in sorted(pending.items())]
        more = f" and {len(parts) - 6} more streams" if len(parts) > 6 else ""
        return ("Not written: " + "; ".join(parts[:6]) + more +
                ". Steps committed before are intact on disk.")
