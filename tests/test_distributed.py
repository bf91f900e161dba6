"""Distributed training: 2 processes on gloo (CPU), each rank in its own empty working folder.

The ranks run tests/dist_worker.py; the one-process reference runs here. Each launch is
bounded by a timeout; nothing waits on time except the process group's own timeout, which is
what the hang test is about.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not torch.distributed.is_available()
                                or not torch.distributed.is_gloo_available(),
                                reason="needs torch.distributed with gloo")

import dist_worker  # noqa: E402
import netlapse as nl  # noqa: E402
from netlapse._stats import summarize  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "dist_worker.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Launch:
    """Two ranks of ``dist_worker.py SCENARIO``; rank r runs in ``tmp/rank{r}`` with its own
    TMPDIR ``tmp/tmp{r}``; ``tmp/out`` receives what rank 0 saves for the test."""

    def __init__(self, tmp: Path, scenario: str, pg_timeout: float = 60, hold_rank1=False):
        self.tmp = tmp
        self.out = tmp / "out"
        self.out.mkdir()
        port = _free_port()
        self.procs = []
        for rank in range(2):
            cwd, tmpdir = tmp / f"rank{rank}", tmp / f"tmp{rank}"
            cwd.mkdir()
            tmpdir.mkdir()
            env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "TMPDIR": str(tmpdir),
                   "PYTHONPATH": os.pathsep.join([str(ROOT), str(WORKER.parent)]),
                   "PYTHONDONTWRITEBYTECODE": "1", "NL_TEST_PG_TIMEOUT": str(pg_timeout),
                   "OMP_NUM_THREADS": "1", "NETLAPSE_PROGRESS": "0",
                   # torch's own compile cache (its import creates the folder): not rank 1's
                   "TORCHINDUCTOR_CACHE_DIR": str(tmp / f"torch-cache{rank}")}
            self.procs.append(subprocess.Popen(
                [sys.executable, str(WORKER), scenario, str(self.out)], cwd=cwd, env=env,
                stdin=subprocess.PIPE if (hold_rank1 and rank == 1) else subprocess.DEVNULL,
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        self.started = time.monotonic()

    def wait(self, rank: int, timeout: float) -> tuple[int, str, float]:
        proc = self.procs[rank]
        try:
            text, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"rank {rank} did not exit within {timeout} s")
        return proc.returncode, text, time.monotonic() - self.started

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.communicate()

    def finish(self, timeout: float = 150) -> list[str]:
        outputs = []
        for rank in range(2):
            rc, text, _ = self.wait(rank, timeout)
            assert rc == 0, f"rank {rank} failed:\n{text[-3000:]}"
            outputs.append(text)
        return outputs

    def files_of_rank1(self) -> list[str]:
        return sorted(str(p.relative_to(self.tmp)) for d in ("rank1", "tmp1")
                      for p in (self.tmp / d).rglob("*"))


def _close(got, want, what):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    scale = float(np.nanmax(np.abs(want))) if want.size else 1.0
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * scale, equal_nan=True,
                               err_msg=what)


@pytest.fixture(scope="module")
def equal_launch(tmp_path_factory):
    """One 2-rank launch: DDP, FSDP2 (full and stats) runs, the every=3 count, the pieces."""
    tmp = tmp_path_factory.mktemp("dist")
    launch = Launch(tmp, "equal,count,pieces")
    ref = tmp / "single"
    dist_worker.single(ref / "full", weights="full", grads="full", activations="stats")
    dist_worker.single(ref / "stats", weights="stats", grads="stats", activations="stats")
    launch.finish()
    return launch, ref


@pytest.mark.parametrize("name, ref_name", [("ddp", "full"), ("ddp_bucket", "full"),
                                            ("fsdp_full", "full"), ("fsdp_stats", "stats")])
def test_same_run_as_one_process(equal_launch, name, ref_name):
    launch, ref_root = equal_launch
    runs = launch.tmp / "rank0" / "runs"
    assert sorted(p.name for p in runs.iterdir()) == ["count", "ddp", "ddp_bucket", "fsdp_full",
                                                      "fsdp_stats"]
    assert launch.files_of_rank1() == [], "rank 1 wrote files"
    run, ref = nl.open_run(runs / name), nl.open_run(ref_root / ref_name)
    assert run.status == "finished"
    assert sorted(run.streams()) == sorted(ref.streams())   # names without "module." prefixes
    acts = np.load(launch.out / "acts.npz")
    for stream in ref.streams():
        got, want = run[stream], ref[stream]
        assert list(got.steps) == list(want.steps), stream
        assert got.capture == want.capture and got.shape == want.shape or stream.startswith("activations")
        if stream.startswith("activations/"):
            # the stats of the global batch: both ranks' outputs, taken by our own hooks
            layer = stream.split("/", 1)[1]
            hists = got.histograms
            for i, step in enumerate(got.steps):
                stats, hist = summarize(acts[f"{name}:{int(step)}/{layer}"])
                _close(got.stats_array[i], stats, f"{stream} step {step}")
                np.testing.assert_array_equal(hists.counts[i], hist, err_msg=f"{stream} step {step}")
            continue
        _close(got.stats_array, want.stats_array, f"{stream} stats")
        np.testing.assert_array_equal(got.histograms.counts.sum(1), want.histograms.counts.sum(1))
        if want.capture == "full":
            _close(got.history(), want.history(), f"{stream} values")
    _close(run.metrics["loss"], ref.metrics["loss"], "loss logged with reduce='mean'")
    assert list(run.metrics["step"]) == list(ref.metrics["step"])


def test_collectives_only_at_captured_steps(equal_launch):
    launch, _ = equal_launch
    ranks = json.loads((launch.out / "calls.json").read_text())
    calls = [r["calls"] for r in ranks]
    assert [r["resumed"] for r in ranks] == [7, 7]   # Run(resume=True): rank 0's last step
    assert calls[0] == calls[1], "the ranks made different collectives"
    # (name, run.step when called): the activations of steps 3 and 6 are reduced right after
    # those updates (run.step is 3, then 6), with the rest of the step: one all-gather and one
    # all-reduce (started, not waited for)
    assert calls[0] == [["all_gather", 3], ["all_reduce", 3], ["all_gather", 6], ["all_reduce", 6]]
    run = nl.open_run(launch.tmp / "rank0" / "runs" / "count")
    assert list(run["activations/fc1"].steps) == [3, 6]
    assert list(run["grads/fc1.weight"].steps) == [3, 6]


def test_reduced_stats_equal_whole_tensor(equal_launch):
    launch, _ = equal_launch
    saved = np.load(launch.out / "pieces.npz")
    whole = [t.numpy() for t, _ in dist_worker.pieces()] + [np.ones(3, np.float32)]
    for i, arr in enumerate(whole):
        stats, hist = summarize(arr)
        np.testing.assert_allclose(saved["stats"][i], stats, rtol=1e-12, atol=1e-12,
                                   equal_nan=True, err_msg=f"piece {i}")
        np.testing.assert_array_equal(saved["hist"][i], hist, err_msg=f"piece {i}")
    assert saved["present"].all()


def _committed(path):
    run = nl.open_run(path)
    return {s: [int(x) for x in run[s].steps] for s in run.streams()}


def test_dead_rank(tmp_path):
    launch = Launch(tmp_path, "fail", pg_timeout=30)
    rc1, text1, _ = launch.wait(1, 120)
    assert rc1 != 0 and "fails on purpose at step 3" in text1
    rc0, text0, _ = launch.wait(0, 60)
    assert rc0 != 0
    assert "CollectiveError" in text0 and "activation stats at step 3" in text0
    steps = _committed(tmp_path / "rank0" / "runs" / "fail")
    assert steps["activations/fc1"] == [1, 2]
    # rank 0 made update 3 (its weights need no collective here); the reduction after it failed
    assert steps["weights/fc1.weight"] == [0, 1, 2, 3]
    assert launch.files_of_rank1() == []


def test_hung_rank_times_out(tmp_path):
    """Rank 1 stays alive but stops taking part: rank 0 gives up after the group's timeout."""
    launch = Launch(tmp_path, "hang", pg_timeout=4, hold_rank1=True)
    try:
        rc0, text0, _ = launch.wait(0, 120)
    finally:
        launch.wait(1, 60)   # communicate() closes rank 1's stdin: it lets go
    assert rc0 != 0
    assert "CollectiveError" in text0 and "timeout (4 s" in text0, text0[-2000:]
    steps = _committed(tmp_path / "rank0" / "runs" / "hang")
    assert steps["activations/fc1"] == [1, 2]


