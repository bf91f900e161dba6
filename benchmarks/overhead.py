"""Recording overhead: the same training loop bare, with netlapse, TensorBoard and W&B.

Every variant runs in its own subprocess with ``torch.set_num_threads(1)``; repetitions are
interleaved (rep 1 of every variant, then rep 2, ...) so that load from other processes falls
on all variants alike. Prints a markdown table: median step time (min-max over repetitions of
the per-run median), ratio to the bare run of the same repetition (median, min-max), the same
ratio of mean step times (what a long training pays: waits for the writer included), CPU time
per step of the training thread and of all other
threads (netlapse's writer, TensorBoard's and W&B's workers), peak RSS (``VmHWM`` of the child),
bytes written per step, and for netlapse the seconds the training thread waited for the writer
and the seconds ``close()`` took to drain what was still queued.

    python benchmarks/overhead.py              # full run (a few minutes)
    python benchmarks/overhead.py --quick      # short smoke run
    python benchmarks/overhead.py --long       # full weights, MLP, 5,000 steps: backlog check
    python benchmarks/overhead.py --models mlp,lit_mlp,hf_mlp --variants bare,nl_stats
                                               # the plain loop against Lightning and HF Trainer
    python benchmarks/overhead.py --models resnet18,gpt --variants bare,nl_stats,nl_act \
        --threads 1,all --steps 40 --warmup 8  # real architectures, 1 torch thread and all cores

``resnet18`` is torchvision's ResNet-18 (BatchNorm, one ReLU module called twice per block) on
CIFAR-sized input (batch 32 of 3x32x32), ``gpt`` a nanoGPT-style transformer (6 layers, width
256, 4 heads, sequence 128, batch 4, vocabulary 512, tied output layer); both are written in
``tests/torch_models.py``. ``--threads``: torch threads per child, ``all`` = every core.

``lit_mlp`` and ``hf_mlp`` train the same MLP inside a Lightning ``Trainer`` and a
``transformers.Trainer`` (``_trainer_children.py``): bare, and with netlapse's Recorder
(weights + grads stats every step).

Needs ``pip install -r benchmarks/requirements.txt`` (tensorboard, wandb) for the peers; a peer
that is not installed is reported as skipped. W&B runs with ``WANDB_MODE=offline``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _trainer_children import TRAINER_MODELS, TRAINER_VARIANTS, child as trainer_child  # noqa: E402

VARIANTS = {
    "bare": "no recording",
    "nl_stats": "netlapse: weights+grads stats and histograms, every step",
    "nl_full": "netlapse: full weights, every step",
    "nl_act": "netlapse: activation stats and histograms, every step",
    "tb_hist": "TensorBoard add_histogram of every weight and grad, every step",
    "wandb": "wandb.watch(log='all', log_freq=1), offline",
    # torch.compile(model) (inductor), watched through the compiled wrapper; ratios are to
    # bare_compiled, and each child reports Dynamo's graph, graph-break and frame counts
    "bare_compiled": "torch.compile(model), no recording",
    "nl_stats_compiled": "torch.compile(model) + netlapse weights+grads stats, every step",
    "nl_act_compiled": "torch.compile(model) + netlapse activation stats, every step",
}
COMPILED = "_compiled"
MODELS = ("mlp", "cnn", "resnet18", "gpt", "lit_mlp", "hf_mlp", "tiny")   # lit_/hf_: the MLP inside a Lightning / HF Trainer;
# tiny: the MLP's 6 tensors at width 16, batch 8: a step that is almost only the fixed per-step cost
GPT_VOCAB = 512


# ---------------------------------------------------------------------------------------- child
def _vm_hwm_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _model(name: str):
    import torch
    from torch import nn

    if name in ("resnet18", "gpt"):
        sys.path.insert(0, str(ROOT / "tests"))
        from torch_models import GPT, ResNet

        g = torch.Generator().manual_seed(1)
        if name == "resnet18":
            model = ResNet(layers=(2, 2, 2, 2), widths=(64, 128, 256, 512), num_classes=10)
            data = [(torch.randn(32, 3, 32, 32, generator=g), torch.randint(0, 10, (32,), generator=g))
                    for _ in range(4)]
        else:
            model = GPT(vocab_size=GPT_VOCAB, block_size=128, n_layer=6, n_head=4, n_embd=256)
            data = []
            for _ in range(4):
                idx = torch.randint(0, GPT_VOCAB, (4, 129), generator=g)
                data.append((idx[:, :-1].contiguous(), idx[:, 1:].contiguous()))
        return model, data
    if name == "mlp":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                              nn.Linear(512, 10))
        batch = 128
        make = lambda g: torch.randn(batch, 784, generator=g)  # noqa: E731
    elif name == "tiny":
        model = nn.Sequential(nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(),
                              nn.Linear(16, 10))
        batch = 8
        make = lambda g: torch.randn(batch, 16, generator=g)  # noqa: E731
    else:
        model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
        batch = 64
        make = lambda g: torch.randn(batch, 1, 28, 28, generator=g)  # noqa: E731
    g = torch.Generator().manual_seed(1)
    data = [(make(g), torch.randint(0, 10, (batch,), generator=g)) for _ in range(8)]
    return model, data


def child(model_name: str, variant: str, steps: int, warmup: int, workdir: str) -> dict:
    if model_name in TRAINER_MODELS:
        result = trainer_child(model_name, variant, steps, warmup, workdir, ROOT, _threads())
        return {**result, "rss_mb": _vm_hwm_mb(), "threads": _threads()}
    import torch

    threads = _threads()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sys.path.insert(0, str(ROOT))
    model, data = _model(model_name)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    out = Path(workdir) / f"{model_name}-{variant}"
    run = tb = wb = None
    log = lambda step, loss: None  # noqa: E731
    compiled = variant.endswith(COMPILED)
    forward = torch.compile(model) if compiled else model
    kind = variant[:-len(COMPILED)] if compiled else variant
    if kind.startswith("nl_"):
        import netlapse
        from netlapse.torch import watch

        run = netlapse.Run(out)
        kw = {"nl_stats": dict(weights="stats", grads="stats"),
              "nl_full": dict(weights="full", grads=None),
              "nl_act": dict(weights=None, grads=None, activations="stats")}[kind]
        watch(forward, run, opt, **kw)
        log = lambda step, loss: run.log(loss=loss)  # noqa: E731
    elif variant == "tb_hist":
        from torch.utils.tensorboard import SummaryWriter

        tb = SummaryWriter(str(out))
        params = list(model.named_parameters())

        def log(step, loss):
            tb.add_scalar("loss", loss, step)
            for name, p in params:
                tb.add_histogram(f"weights/{name}", p, step)
                tb.add_histogram(f"grads/{name}", p.grad, step)
    elif variant == "wandb":
        os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DIR=str(out),
                          WANDB_CONSOLE="off")
        out.mkdir(parents=True, exist_ok=True)
        import wandb

        wb = wandb.init(project="netlapse-bench", dir=str(out), mode="offline")
        wandb.watch(model, log="all", log_freq=1)
        log = lambda step, loss: wb.log({"loss": loss}, step=step)  # noqa: E731

    loss_fn = torch.nn.functional.cross_entropy
    if model_name == "gpt":
        loss_fn = lambda out, y: torch.nn.functional.cross_entropy(  # noqa: E731
            out.reshape(-1, out.shape[-1]), y.reshape(-1))
    times = []
    cpu0 = None
    for i in range(warmup + steps):
        if i == warmup:
            cpu0, thread0 = time.process_time(), time.thread_time()
        x, y = data[i % len(data)]
        t0 = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(forward(x), y)
        loss.backward()
        opt.step()
        log(i + 1, loss.item())
        times.append(time.perf_counter() - t0)
    cpu1, thread1 = time.process_time(), time.thread_time()
    t0 = time.perf_counter()
    waited = 0.0
    if run is not None:
        waited = run.waited_s
        run.close()
    if tb is not None:
        tb.close()
    if wb is not None:
        wb.finish()
    close_s = time.perf_counter() - t0
    result = {
        "model": model_name, "variant": variant, "steps": steps, "threads": threads,
        "median_ms": statistics.median(times[warmup:]) * 1e3,
        "mean_ms": statistics.fmean(times[warmup:]) * 1e3,
        "cpu_ms": (cpu1 - cpu0) / steps * 1e3,
        "train_cpu_ms": (thread1 - thread0) / steps * 1e3,
        "rss_mb": _vm_hwm_mb(),
        "bytes_per_step": (_dir_bytes(out) / (warmup + steps)) if out.exists() else 0,
        "waited_s": waited, "close_s": close_s,
    }
    if compiled:
        from torch._dynamo.utils import counters

        result.update(graphs=counters["stats"]["unique_graphs"], frames=counters["frames"]["total"],
                      breaks=sum(counters["graph_break"].values()))
    if run is not None:
        from netlapse import open_run

        r = open_run(out)
        n = warmup + steps   # weights and buffers are also recorded at step 0, before training
        result["complete"] = bool(r.streams()) and all(
            r[s].length == n + (r[s].kind in ("weights", "buffers")) for s in r.streams())
        if variant == "nl_full" and steps >= 1000:
            result["window_ms"] = _windows(times[warmup:])
    return result


def _threads() -> int:
    """Torch threads for this child: NETLAPSE_BENCH_THREADS (a number or ``all``), default 1."""
    value = os.environ.get("NETLAPSE_BENCH_THREADS", "1")
    return os.cpu_count() or 1 if value == "all" else int(value)


def _windows(times: list, parts: int = 5) -> list:
    """Median step time (ms) in ``parts`` consecutive windows: a growing backlog shows as a rise."""
    k = len(times) // parts
    return [round(statistics.median(times[i * k:(i + 1) * k]) * 1e3, 3) for i in range(parts)]


# --------------------------------------------------------------------------------------- parent
def _available(variant: str, model: str = "mlp") -> bool:
    mod = TRAINER_MODELS.get(model) or {"tb_hist": "tensorboard", "wandb": "wandb"}.get(variant)
    if mod is None:
        return True
    import importlib.util

    return importlib.util.find_spec(mod) is not None


def _spawn(model: str, variant: str, steps: int, warmup: int, workdir: str,
           threads: str = "1") -> dict:
    n = str(os.cpu_count() or 1) if threads == "all" else threads
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n,
               NETLAPSE_BENCH_THREADS=threads)
    cmd = [sys.executable, __file__, "--child", model, variant, str(steps), str(warmup), workdir]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{model}/{variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def _fmt_range(values: list, fmt: str = "{:.2f}") -> str:
    med = statistics.median(values)
    if len(values) == 1:
        return fmt.format(med)
    return f"{fmt.format(med)} ({fmt.format(min(values))}-{fmt.format(max(values))})"


def table(results: list) -> str:
    rows = ["| model | variant | step ms, median (min-max) | × bare | mean step × bare | CPU "
            "ms/step: training thread + other threads | training-thread CPU × bare | peak RSS MB "
            "| bytes/step | waited s | close s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    groups = sorted({(r["model"], r.get("threads", 1)) for r in results},
                    key=lambda k: (MODELS.index(k[0]), k[1]))
    for model, threads in groups:
        mine = [r for r in results if r["model"] == model and r.get("threads", 1) == threads]
        label = model if all(r.get("threads", 1) == 1 for r in results) else f"{model}, {threads} thr"
        for variant in VARIANTS:
            base = "bare_compiled" if variant.endswith(COMPILED) else "bare"
            bare = [r["median_ms"] for r in mine if r["variant"] == base]
            bare_med = statistics.median(bare) if bare else float("nan")
            bare_cpu = [r["train_cpu_ms"] for r in mine if r["variant"] == base]
            bare_cpu = statistics.median(bare_cpu) if bare_cpu else float("nan")
            rs = [r for r in mine if r["variant"] == variant]
            if not rs:
                continue
            if "skipped" in rs[0]:
                rows.append(f"| {label} | {variant} | skipped: {rs[0]['skipped']} | | | | | | | | |")
                continue
            meds = [r["median_ms"] for r in rs]
            # each repetition against the bare run of the same repetition (run minutes apart,
            # under the same load), falling back to the median bare
            bare_of = {r["rep"]: r["median_ms"] for r in mine if r["variant"] == base}
            ratios = [r["median_ms"] / bare_of.get(r.get("rep"), bare_med) for r in rs]
            # the mean step (waits for the writer included) against the bare run's mean
            bare_mean = {r["rep"]: r["mean_ms"] for r in mine if r["variant"] == base}
            bare_mean_med = statistics.median(bare_mean.values()) if bare_mean else float("nan")
            mean_ratios = [r["mean_ms"] / bare_mean.get(r.get("rep"), bare_mean_med) for r in rs]
            done = "" if all(r.get("complete", True) for r in rs) else " (INCOMPLETE)"
            if "graphs" in rs[0]:   # Dynamo: graphs / graph breaks / frames compiled
                done += " [{graphs} graph, {breaks} breaks, {frames} frames]".format(**rs[0])
            rows.append(
                f"| {label} | {variant}{done} | {_fmt_range(meds)} | {_fmt_range(ratios)} "
                f"| {_fmt_range(mean_ratios)} "
                f"| {statistics.median(r['train_cpu_ms'] for r in rs):.2f} + "
                f"{statistics.median(r['cpu_ms'] - r['train_cpu_ms'] for r in rs):.2f} "
                f"| {statistics.median(r['train_cpu_ms'] for r in rs) / bare_cpu:.2f} "
                f"| {statistics.median(r['rss_mb'] for r in rs):.0f} "
                f"| {statistics.median(r['bytes_per_step'] for r in rs):,.0f} "
                f"| {statistics.median(r['waited_s'] for r in rs):.2f} "
                f"| {statistics.median(r['close_s'] for r in rs):.2f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="60 steps, 1 repetition")
    ap.add_argument("--long", action="store_true",
                    help="only bare and full weights on the MLP, 5,000 steps: does the writer keep up?")
    ap.add_argument("--steps", type=int, help="timed steps per run (default 400)")
    ap.add_argument("--warmup", type=int, default=30, help="untimed steps first (default 30)")
    ap.add_argument("--reps", type=int, help="interleaved repetitions (default 3)")
    ap.add_argument("--models", default="mlp,cnn",
                    help="comma list of: " + ", ".join(MODELS) + " (default mlp,cnn)")
    ap.add_argument("--threads", default="1",
                    help="comma list of torch thread counts per child, 'all' = every core "
                         "(default 1)")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="comma list of: " + ", ".join(VARIANTS))
    ap.add_argument("--json", help="also write the raw results to this file")
    ap.add_argument("--child", nargs=5, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        model, variant, steps, warmup, workdir = args.child
        print(json.dumps(child(model, variant, int(steps), int(warmup), workdir)))
        return 0
    steps = args.steps or (60 if args.quick else 5000 if args.long else 400)
    reps = args.reps or (1 if args.quick or args.long else 3)
    models = [m for m in args.models.split(",") if m]
    variants = [v for v in args.variants.split(",") if v]
    if args.long:
        models, variants = ["mlp"], ["bare", "nl_full"]
    bad = [m for m in models if m not in MODELS] + [v for v in variants if v not in VARIANTS]
    if bad:
        ap.error(f"unknown model or variant: {', '.join(bad)}")
    thread_counts = [t for t in args.threads.split(",") if t]
    if not all(t == "all" or t.isdigit() and int(t) > 0 for t in thread_counts):
        ap.error(f"--threads takes positive counts or 'all', e.g. --threads 1,all; got {args.threads!r}")
    results = []
    total = reps * len(models) * len(variants) * len(thread_counts)
    done = 0
    for rep in range(reps):
        for model, threads in [(m, t) for m in models for t in thread_counts]:
            order = variants[rep % len(variants):] + variants[:rep % len(variants)]
            for variant in order:
                done += 1
                if model in TRAINER_MODELS and variant not in TRAINER_VARIANTS:
                    continue   # the trainer variants compare bare and netlapse stats only
                if not _available(variant, model):
                    results.append({"model": model, "variant": variant, "threads": threads,
                                    "skipped": "not installed"})
                    continue
                workdir = tempfile.mkdtemp(prefix="netlapse-bench-")
                try:
                    r = _spawn(model, variant, steps, args.warmup, workdir, threads)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                r["rep"] = rep
                results.append(r)
                extra = f" windows {r['window_ms']}" if "window_ms" in r else ""
                print(f"[{done}/{total}] rep {rep + 1} {model} ({r.get('threads', 1)} thr) "
                      f"{variant}: median "
                      f"{r['median_ms']:.2f} ms, cpu {r['train_cpu_ms']:.2f} + "
                      f"{r['cpu_ms'] - r['train_cpu_ms']:.2f} ms/step, "
                      f"rss {r['rss_mb']:.0f} MB, waited {r['waited_s']:.2f} s, "
                      f"close {r['close_s']:.2f} s{extra}", file=sys.stderr, flush=True)
    load = os.getloadavg()
    print(f"\n{steps} timed steps after {args.warmup} warm-up, {reps} interleaved repetition(s), "
          f"torch threads {args.threads} ({os.cpu_count()} cores); load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
          f"on {os.cpu_count()} cores.\n")
    print(table(results))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
