"""Recording overhead under torch.distributed: 2 ranks (gloo, CPU), bare vs netlapse.

For DDP and FSDP2 (``fully_shard``), on the MLP of benchmarks/overhead.py and a small GPT-style
transformer, each variant is a fresh 2-process job (one thread per rank) timed on rank 0 after
a warm-up; repetitions are interleaved so that load from other processes falls on all variants
alike. Prints a markdown table: median step time (ms) and its ratio to the bare job of the same
wrapper, model and repetition (median over repetitions, min-max).

    python benchmarks/distributed_overhead.py            # 3 repetitions
    python benchmarks/distributed_overhead.py --quick    # 1 repetition, fewer steps
    python benchmarks/distributed_overhead.py --paired   # bare and netlapse in one job, in
                                                         # alternating blocks (_paired.py)

Variants: ``bare``; ``nl_stats``: weights and grads stats + histograms every step;
``nl_act``: weights, grads and activation stats every step (activations reduced over the ranks).

With ``--paired``, "rank 0 writer CPU ms/step" is the CPU time of rank 0's writer thread per
recorded step, and on a machine of 2 cores (the two ranks' training then keeps every core busy)
"least × bare, no free core" is 1 + that time over (2 x the bare step): no scheduling can make
the recorded step shorter than that many bare steps.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("bare", "nl_stats", "nl_act")
MODELS = ("mlp", "gpt")
WRAPS = ("ddp", "fsdp2")


# ---------------------------------------------------------------------------------- child
def _model(name: str):
    import torch
    from torch import nn

    torch.manual_seed(0)
    if name == "mlp":
        model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                              nn.Linear(512, 10))
        g = torch.Generator().manual_seed(1)
        data = [(torch.randn(64, 784, generator=g), torch.randint(0, 10, (64,), generator=g))
                for _ in range(8)]   # 64 per rank: the global batch of 128 of overhead.py
        return model, data, nn.functional.cross_entropy, [model[0], model[2], model[4]]

    class Block(nn.Module):
        def __init__(self, d, heads):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
            self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

        def forward(self, x):
            h = self.ln1(x)
            n = x.shape[1]
            mask = torch.triu(torch.ones(n, n, dtype=torch.bool), 1)
            x = x + self.attn(h, h, h, attn_mask=mask, need_weights=False)[0]
            return x + self.mlp(self.ln2(x))

    class GPT(nn.Module):
        def __init__(self, vocab=256, d=128, layers=2, heads=4, ctx=64):
            super().__init__()
            self.wte, self.wpe = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
            self.blocks = nn.ModuleList(Block(d, heads) for _ in range(layers))
            self.ln_f = nn.LayerNorm(d)
            self.lm_head = nn.Linear(d, vocab, bias=False)

        def forward(self, idx):
            x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            return self.lm_head(self.ln_f(x))

    model = GPT()
    g = torch.Generator().manual_seed(1)
    data = [(torch.randint(0, 256, (8, 64), generator=g), torch.randint(0, 256, (8, 64), generator=g))
            for _ in range(8)]

    def loss_fn(logits, y):
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    return model, data, loss_fn, list(model.blocks) + [model.lm_head]


def _wrapped(model_name: str, wrap: str):
    """A fresh model (same initial weights on every call), wrapped, with its Adam."""
    import torch

    model, data, loss_fn, units = _model(model_name)
    if wrap == "ddp":
        from torch.nn.parallel import DistributedDataParallel as DDP

        net = DDP(model)
    else:
        from torch.distributed.fsdp import fully_shard

        for unit in units:
            fully_shard(unit)
        net = fully_shard(model)
    return net, torch.optim.Adam(net.parameters(), lr=1e-3), data, loss_fn


def _watch(net, opt, variant: str, workdir: str):
    import netlapse as nl

    run = nl.Run(os.path.join(workdir, "run"))
    nl.watch(net, run, opt, weights="stats", grads="stats",
             activations="stats" if variant == "nl_act" else None)
    return run


def _stepper(net, opt, data, loss_fn):
    i = [0]

    def step():
        x, y = data[i[0] % len(data)]
        i[0] += 1
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def child(model_name, variant, wrap, steps, warmup, workdir, out):
    import datetime

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    rank = dist.get_rank()
    net, opt, data, loss_fn = _wrapped(model_name, wrap)
    run = _watch(net, opt, variant, workdir) if variant != "bare" else None
    step = _stepper(net, opt, data, loss_fn)
    times = []
    for i in range(warmup + steps):
        start = time.perf_counter()
        step()
        if i >= warmup:
            times.append(time.perf_counter() - start)
    close_start = time.perf_counter()
    if run is not None:
        run.close()
    close_s = time.perf_counter() - close_start
    dist.destroy_process_group()
    if rank == 0:
        Path(out).write_text(json.dumps({"step_ms": statistics.median(times) * 1e3,
                                         "close_s": close_s}))


def paired_child(model_name, variant, wrap, pairs, block_s, workdir, out):
    """Bare and watched copies of the same job in one process group, in alternating blocks
    (benchmarks/_paired.py); rank 0 times them. Every rank runs the same blocks."""
    import datetime

    import torch
    import torch.distributed as dist

    from _paired import Arm, alternate, block_steps, summary, thread_cpu_clock

    torch.set_num_threads(1)
    dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=120))
    rank = dist.get_rank()
    net, opt, data, loss_fn = _wrapped(model_name, wrap)
    bare = Arm(_stepper(net, opt, data, loss_fn))
    net2, opt2, _, _ = _wrapped(model_name, wrap)
    run = _watch(net2, opt2, variant, workdir)
    writer = getattr(run._pipeline, "_thread", None)   # rank 0's writer; other ranks have none
    recorded = Arm(_stepper(net2, opt2, data, loss_fn), run._pipeline.drain,
                   thread_cpu_clock(writer) if writer is not None else None)
    for arm in (bare, recorded):
        for _ in range(10):
            arm.step()
    n = torch.tensor([block_steps(bare.step, block_s)])   # every rank steps (collectives)
    dist.broadcast(n, 0)   # and every rank runs blocks of rank 0's length
    ratios = alternate(bare, recorded, pairs, int(n))
    result = summary(bare, recorded, ratios)
    run.close()
    dist.destroy_process_group()
    if rank == 0:
        Path(out).write_text(json.dumps({**result, "block": int(n)}))


# ---------------------------------------------------------------------------------- parent
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(model, variant, wrap, steps, warmup, paired: tuple | None = None) -> dict:
    """One 2-rank job; ``paired`` = (pairs, block seconds): bare and ``variant`` side by side."""
    mode = ["--child", model, variant, wrap, str(steps), str(warmup)] if paired is None else \
        ["--paired-child", model, variant, wrap, str(paired[0]), str(paired[1])]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "result.json"
        port = _free_port()
        procs = []
        for rank in range(2):
            env = {**os.environ, "RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": "2",
                   "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "OMP_NUM_THREADS": "1",
                   "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
            procs.append(subprocess.Popen(
                [sys.executable, __file__, *mode, tmp, str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True))
        logs = [p.communicate(timeout=900)[0] for p in procs]
        if any(p.returncode for p in procs):
            raise SystemExit(f"{wrap} {model} {variant} failed:\n" + "\n".join(s[-2000:] for s in logs))
        return json.loads(out.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 repetition, 30 steps")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--steps", type=int, default=80)
    parser.add_argument("--paired", action="store_true",
                        help="bare and netlapse side by side in one job, alternating blocks "
                             "(benchmarks/_paired.py): ratios that this machine's drift moves less")
    parser.add_argument("--pairs", type=int, default=12, help="with --paired: pairs of blocks")
    parser.add_argument("--block-s", type=float, default=1.0,
                        help="with --paired: seconds a block lasts, about")
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    parser.add_argument("--paired-child", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        m, v, w, steps, warmup, workdir, out = args.child
        child(m, v, w, int(steps), int(warmup), workdir, out)
        return
    if args.paired_child:
        m, v, w, pairs, block_s, workdir, out = args.paired_child
        paired_child(m, v, w, int(pairs), float(block_s), workdir, out)
        return
    if args.paired:
        paired_main(args)
        return
    reps, steps, warmup = (1, 30, 5) if args.quick else (args.reps, args.steps, 10)
    print(f"load average before: {os.getloadavg()}", flush=True)
    results: dict = {}
    for rep in range(reps):
        for wrap in WRAPS:
            for model in MODELS:
                for variant in VARIANTS:
                    r = launch(model, variant, wrap, steps, warmup)
                    results.setdefault((wrap, model, variant), []).append(r)
                    print(f"rep {rep + 1} {wrap} {model} {variant}: {r['step_ms']:.2f} ms/step",
                          file=sys.stderr, flush=True)
    print(f"load average after: {os.getloadavg()}\n")
    print(f"2 ranks, gloo on CPU, 1 thread each; {steps} timed steps after {warmup}; "
          f"{reps} repetition(s)\n")
    print("| wrapper | model | variant | step ms (median, min-max) | ratio to bare (median, min-max) | close s |")
    print("|---|---|---|---|---|---|")
    for wrap in WRAPS:
        for model in MODELS:
            bare = [r["step_ms"] for r in results[(wrap, model, "bare")]]
            for variant in VARIANTS:
                ms = [r["step_ms"] for r in results[(wrap, model, variant)]]
                ratios = [m / b for m, b in zip(ms, bare)]
                close = max(r["close_s"] for r in results[(wrap, model, variant)])
                print(f"| {wrap} | {model} | {variant} | {statistics.median(ms):.2f} "
                      f"({min(ms):.2f}-{max(ms):.2f}) | {statistics.median(ratios):.2f}x "
                      f"({min(ratios):.2f}-{max(ratios):.2f}) | {close:.2f} |")


def paired_main(args) -> None:
    from _paired import cores, least_ratio, writer_ms

    print(f"load average before: {os.getloadavg()}", flush=True)
    rows = []
    for wrap in WRAPS:
        for model in MODELS:
            for variant in VARIANTS[1:]:
                r = launch(model, variant, wrap, 0, 0, paired=(args.pairs, args.block_s))
                rows.append(f"| {wrap} | {model} | {variant} | {r['bare_step_ms']:.2f} "
                            f"| **{r['ratio']:.2f}** ({r['ratio_q1']:.2f}-{r['ratio_q3']:.2f}) "
                            f"| {r['median_step_ratio']:.2f} | {writer_ms(r):.1f} "
                            f"| {least_ratio(r, cores() > 2)} "
                            f"| {r['pairs']} x {r['block']} |")
                print(rows[-1], file=sys.stderr, flush=True)
    print(f"load average after: {os.getloadavg()}\n")
    print(f"2 ranks, gloo on CPU, 1 thread each; bare and netlapse in one job, {args.pairs} pairs "
          f"of blocks of about {args.block_s} s (rank 0's times)\n")
    print("| wrapper | model | variant | bare step ms | × bare (quartiles) | median step × bare "
          "| rank 0 writer CPU ms/step | least × bare, no free core | pairs x steps |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
