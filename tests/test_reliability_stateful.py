"""Hypothesis drives random appends, flushes, reader opens, crash snapshots and resumes against
the store, and checks that a reader always sees exactly a prefix of what was appended that
includes everything flushed."""
import os
import shutil
from pathlib import Path

import hypothesis.extra.numpy as hnp
import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

import netlapse as nl

STREAMS = {"weights/a": ((3,), np.float32, True), "weights/b": ((2, 5), np.float64, True),
           "grads/c": ((4,), np.float32, False)}


def values(shape, dtype):
    width = 32 if dtype == np.float32 else 64
    return hnp.arrays(dtype, shape, elements=st.floats(width=width, allow_nan=True, allow_infinity=True))


def snapshot(src: Path, dst: Path) -> None:
    """Copy a run being written the way a crash freezes it: commit.json first, then run.json,
    then the data. The writer only adds rows, so every file copied later holds at least what the
    copied commit.json publishes. Files renamed away while copying (zarr's .partial) are skipped."""
    dst.mkdir(parents=True)
    for name in ("commit.json", "run.json"):
        try:
            shutil.copy2(src / name, dst / name)
        except FileNotFoundError:
            pass
    for root, _dirs, files in os.walk(src / "data"):
        out = dst / Path(root).relative_to(src)
        out.mkdir(parents=True, exist_ok=True)
        for f in files:
            try:
                shutil.copy2(Path(root) / f, out / f)
            except FileNotFoundError:
                pass


class StoreMachine(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        import tempfile

        self.tmp = Path(tempfile.mkdtemp(prefix="netlapse-stateful-"))
        self.n_runs = 0
        self.path = self._new_path()
        self.run = None
        self.step = 0
        self.appended = {name: [] for name in STREAMS}   # [(step, array)]
        self.flushed = dict.fromkeys(STREAMS, 0)
        self.metrics = []                                # [(step, value)]
        self.metrics_flushed = 0

    def _new_path(self) -> Path:
        self.n_runs += 1
        return self.tmp / f"run{self.n_runs}"

    # ------------------------------------------------------------------ rules
    @initialize(flush_every=st.sampled_from([3600.0, 0.001]))
    def start(self, flush_every):
        """3600 s: rows are written only on flush; 0.001 s: the writer commits continuously in
        the background, so snapshots and readers catch it mid-write."""
        self.flush_every = flush_every
        self.run = nl.Run(self.path, flush_every=flush_every)
    @rule(name=st.sampled_from(sorted(STREAMS)), data=st.data())
    def append(self, name, data):
        shape, dtype, full = STREAMS[name]
        a = data.draw(values(shape, dtype))
        self.step += 1
        self.run.record_array(name, a, step=self.step, full=full)
        self.appended[name].append((self.step, a.copy()))

    @rule(value=st.floats(allow_nan=False, allow_infinity=False, width=64))
    def log(self, value):
        self.step += 1
        self.run.log(step=self.step, loss=value)
        self.metrics.append((self.step, value))

    @rule()
    def flush(self):
        self.run.flush()
        self.flushed = {n: len(v) for n, v in self.appended.items()}
        self.metrics_flushed = len(self.metrics)

    @rule()
    def open_reader(self):
        self.check(nl.open_run(self.path))

    @rule()
    def crash_and_resume_from_snapshot(self):
        """Freeze the folder mid-write as a crash would, then carry on from that copy."""
        copy = self._new_path()
        snapshot(self.path, copy)
        seen = self.check(nl.open_run(copy))
        self.run.close()
        self.path = copy
        self.run = nl.Run(copy, resume=True, flush_every=self.flush_every)
        for name, n in seen.items():
            if name == "_metrics":
                self.metrics = self.metrics[:n]
                self.metrics_flushed = n
            else:
                self.appended[name] = self.appended[name][:n]
                self.flushed[name] = n

    @precondition(lambda self: self.step > 0)
    @rule()
    def close_and_resume(self):
        self.run.close()
        self.flush_all_expected()
        r = nl.open_run(self.path)
        assert r.status == "finished", r.manifest.get("error")
        self.check(r)
        self.run = nl.Run(self.path, resume=True, flush_every=self.flush_every)
        assert self.run.step == r.last_step()

    def flush_all_expected(self):
        self.flushed = {n: len(v) for n, v in self.appended.items()}
        self.metrics_flushed = len(self.metrics)

    # ------------------------------------------------------------------ checks
    def check(self, r) -> dict:
        """What ``r`` shows must be a prefix of what was appended, at least what was flushed."""
        seen = {}
        for name, (shape, dtype, full) in STREAMS.items():
            want = self.appended[name]
            if name not in r:
                assert self.flushed[name] == 0, f"{name}: flushed steps are missing"
                seen[name] = 0
                continue
            s = r[name]
            n = len(s.steps)
            assert self.flushed[name] <= n <= len(want), (name, self.flushed[name], n, len(want))
            assert list(s.steps) == [k for k, _ in want[:n]]
            st_ = s.stats_array
            for i, (k, a) in enumerate(want[:n]):
                if full:
                    np.testing.assert_array_equal(s.at(k), a)
                fin = np.asarray(a, np.float64)[np.isfinite(a)]
                assert st_[i, 7] == a.size - fin.size
                if fin.size:
                    assert st_[i, 2] == fin.min() and st_[i, 3] == fin.max()
                assert s.histograms.counts[i].sum() == fin.size
            seen[name] = n
        m = r.metrics
        n = len(m)
        assert self.metrics_flushed <= n <= len(self.metrics)
        assert list(m["step"]) == [k for k, _ in self.metrics[:n]]
        if n:
            np.testing.assert_array_equal(m["loss"].to_numpy(), [v for _, v in self.metrics[:n]])
        seen["_metrics"] = n
        return seen

    @invariant()
    def writer_healthy(self):
        assert self.run is None or self.run._failed is None

    def teardown(self):
        if self.run is None:
            return
        self.run.close()
        self.flush_all_expected()
        r = nl.open_run(self.path)
        assert r.status == "finished", r.manifest.get("error")
        self.check(r)
        shutil.rmtree(self.tmp, ignore_errors=True)


StoreMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("NETLAPSE_STATEFUL_EXAMPLES", "15")), stateful_step_count=20,
    deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
test_store_state_machine = StoreMachine.TestCase
