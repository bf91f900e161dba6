"""Crash harness: kill a recording process with SIGKILL at random moments and check the store.

Each trial starts a child process that records into a fresh run and, BEFORE handing each tensor
or metric to netlapse, appends what it is about to record (SHA-256 of the exact bytes for full
streams, independently computed float64 stats for stats streams, the value for metrics) to its
own log file and fsyncs it. So anything committed to the store must be in the log. The parent
kills the child at a random moment, then checks:

- the run opens, and says ``not closed`` (or ``finished`` if the child got to close first);
- ``netlapse info`` prints that status and exits 0;
- every committed step of every stream and every metric row equals its log entry (data lost or
  wrong: must be 0), steps ascending and unique;
- the run resumes (``Run(path, resume=True)``): new steps append, old ones are unchanged.

Children: ``arrays`` (record_array on random shapes, with metrics) and ``torch`` (a real
training loop recorded with ``netlapse.torch.watch``: full weights, stats grads and activations).

    python benchmarks/crash.py                 # 50 trials
    python benchmarks/crash.py --trials 200 --seed 1 --keep /tmp/crashes
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve()
CHILDREN = ("arrays", "torch")


# --------------------------------------------------------------------------- the independent log
def digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def ref_stats(a: np.ndarray) -> list[float]:
    """mean, min, max, norm over finite values and the non-finite count (float64, numpy only)."""
    x = np.asarray(a, np.float64).ravel()
    fin = x[np.isfinite(x)]
    if fin.size == 0:
        return [float("nan")] * 4 + [float(x.size)]
    return [fin.mean(), fin.min(), fin.max(), float(np.sqrt(np.sum(fin * fin))), float(x.size - fin.size)]


class Log:
    """Append-only JSON lines, fsynced after every entry: written BEFORE netlapse sees the data."""

    def __init__(self, path: Path):
        self.f = open(path, "a", encoding="utf-8")

    def write(self, **entry) -> None:
        self.f.write(json.dumps(entry) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def tensor(self, stream: str, step: int, a: np.ndarray, full: bool) -> None:
        if full:
            self.write(stream=stream, step=step, sha=digest(a), shape=list(a.shape))
        else:
            self.write(stream=stream, step=step, stats=ref_stats(a))


def read_log(path: Path) -> tuple[dict, dict]:
    """``({(stream, step): entry}, {(step, metric): value})``; a torn last line is ignored."""
    tensors, metrics = {}, {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            e = json.loads(line)
        except json.JSONDecodeError:
            continue   # the child died while writing this line; netlapse never got that data
        if "metric" in e:
            metrics[(e["step"], e["metric"])] = e["value"]
        else:
            tensors[(e["stream"], e["step"])] = e
    return tensors, metrics


# --------------------------------------------------------------------------- children
def child_arrays(run_path: str, log_path: str, seed: int) -> None:
    import netlapse as nl

    rng = np.random.default_rng(seed)
    streams = [("weights/w", tuple(int(n) for n in rng.integers(8, 200, size=2)), True),
               ("activations/a", (int(rng.integers(1, 5000)),), True),
               ("grads/g", tuple(int(n) for n in rng.integers(2, 100, size=3)), False)]
    steps = int(rng.integers(30, 400))
    log = Log(Path(log_path))
    run = nl.Run(run_path, flush_every=float(rng.uniform(0.005, 0.2)))
    print("ready", flush=True)
    for k in range(steps):
        run.step = k
        for name, shape, full in streams:
            a = np.random.default_rng([seed, k, len(name)]).standard_normal(shape).astype(np.float32)
            if k % 17 == 5:
                a.flat[k % a.size] = np.nan   # bad values are data too
            log.tensor(name, k, a, full)
            run.record_array(name, a, full=full)
        loss = float(np.exp(-k / 50.0))
        log.write(step=k, metric="loss", value=loss)
        run.log(loss=loss)
    run.close()


def child_torch(run_path: str, log_path: str, seed: int) -> None:
    import torch
    from torch import nn

    import netlapse as nl
    import netlapse.torch as nlt

    torch.manual_seed(seed)
    rng = random.Random(seed)
    width = rng.choice([32, 64, 128, 256])
    model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x, y = torch.randn(256, 64), torch.randint(0, 10, (256,))
    log = Log(Path(log_path))
    run = nl.Run(run_path, flush_every=rng.uniform(0.005, 0.2))
    state = {"step": 0}

    # Our hooks are registered before watch()'s, so each runs (and fsyncs) before netlapse copies.
    def before(optimizer, args, kwargs):
        for name, p in model.named_parameters():
            log.tensor(f"grads/{name}", state["step"] + 1, p.grad.detach().numpy(), False)

    def after(optimizer, args, kwargs):
        state["step"] += 1
        for name, p in model.named_parameters():
            w = p.detach().numpy()
            log.tensor(f"weights/{name}", state["step"], w, True)
            # the writer derives updates/<param> = w_k - w_(k-1) from the weights (doctor)
            log.tensor(f"updates/{name}", state["step"], w - prev[name], False)
            prev[name] = w.copy()

    def act(name, module, inputs, output):
        if torch.is_grad_enabled():
            log.tensor(f"activations/{name}", state["step"] + 1, output.detach().numpy(), False)

    opt.register_step_pre_hook(before)
    opt.register_step_post_hook(after)
    for name, m in model.named_children():
        m.register_forward_hook(lambda mod, i, o, name=name: act(name, mod, i, o))
    prev = {}
    for name, p in model.named_parameters():
        prev[name] = p.detach().numpy().copy()
        log.tensor(f"weights/{name}", 0, prev[name], True)
    w = nlt.watch(model, run, opt, weights="full", grads="stats", activations="stats")
    print("ready", flush=True)
    for _ in range(rng.randint(30, 300)):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        log.write(step=state["step"], metric="loss", value=loss.item())
        run.log(loss=loss.item())
    w.close()
    run.close()


# --------------------------------------------------------------------------- checking
def check_run(run_path: Path, log_path: Path) -> dict:
    """Compare what the store holds with the log. Raises AssertionError on any lost/wrong data."""
    import netlapse as nl
    from netlapse.cli import main as cli

    tensors, metrics = read_log(log_path)
    r = nl.open_run(run_path)
    status = r.status
    assert status in ("not closed", "finished"), f"status {status!r}"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli(["info", str(run_path)])
    assert rc == 0 and f"status   {status}" in out.getvalue(), out.getvalue()

    committed = 0
    for name in r.streams():
        s = r[name]
        steps = s.steps
        assert np.all(np.diff(steps) > 0), f"{name}: steps not ascending: {steps}"
        hist = s.history() if s.capture == "full" else None
        st = s.stats_array
        for i, k in enumerate(steps):
            e = tensors.get((name, int(k)))
            assert e is not None, f"{name} step {k} is committed but was never logged"
            if s.capture == "full":
                assert digest(hist[i]) == e["sha"], f"{name} step {k}: bytes differ from the log"
            else:
                got = [st[i, 0], st[i, 2], st[i, 3], st[i, 4], st[i, 7]]
                np.testing.assert_allclose(got, e["stats"], rtol=1e-5, atol=1e-6, equal_nan=True,
                                           err_msg=f"{name} step {k}")
            committed += 1
    m = r.metrics
    for k, v in zip(m["step"], m["loss"] if "loss" in m else []):
        assert (int(k), "loss") in metrics, f"metric row at step {k} was never logged"
        assert v == metrics[(int(k), "loss")], f"loss at step {k}: {v} != logged"
        committed += 1
    logged = len(tensors) + len(metrics)
    if status == "finished":
        assert committed == logged, f"finished run lost {logged - committed} logged entries"
    return {"status": status, "committed": committed, "logged": logged,
            "in_flight": logged - committed}


def check_resume(run_path: Path, log_path: Path) -> int:
    """Resume the crashed run, append 3 steps to a full stream, check old and new steps."""
    import netlapse as nl

    r = nl.open_run(run_path)
    full = [n for n in r.streams() if r[n].capture == "full" and r[n].length]
    if not full:
        with nl.Run(run_path, resume=True):
            pass
        return 0
    name = full[0]
    s = r[name]
    before = s.history()
    new = {}
    with nl.Run(run_path, resume=True) as run:
        start = run.step
        for j in range(1, 4):
            a = np.full(s.shape, j, dtype=before.dtype)
            new[start + j] = a
            run.record_array(name, a, step=start + j)
    after = nl.open_run(run_path)
    assert after.status == "finished"
    s2 = after[name]
    np.testing.assert_array_equal(s2.history()[: len(before)], before)
    assert list(s2.steps[len(before):]) == sorted(new)
    for k, a in new.items():
        np.testing.assert_array_equal(s2.at(k), a)
    return len(new)


def _wait_for_a_write(run_path: Path, limit_s: float) -> bool:
    """Spin until a chunk or JSON file is being written (its temporary file exists)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        for root, _dirs, files in os.walk(run_path):
            if any(f.endswith((".partial", ".tmp")) for f in files):
                return True
    return False


