"""Two arms of one benchmark timed in alternating blocks inside one process.

This machine's speed drifts by up to 2x within minutes (docs/performance.md), so ratios of runs
made in separate processes minutes apart move by +-0.1 or more. Here the bare arm and the
recorded arm run in the same process, block after block, in the order A B B A A B ... (each
pair flips the order, so a trend inside a pair falls on both arms alike); the ratio of each pair
of adjacent blocks is taken, and the median of these ratios reported with its quartiles.

Everything the recorder costs is charged to its blocks: ``after`` (the pipeline's ``drain``:
waits until the writer has taken everything the block recorded; it commits on its own schedule,
as in any run) runs at the end of each of the recorded arm's blocks and is timed with it, so no
writer work spills into the next bare block. Used by benchmarks/paired_overhead.py and benchmarks/distributed_overhead.py.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Callable


class Arm:
    """One arm: ``step()`` is one training step; ``after()`` runs at the end of each block;
    ``writer_clock()`` (optional) the CPU seconds the recorder's writer thread has used."""

    def __init__(self, step: Callable[[], None], after: Callable[[], None] | None = None,
                 writer_clock: Callable[[], float] | None = None):
        self.step, self.after, self.writer_clock = step, after, writer_clock
        self.blocks: list[float] = []   # seconds per block, ``after`` included
        self.step_s: list[float] = []   # each step alone
        self.thread_cpu = 0.0           # CPU seconds of the calling thread in this arm's blocks
        self.process_cpu = 0.0          # CPU seconds of the whole process in them
        self.writer_cpu = 0.0           # CPU seconds of the writer thread in them

    def run_block(self, steps: int) -> None:
        cpu0, thread0 = time.process_time(), time.thread_time()
        writer0 = self.writer_clock() if self.writer_clock is not None else 0.0
        start = time.perf_counter()
        for _ in range(steps):
            t0 = time.perf_counter()
            self.step()
            self.step_s.append(time.perf_counter() - t0)
        if self.after is not None:
            self.after()
        self.blocks.append(time.perf_counter() - start)
        self.thread_cpu += time.thread_time() - thread0
        self.process_cpu += time.process_time() - cpu0
        if self.writer_clock is not None:
            self.writer_cpu += self.writer_clock() - writer0


def thread_cpu_clock(thread) -> Callable[[], float] | None:
    """A function giving the CPU seconds ``thread`` (started) has used, where the platform
    has per-thread CPU clocks (Linux, macOS); else None."""
    try:
        clock = time.pthread_getcpuclockid(thread.ident)
        time.clock_gettime(clock)
    except (AttributeError, OSError, TypeError):
        return None
    return lambda: time.clock_gettime(clock)


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


def alternate(bare: Arm, recorded: Arm, pairs: int, block: int) -> list[float]:
    """``pairs`` pairs of blocks of ``block`` steps; returns each pair's recorded/bare ratio."""
    for j in range(pairs):
        order = (bare, recorded) if j % 2 == 0 else (recorded, bare)
        for arm in order:
            arm.run_block(block)
    return [r / b for r, b in zip(recorded.blocks, bare.blocks)]


def block_steps(step: Callable[[], None], seconds: float, least: int = 3) -> int:
    """Steps that take about ``seconds`` (timed over a few steps of ``step``), at least ``least``."""
    t0 = time.perf_counter()
    for _ in range(3):
        step()
    per = (time.perf_counter() - t0) / 3
    return max(least, round(seconds / per))


def spread(ratios: list[float]) -> tuple[float, float, float]:
    """Median and quartiles."""
    if len(ratios) < 2:
        return (ratios[0],) * 3
    q1, q2, q3 = statistics.quantiles(ratios, n=4, method="inclusive")
    return q2, q1, q3


def summary(bare: Arm, recorded: Arm, ratios: list[float]) -> dict:
    """The numbers both paired benchmarks report (times in ms)."""
    med, q1, q3 = spread(ratios)
    n_bare, n_rec = len(bare.step_s), len(recorded.step_s)
    return {
        "ratio": med, "ratio_q1": q1, "ratio_q3": q3, "pairs": len(ratios),
        "bare_step_ms": statistics.median(bare.step_s) * 1e3,
        "step_ms": statistics.median(recorded.step_s) * 1e3,
        # the median step alone, without the blocks' flushes: what an uncaptured wait hides
        "median_step_ratio": statistics.median(recorded.step_s) / statistics.median(bare.step_s),
        "train_cpu_ratio": (recorded.thread_cpu / n_rec) / (bare.thread_cpu / n_bare),
        # CPU of the other threads (the writer; torch's own workers in both arms) per step,
        # recorded arm minus bare arm: what the recorder's threads cost
        "writer_cpu_ms": ((recorded.process_cpu - recorded.thread_cpu) / n_rec
                          - (bare.process_cpu - bare.thread_cpu) / n_bare) * 1e3,
        # the writer thread's own CPU per step, and that as a share of all cores' time in a
        # bare step: when torch keeps every core busy (no core is free for the writer), the
        # recorded step can be no shorter than 1 + this share times the bare one
        "writer_thread_cpu_ms": (recorded.writer_cpu / n_rec * 1e3
                                 if recorded.writer_clock is not None else None),
        "writer_core_share": (recorded.writer_cpu / n_rec
                              / (cores() * statistics.median(bare.step_s))
                              if recorded.writer_clock is not None else None),
    }


def writer_ms(r: dict) -> float:
    """The writer's CPU per step of a ``summary``: its thread's own clock where there is one,
    else the CPU of all threads but the training one, recorded arm minus bare arm."""
    return r["writer_thread_cpu_ms"] if r.get("writer_thread_cpu_ms") is not None else r["writer_cpu_ms"]


def least_ratio(r: dict, free_core: bool) -> str:
    """``1 + writer_core_share`` of a ``summary``, as a table cell: with training keeping every
    core busy, the least the recorded step can take against the bare one; "-" where a core is
    free for the writer (it bounds nothing then) or threads have no CPU clock."""
    share = r.get("writer_core_share")
    return "-" if share is None or free_core else f"{1 + share:.2f}"
