"""Lightning ``strategy="ddp"`` and the HF ``Trainer`` under torchrun, with netlapse's Recorders.

    python -m torch.distributed.run --nproc_per_node 2 tests/dist_trainers.py lightning|hf OUT

Rank 0 saves, next to the run, what the test compares it with: the final parameters and each
rank's activations of every step (taken by forward hooks of our own, gathered to rank 0).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

STEPS = 4
PER_RANK = 4


def dataset():
    g = torch.Generator().manual_seed(5)
    n = STEPS * PER_RANK * 2
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc1 = nn.Linear(6, 16)
        self.act = nn.ReLU()
        self.fc2 = nn.Linear(16, 3)

    def forward(self, x, labels=None):
        logits = self.fc2(self.act(self.fc1(x)))
        if labels is None:
            return logits
        return {"loss": nn.functional.cross_entropy(logits, labels), "logits": logits}


def tap(net, taken):
    """Our own record of fc1's output in each training forward (the last one per step)."""
    def hook(module, inputs, output):
        if torch.is_grad_enabled():
            taken.append(output.detach().clone())
    return net.fc1.register_forward_hook(hook)


def save(out, net, taken):
    every = [None] * dist.get_world_size()
    dist.all_gather_object(every, [t.numpy() for t in taken])
    if dist.get_rank() == 0:
        np.savez(os.path.join(out, "expect.npz"),
                 **{f"param:{n}": p.detach().numpy() for n, p in net.named_parameters()},
                 **{f"fc1:{i + 1}": np.concatenate([every[r][i] for r in range(len(every))])
                    for i in range(len(taken))})


def lightning(out):
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from netlapse.lightning import Recorder

    class Lit(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = Net()

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self.net(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    lit = Lit()
    taken = []
    tap(lit.net, taken)
    x, y = dataset()
    loader = DataLoader(TensorDataset(x, y), batch_size=PER_RANK, shuffle=False)
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", max_steps=STEPS,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=1,
                        callbacks=[Recorder(os.path.join(out, "runs", "run"), activations="stats")])
    trainer.fit(lit, loader)
    save(out, lit.net, taken)


def hf(out):
    from transformers import Trainer, TrainingArguments

    from netlapse.transformers import Recorder

    class Data(torch.utils.data.Dataset):
        def __init__(self):
            self.x, self.y = dataset()

        def __len__(self):
            return len(self.y)

        def __getitem__(self, i):
            return {"x": self.x[i], "labels": self.y[i]}

    net = Net()
    taken = []
    tap(net, taken)
    args = TrainingArguments(output_dir=os.path.join(out, "hf"), per_device_train_batch_size=PER_RANK,
                             max_steps=STEPS, logging_steps=1, report_to=[], save_strategy="no",
                             use_cpu=True, ddp_backend="gloo", disable_tqdm=True, learning_rate=0.1,
                             lr_scheduler_type="constant", optim="sgd", dataloader_num_workers=0,
                             seed=0)
    trainer = Trainer(model=net, args=args, train_dataset=Data(),
                      callbacks=[Recorder(os.path.join(out, "runs", "run"), activations="stats")])
    trainer.train()
    save(out, net, taken)


if __name__ == "__main__":
    torch.set_num_threads(1)
    {"lightning": lightning, "hf": hf}[sys.argv[1]](sys.argv[2])
    # the trainers leave the process group up; torn down by interpreter exit, gloo's threads
    # sometimes abort the process ("terminate called without an active exception")
    if dist.is_initialized():
        dist.destroy_process_group()
    from dist_worker import exit_without_finalizing

    exit_without_finalizing()
