"""Recording overhead measured side by side in one process: bare and recorded blocks in turn.

benchmarks/overhead.py runs each variant in its own process, minutes apart; on a machine whose
speed drifts (this one: the same bare step took 111 to 185 ms in separate processes) those
ratios move by +-0.1. Here each configuration is one process holding two copies of the same
model: one bare, one watched by netlapse. They train in alternating blocks of about
``--block-s`` seconds (benchmarks/_paired.py); each of the recorded blocks ends with
a wait until the writer has taken everything the block recorded (commits happen on the
writer's own schedule, as in any run), timed with it, so all of the writer's work is charged to
netlapse.
The ratio reported is the median over pairs of adjacent blocks (quartiles in brackets).

    python benchmarks/paired_overhead.py                       # MLP, ResNet-18, GPT; eager
    python benchmarks/paired_overhead.py --models mlp,gpt --compiled
                                             # both arms torch.compile'd (inductor)
    python benchmarks/paired_overhead.py --models resnet18 --threads all --variants nl_stats

Models are those of benchmarks/overhead.py (``mlp``, ``cnn``, ``resnet18``, ``gpt``; ``tiny``,
the MLP's six tensors 16 wide, whose step is almost only netlapse's fixed cost per step: the
column "+us/step" is that cost), SGD with momentum 0.9. Variants: ``nl_stats`` (weights, grads and updates/ stats every step, the
default of ``watch``), ``nl_wg`` (weights and grads stats every step, ``updates=None``), ``nl_act`` (activation stats every step).

"writer CPU ms/step" is the CPU time of netlapse's writer thread per recorded step. "least ×
bare, no free core" is 1 + that time over (cores x the bare step): when torch's threads keep
every core busy (``--threads all``), the writer's time is taken from them, so no scheduling can
make the recorded step shorter than that many bare steps (less only where torch leaves cores
idle). With one torch thread and a free core it bounds nothing.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from _paired import (Arm, alternate, block_steps, cores, least_ratio, summary,  # noqa: E402
                     thread_cpu_clock, writer_ms)

MODELS = ("mlp", "cnn", "resnet18", "gpt", "tiny")
VARIANTS = {"nl_stats": dict(weights="stats", grads="stats"),
            "nl_wg": dict(weights="stats", grads="stats", updates=None),
            "nl_act": dict(weights=None, grads=None, activations="stats")}


def build_arms(model_name: str, variant: str, compiled: bool, workdir: str, threads: int):
    """Two copies of ``model_name``'s model and optimizer: the bare arm and the arm watched
    with ``VARIANTS[variant]`` into a run in ``workdir``. Returns ``(bare, recorded, run)``."""
    import torch

    from overhead import _model

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model, data = _model(model_name)
    twin = copy.deepcopy(model)
    loss_fn = torch.nn.functional.cross_entropy
    if model_name == "gpt":
        loss_fn = lambda out, y: torch.nn.functional.cross_entropy(  # noqa: E731
            out.reshape(-1, out.shape[-1]), y.reshape(-1))

    import netlapse
    from netlapse.torch import watch

    run = netlapse.Run(Path(workdir) / "run")

    def arm(net, watched: bool) -> Arm:
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        forward = torch.compile(net) if compiled else net
        if watched:
            watch(forward, run, opt, **VARIANTS[variant])
        i = [0]

        def step():
            x, y = data[i[0] % len(data)]
            i[0] += 1
            opt.zero_grad()
            loss = loss_fn(forward(x), y)
            loss.backward()
            opt.step()
            if watched:
                run.log(loss=loss.item())
            else:
                loss.item()
        if not watched:
            return Arm(step)
        return Arm(step, run._pipeline.drain, thread_cpu_clock(run._pipeline._thread))

    bare, recorded = arm(model, False), arm(twin, True)
    for a in (bare, recorded):   # warm-up (and compilation) of both, not timed
        for _ in range(10):
            a.step()
    run.flush()
    return bare, recorded, run


def child(model_name: str, variant: str, compiled: bool, pairs: int, block_s: float,
          workdir: str) -> dict:
    import netlapse

    bare, recorded, run = build_arms(model_name, variant, compiled, workdir,
                                     int(os.environ["NETLAPSE_BENCH_THREADS"]))
    block = block_steps(bare.step, block_s)
    ratios = alternate(bare, recorded, pairs, block)
    result = summary(bare, recorded, ratios)
    steps_recorded = 10 + pairs * block
    run.close()
    r = netlapse.open_run(Path(workdir) / "run")
    streams = r.streams()
    result.update(block=block, complete=bool(streams) and all(
        r[s].length == steps_recorded + (r[s].kind in ("weights", "buffers")) for s in streams))
    return result


def _spawn(model: str, variant: str, compiled: bool, threads: str, pairs: int,
           block_s: float) -> dict:
    n = str(os.cpu_count() or 1) if threads == "all" else threads
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS=n, OPENBLAS_NUM_THREADS=n, MKL_NUM_THREADS=n,
               NETLAPSE_BENCH_THREADS=n)
    with tempfile.TemporaryDirectory(prefix="netlapse-paired-") as tmp:
        cmd = [sys.executable, __file__, "--child", model, variant, str(int(compiled)),
               str(pairs), str(block_s), tmp]
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{model}/{variant} failed:\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])


def row(r: dict) -> str:
    done = "" if r["complete"] else " (INCOMPLETE)"
    return (f"| {r['model']} | {r['threads']} | {r['variant']}{done} | {r['bare_step_ms']:.2f} "
            f"| **{r['ratio']:.2f}** ({r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}) "
            f"| {(r['ratio'] - 1) * r['bare_step_ms'] * 1e3:.0f} "
            f"| {r['median_step_ratio']:.2f} | {r['train_cpu_ratio']:.2f} "
            f"| {writer_ms(r):.1f} "
            f"| {least_ratio(r, r['threads'] != 'all' and int(r['threads']) < cores())} "
            f"| {r['pairs']} x {r['block']} |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("--models", default="mlp,resnet18,gpt", help="comma list of: " + ", ".join(MODELS))
    ap.add_argument("--variants", default="nl_stats,nl_act", help="comma list of: " + ", ".join(VARIANTS))
    ap.add_argument("--threads", default="1,all",
                    help="comma list of torch thread counts, 'all' = every core (default 1,all)")
    ap.add_argument("--compiled", action="store_true", help="torch.compile both arms")
    ap.add_argument("--pairs", type=int, default=12, help="pairs of blocks (default 12)")
    ap.add_argument("--block-s", type=float, default=1.0,
                    help="seconds a block lasts, about (default 1.0, netlapse's commit interval)")
    ap.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        model, variant, compiled, pairs, block_s, workdir = args.child
        print(json.dumps(child(model, variant, compiled == "1", int(pairs), float(block_s), workdir)))
        return 0
    models = [m for m in args.models.split(",") if m]
    variants = [v for v in args.variants.split(",") if v]
    threads = [t for t in args.threads.split(",") if t]
    bad = [m for m in models if m not in MODELS] + [v for v in variants if v not in VARIANTS]
    if bad:
        ap.error(f"unknown model or variant: {', '.join(bad)}")
    if not all(t == "all" or t.isdigit() and int(t) > 0 for t in threads):
        ap.error(f"--threads takes positive counts or 'all', e.g. --threads 1,all; got {args.threads!r}")
    if args.pairs < 1 or args.block_s <= 0:
        ap.error("--pairs must be at least 1 and --block-s above 0")
    rows = []
    for model in models:
        for t in threads:
            for variant in variants:
                r = _spawn(model, variant, args.compiled, t, args.pairs, args.block_s)
                r.update(model=model, variant=variant + ("_compiled" if args.compiled else ""),
                         threads=t)
                rows.append(row(r))
                print(rows[-1], file=sys.stderr, flush=True)
    load = os.getloadavg()
    print(f"\n{args.pairs} pairs of blocks of about {args.block_s} s in one process per row; "
          f"load average at the end {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} on "
          f"{os.cpu_count()} cores.\n")
    print("| model | threads | variant | bare step ms | × bare (quartiles) | +us/step "
          "| median step × bare | training-thread CPU × bare | writer CPU ms/step "
          "| least × bare, no free core | pairs x steps |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
