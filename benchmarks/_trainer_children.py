"""Children of ``overhead.py`` for the trainer variants: the same MLP (784-512-512-10, batch
128, SGD with momentum) trained by a Lightning ``Trainer`` or a ``transformers.Trainer``, bare or
with netlapse's Recorder (weights + grads stats and histograms, every step).

Step time: the interval between consecutive batch starts (Lightning ``on_train_batch_start``,
HF ``on_step_begin``), so it holds everything the trainer and the Recorder do per step.
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

TRAINER_MODELS = {"lit_mlp": "lightning", "hf_mlp": "transformers"}
TRAINER_VARIANTS = ("bare", "nl_stats")


def _mlp():
    from torch import nn

    return nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(),
                         nn.Linear(512, 10))


def _data(batch=128, batches=8):
    import torch

    g = torch.Generator().manual_seed(1)
    return (torch.randn(batch * batches, 784, generator=g),
            torch.randint(0, 10, (batch * batches,), generator=g))


class _Clock:
    def __init__(self, warmup: int):
        self.warmup = warmup
        self.starts: list[float] = []
        self.cpu: list[tuple[float, float]] = []

    def tick(self) -> None:
        self.starts.append(time.perf_counter())
        self.cpu.append((time.process_time(), time.thread_time()))

    def result(self, steps: int) -> dict:
        """Over the ``steps`` intervals after the warm-up (the last batch start closes them)."""
        (c0, t0), (c1, t1) = self.cpu[self.warmup], self.cpu[-1]
        cpu, thread = c1 - c0, t1 - t0
        gaps = [b - a for a, b in zip(self.starts[self.warmup:], self.starts[self.warmup + 1:])]
        return {"median_ms": statistics.median(gaps) * 1e3, "mean_ms": statistics.fmean(gaps) * 1e3,
                "cpu_ms": cpu / steps * 1e3, "train_cpu_ms": thread / steps * 1e3}


def _lightning(recorder_path, steps, warmup):
    import lightning as L
    import torch

    clock = _Clock(warmup)

    class Lit(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _mlp()

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01, momentum=0.9)

    class Tick(L.Callback):
        def on_train_batch_start(self, *args):
            clock.tick()

    callbacks = [Tick()]
    if recorder_path is not None:
        from netlapse.lightning import Recorder

        callbacks.append(Recorder(recorder_path, weights="stats", grads="stats"))
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(*_data()), batch_size=128)
    trainer = L.Trainer(max_steps=warmup + steps + 1, accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=1, callbacks=callbacks)
    trainer.fit(Lit(), loader)
    return clock, None


def _transformers(recorder_path, steps, warmup, workdir):
    import torch
    import transformers

    clock = _Clock(warmup)

    class MLP(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = _mlp()

        def forward(self, x, labels=None):
            logits = self.net(x)
            return {"loss": torch.nn.functional.cross_entropy(logits, labels), "logits": logits}

    class Rows(torch.utils.data.Dataset):
        def __init__(self):
            self.x, self.y = _data()

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return {"x": self.x[i], "labels": self.y[i]}

    class Tick(transformers.TrainerCallback):
        def on_step_begin(self, *args, **kwargs):
            clock.tick()

    callbacks = [Tick()]
    if recorder_path is not None:
        from netlapse.transformers import Recorder

        callbacks.append(Recorder(recorder_path, weights="stats", grads="stats"))
    model = MLP()
    args = transformers.TrainingArguments(
        output_dir=str(Path(workdir) / "hf-out"), max_steps=warmup + steps + 1,
        per_device_train_batch_size=128, logging_steps=1, report_to=[], save_strategy="no",
        use_cpu=True, disable_tqdm=True, dataloader_num_workers=0, max_grad_norm=0.0,
        lr_scheduler_type="constant", learning_rate=0.01)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Rows(),
                                   optimizers=(opt, None), callbacks=callbacks)
    trainer.train()
    return clock, None


def child(model_name: str, variant: str, steps: int, warmup: int, workdir: str, root: Path,
          threads: int = 1) -> dict:
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    sys.path.insert(0, str(root))
    out = Path(workdir) / f"{model_name}-{variant}"
    path = out if variant == "nl_stats" else None
    if TRAINER_MODELS[model_name] == "lightning":
        clock, _ = _lightning(path, steps, warmup)
    else:
        clock, _ = _transformers(path, steps, warmup, workdir)
    result = {"model": model_name, "variant": variant, "steps": steps, **clock.result(steps),
              "bytes_per_step": 0, "waited_s": 0.0, "close_s": 0.0}
    if path is not None:
        from netlapse import open_run

        r = open_run(path)
        n = warmup + steps + 1
        result["bytes_per_step"] = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / n
        result["waited_s"] = r.waited_s
        result["complete"] = bool(r.streams("grads")) and all(
            r[s].length == n + (r[s].kind == "weights") for s in r.streams() if s.split("/")[0] in ("weights", "grads"))
    return result