def test_log_reduce_in_one_process(tmp_path):
    with nl.Run(tmp_path / "r") as run:
        run.log(loss=1.5, reduce="mean")
        with pytest.raises(ValueError, match="reduce='median'"):
            run.log(loss=1.0, reduce="median")
    assert list(nl.open_run(tmp_path / "r").metrics["loss"]) == [1.5]


@pytest.mark.slow
def test_example_under_torchrun(tmp_path):
    """examples/ddp_torchrun.py with torchrun: one run, the loss falls, rank 0's folder only."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(_free_port()), str(ROOT / "examples" / "ddp_torchrun.py"),
                          "--out", "runs/ddp", "--epochs", "2"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["runs"]
    run = nl.open_run(tmp_path / "runs" / "ddp")
    loss = run.metrics["loss"].to_numpy()
    assert len(loss) == 64 and loss[-8:].mean() < loss[:8].mean() / 2
    assert list(run["activations/0"].steps) == list(range(4, 65, 4))
    assert run.config["world_size"] == 2


def _trainer_run(tmp_path, which, prefix=""):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1", "TORCHINDUCTOR_CACHE_DIR": str(tmp_path / "torch-cache"),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    out = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_port", str(_free_port()), str(WORKER.parent / "dist_trainers.py"),
                          which, str(tmp_path)], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=400)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["run"]
    run = nl.open_run(tmp_path / "runs" / "run")
    expect = np.load(tmp_path / "expect.npz")
    fc1 = run[f"activations/{prefix}fc1"]
    assert list(fc1.steps) == [1, 2, 3, 4]
    for i, step in enumerate(fc1.steps):   # the global batch: both ranks' outputs
        stats, hist = summarize(expect[f"fc1:{int(step)}"])
        _close(fc1.stats_array[i], stats, f"fc1 step {step}")
        np.testing.assert_array_equal(fc1.histograms.counts[i], hist)
    for name in ("fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"):
        weights = run[f"weights/{prefix}{name}"]
        assert list(weights.steps) == [0, 1, 2, 3, 4]
        _close(weights.stats_array[-1], summarize(expect[f"param:{name}"])[0], name)
    return run


@pytest.mark.slow
def test_lightning_ddp_one_store(tmp_path):
    pytest.importorskip("lightning")
    _trainer_run(tmp_path, "lightning", prefix="net.")   # the LightningModule's self.net


@pytest.mark.slow
def test_hf_trainer_torchrun_one_store(tmp_path):
    pytest.importorskip("transformers")
    _trainer_run(tmp_path, "hf")