def run_trial(workdir: Path, seed: int, child: str | None = None, resume: bool = True,
              max_delay: float = 2.0, aim: bool | None = None) -> dict:
    """One trial. ``aim``: after the random delay, wait until a file write is in progress and
    kill then (every third trial by default), so kills land inside writes, not only between."""
    rng = random.Random(seed)
    child = child or CHILDREN[seed % len(CHILDREN)]
    aim = (seed % 3 == 2) if aim is None else aim
    run_path, log_path = Path(workdir) / f"run{seed}", Path(workdir) / f"log{seed}.jsonl"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(HERE.parent.parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])}
    proc = subprocess.Popen([sys.executable, str(HERE), "--child", child, str(run_path),
                             str(log_path), str(seed)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready", "the child failed to start"
        delay = rng.uniform(0, max_delay)
        time.sleep(delay)
        aimed = aim and _wait_for_a_write(run_path, 2.0)
        killed = proc.poll() is None
        if killed:
            os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    torn = [p for p in run_path.rglob("*") if p.name.endswith((".partial", ".tmp"))]
    result = {"seed": seed, "child": child, "delay_s": round(delay, 3), "killed": killed,
              "aimed": aimed,
              "torn_files": len(torn), **check_run(run_path, log_path)}
    if resume:
        result["resumed_steps"] = check_resume(run_path, log_path)
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--trials", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0, help="first trial's seed")
    ap.add_argument("--keep", help="keep the runs and logs in this folder")
    ap.add_argument("--child", nargs=4, metavar=("KIND", "RUN", "LOG", "SEED"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        kind, run_path, log_path, seed = args.child
        {"arrays": child_arrays, "torch": child_torch}[kind](run_path, log_path, int(seed))
        return 0

    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="netlapse-crash-"))
    work.mkdir(parents=True, exist_ok=True)
    totals = {"trials": 0, "killed": 0, "not closed": 0, "finished": 0, "committed": 0,
              "in_flight": 0, "resumed": 0, "failures": 0, "mid_write": 0}
    t0 = time.time()
    for seed in range(args.seed, args.seed + args.trials):
        try:
            res = run_trial(work, seed)
        except AssertionError as exc:
            totals["failures"] += 1
            print(f"trial {seed}: FAILED: {exc}", flush=True)
            continue
        totals["trials"] += 1
        totals["killed"] += res["killed"]
        totals[res["status"]] += 1
        totals["committed"] += res["committed"]
        totals["in_flight"] += res["in_flight"]
        totals["resumed"] += res["resumed_steps"] > 0
        totals["mid_write"] += res["torn_files"] > 0
        print(f"trial {seed:3d} {res['child']:6s} kill at {res['delay_s']:.3f}s"
              f"{' (aimed at a write)' if res['aimed'] else ''}: {res['status']:10s} "
              f"{res['committed']:6d} committed entries exact, {res['in_flight']:4d} in flight "
              f"(logged, not yet committed), resumed +{res['resumed_steps']}"
              + (f", killed mid-write ({res['torn_files']} torn temp files)" if res["torn_files"] else ""),
              flush=True)
    print(f"\n{totals['trials'] + totals['failures']} trials in {time.time() - t0:.0f} s: "
          f"{totals['killed']} killed mid-run ({totals['not closed']} 'not closed', "
          f"{totals['finished']} had finished; {totals['mid_write']} killed in the middle of a file "
          f"write, leaving torn temporary files), {totals['committed']} committed entries checked "
          f"against the log, data lost or wrong: {totals['failures']} trials; "
          f"{totals['in_flight']} entries were in flight (logged, not committed) when killed; "
          f"{totals['resumed']} runs resumed and appended.")
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if totals["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
