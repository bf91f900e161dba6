"""Live alerts: the doctor's cheap instruments, run on the writer thread as steps commit.

``Alerts`` is a pipeline observer: after each commit it receives the rows just published,
keeps a bounded history per stream (the first ``HEAD`` rows and the last ``TAIL``; unit
activity: the last ``TAIL_UNITS``), runs the instruments of ``CHEAP`` on it, and warns once
for each new finding (a kind naming a stream it has not warned about for that kind) with a
``HealthWarning`` that names the kind, the layers, the step and ``netlapse doctor RUN``. The
training thread does nothing for it. By default only ``problem`` findings warn
(``level="warning"`` adds warnings).
"""

from __future__ import annotations

import threading
import warnings

import numpy as np

from ._data import RunData, Series

__all__ = ["Alerts", "HealthWarning", "HEAD", "TAIL", "TAIL_UNITS", "MIN_STEPS"]

HEAD, TAIL, TAIL_UNITS = 16, 2048, 256
MIN_STEPS = 10   # no alert before this many steps of a stream are committed


class HealthWarning(RuntimeWarning):
    """A live alert from the doctor: something is wrong with the training (see its message)."""


class _Hist:
    """A bounded history of one stream: its first rows and its last rows."""

    def __init__(self, meta: dict):
        self.meta = meta
        self.head_steps, self.head_stats = [], []
        self.steps: list = []
        self.stats: list = []
        self.extras: dict = {}

    def add(self, steps, stats, extras) -> None:
        for i in range(len(steps)):
            if len(self.head_steps) < HEAD:
                self.head_steps.append(int(steps[i]))
                self.head_stats.append(stats[i])
            else:
                self.steps.append(int(steps[i]))
                self.stats.append(stats[i])
        if len(self.steps) > TAIL:
            del self.steps[:-TAIL], self.stats[:-TAIL]
        for key, rows in extras.items():
            keep = self.extras.setdefault(key, [])
            keep.extend(rows)
            if len(keep) > TAIL_UNITS:
                del keep[:-TAIL_UNITS]

    def series(self, name: str) -> Series:
        steps = np.asarray(self.head_steps + self.steps, np.int64)
        stats = np.asarray(self.head_stats + self.stats, np.float64).reshape(len(steps), -1)
        units = {key: np.asarray(rows) for key, rows in self.extras.items()}
        if units:   # unit activity covers the last rows only: keep the steps that have it
            k = len(steps) - min(len(u) for u in units.values())
            steps, stats = steps[k:], stats[k:]
            units = {key: u[len(u) - len(steps):] for key, u in units.items()}
        return Series(name, self.meta, steps, stats, units.get("active"), units.get("saturated"))


class Alerts:
    """Pipeline observer that warns once per new finding (see the module docstring)."""

    def __init__(self, run_path, manifest, level: str = "problem", instruments=None):
        from . import CHEAP

        self.run_path = str(run_path)
        self.manifest = manifest            # netlapse.store.manifest.Manifest (model summary)
        self.levels = ("problem",) if level == "problem" else ("problem", "warning")
        self.instruments = tuple(instruments or CHEAP)
        self.hist: dict[str, _Hist] = {}
        self.metric_steps: dict[str, list] = {}
        self.metric_values: dict[str, list] = {}
        self.warned: dict[str, set] = {}
        self.found: list = []               # every finding warned about, in order
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<netlapse live alerts for {self.run_path}>"

    def __call__(self, published: list, metrics) -> None:
        with self._lock:
            for name, meta, steps, stats, extras in published:
                h = self.hist.get(name)
                if h is None:
                    h = self.hist[name] = _Hist(meta)
                h.add(steps, stats, extras)
            if metrics is not None:
                steps, cols = metrics
                for n, vals in cols.items():
                    if "loss" not in n.lower():
                        continue
                    keep = ~np.isnan(vals) | np.all([np.isnan(v) for v in cols.values()], axis=0)
                    self.metric_steps.setdefault(n, []).extend(steps[keep].tolist())
                    self.metric_values.setdefault(n, []).extend(vals[keep].tolist())
                    if len(self.metric_steps[n]) > TAIL:
                        del self.metric_steps[n][:-TAIL], self.metric_values[n][:-TAIL]
            self.check()

    def data(self) -> RunData:
        metas = {n: h.meta for n, h in self.hist.items()}
        metrics = {n: (np.asarray(self.metric_steps[n], np.int64),
                       np.asarray(self.metric_values[n], np.float64)) for n in self.metric_steps}
        model = self.manifest.data.get("model") if self.manifest is not None else None
        hist = self.hist
        return RunData(self.run_path, metas, lambda n: hist[n].series(n), metrics, model)

    def check(self) -> list:
        """Run the instruments on the history so far; warn about new findings; return them."""
        from . import diagnose_data

        longest = max((len(h.head_steps) + len(h.steps) for h in self.hist.values()), default=0)
        if longest < MIN_STEPS:
            return []
        report = diagnose_data(self.data(), self.instruments, run=self.run_path)
        new = []
        for f in report.findings:
            if f.severity not in self.levels:
                continue
            seen = self.warned.setdefault(f.kind, set())
            if set(f.streams) <= seen:
                continue
            seen.update(f.streams)
            new.append(f)
            self.found.append(f)
            warnings.warn(
                f"netlapse doctor: {f.kind} ({f.severity}) in {f.where()} since step "
                f"{f.first_step}: {f.advice} For the full report: netlapse doctor {self.run_path}",
                HealthWarning, stacklevel=2)
        return new
