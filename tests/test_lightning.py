"""netlapse.lightning.Recorder inside real Lightning fits: every stored tensor equals a copy the
test takes through Lightning's own hooks (on_before_optimizer_step, configure_gradient_clipping)
or the optimizer's own step hooks."""
import numpy as np
import pytest
import torch
from torch import nn

L = pytest.importorskip("lightning")

import netlapse as nl  # noqa: E402
from netlapse.lightning import Recorder  # noqa: E402

TRAINER = dict(accelerator="cpu", devices=1, enable_progress_bar=False, logger=False,
               enable_checkpointing=False, enable_model_summary=False)


def copies(named):
    return {n: t.detach().float().clone() for n, t in named}


def grads_of(module, params=None):
    return {n: p.grad.detach().clone() for n, p in module.named_parameters()
            if p.grad is not None and (params is None or any(p is q for q in params))}


class LitClassifier(L.LightningModule):
    """Lightning's LitMNIST shape on 8x8 'images'."""

    def __init__(self, hidden=16, lr=0.05):
        super().__init__()
        self.save_hyperparameters()
        self.model = nn.Sequential(nn.Flatten(), nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 4))
        self.clipped = {}

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)

    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        self.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)
        self.clipped[self.trainer.global_step + 1] = grads_of(self)   # the clipped grads


def loader(n=48, seed=0, batch=8):
    g = torch.Generator().manual_seed(seed)
    ds = torch.utils.data.TensorDataset(torch.randn(n, 1, 8, 8, generator=g), torch.randint(0, 4, (n,), generator=g))
    return torch.utils.data.DataLoader(ds, batch_size=batch)


class Reference(L.Callback):
    """What the stack itself shows: grads at on_before_optimizer_step, weights after each update
    (the optimizers' own post-step hook), the value of train_loss at each logged step."""

    def __init__(self):
        self.grads, self.weights, self.updates, self.losses = {}, {}, [0], {}

    def on_fit_start(self, trainer, pl_module):
        self.weights[0] = copies(pl_module.named_parameters())
        last = trainer.optimizers[-1]

        def after(opt, args, kwargs):
            self.updates[0] += 1
            self.weights[self.updates[0]] = copies(pl_module.named_parameters())
        last.register_step_post_hook(after)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        params = [p for g in optimizer.param_groups for p in g["params"]]
        self.grads.setdefault(self.updates[0] + 1, {}).update(grads_of(pl_module, params))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if "train_loss" in trainer.callback_metrics:
            self.losses[self.updates[0]] = float(trainer.callback_metrics["train_loss"])


def assert_stream(r, kind, ref, prefix=""):
    for name in {n for per in ref.values() for n in per}:
        s = r[f"{kind}/{prefix}{name}"]
        want = sorted(k for k, per in ref.items() if name in per)
        assert list(s.steps) == want, (kind, name, list(s.steps), want)
        for k in want:
            np.testing.assert_array_equal(s.at(k), ref[k][name].float().numpy(), err_msg=f"{kind}/{name}@{k}")


def test_automatic_optimization_with_validation_loops(tmp_path):
    torch.manual_seed(0)
    ref = Reference()
    rec = Recorder(tmp_path / "run", weights="full", grads="full", config={"note": "lit"})
    trainer = L.Trainer(max_epochs=2, val_check_interval=2, log_every_n_steps=1,
                        callbacks=[ref, rec], **TRAINER)
    model = LitClassifier()
    trainer.fit(model, loader(), loader(16, seed=1))
    r = nl.open_run(tmp_path / "run")
    assert r.status == "finished" and rec.run is None
    assert trainer.global_step == ref.updates[0] == 12
    assert_stream(r, "grads", ref.grads)                  # step 1..12, each its own update's
    assert_stream(r, "weights", ref.weights)              # 0..12, none lost around validation
    assert r.config["hidden"] == 16 and r.config["lr"] == 0.05 and r.config["note"] == "lit"
    m = r.metrics
    train = m.dropna(subset=["train_loss"])
    assert list(train["step"]) == list(range(1, 13))
    np.testing.assert_allclose(train["train_loss"], [ref.losses[k] for k in range(1, 13)], rtol=1e-6)
    val = m.dropna(subset=["val_loss"])
    assert list(val["step"]) == [2, 4, 6, 8, 10, 12]       # each validation, at its step
    assert not trainer.loggers                           # the Recorder's logger is gone


class LastOutput(L.Callback):
    """The last training output of each given module before each update (forward hooks, read
    at on_before_optimizer_step)."""

    def __init__(self, names):
        self.names, self.last, self.at = names, {}, {}

    def on_fit_start(self, trainer, pl_module):
        for name, m in pl_module.named_modules():
            if name in self.names:
                m.register_forward_hook(lambda mod, i, o, name=name: torch.is_grad_enabled() and
                                        self.last.__setitem__(name, o.detach().clone()))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.at[trainer.global_step + 1] = dict(self.last)


def test_accumulation_clipping_bf16(tmp_path):
    torch.manual_seed(1)
    ref, acts = Reference(), LastOutput(["model.1", "model.3"])
    model = LitClassifier()
    with nl.Run(tmp_path / "run") as run:
        trainer = L.Trainer(max_epochs=1, accumulate_grad_batches=2, gradient_clip_val=0.05,
                            precision="bf16-mixed", limit_val_batches=0,
                            callbacks=[ref, acts, Recorder(run, weights="full", grads="full",
                                                           activations="full")], **TRAINER)
        trainer.fit(model, loader())
        assert run.step == 3 and not run.closed             # a given run stays open
    r = nl.open_run(tmp_path / "run")
    assert trainer.global_step == 3
    assert_stream(r, "grads", model.clipped)              # the clipped grads, one per 2 batches
    assert_stream(r, "activations", acts.at)              # the last micro-batch's, in bf16
    assert r["activations/model.1"].at(1).dtype != np.float64 and "activations/model.1:2" not in r
    assert_stream(r, "weights", ref.weights)
    unclipped = ref.grads[1]["model.1.weight"]
    assert np.linalg.norm(r["grads/model.1.weight"].at(1)) < np.linalg.norm(unclipped.numpy())


class GAN(L.LightningModule):
    """Lightning's basic GAN example, manual optimization, tiny linear nets."""

    def __init__(self, latent=4, dim=6):
        super().__init__()
        self.automatic_optimization = False
        self.generator = nn.Sequential(nn.Linear(latent, 16), nn.ReLU(), nn.Linear(16, dim), nn.Tanh())
        self.discriminator = nn.Sequential(nn.Linear(dim, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def training_step(self, batch, batch_idx):
        real = batch[0]
        opt_g, opt_d = self.optimizers()
        bce = nn.functional.binary_cross_entropy_with_logits
        z = torch.randn(real.shape[0], 4)
        self.toggle_optimizer(opt_g)
        fake = self.generator(z)
        g_loss = bce(self.discriminator(fake), torch.ones(real.shape[0], 1))
        self.manual_backward(g_loss)
        opt_g.step()
        opt_g.zero_grad()
        self.untoggle_optimizer(opt_g)
        self.toggle_optimizer(opt_d)
        d_loss = (bce(self.discriminator(real), torch.ones(real.shape[0], 1))
                  + bce(self.discriminator(fake.detach()), torch.zeros(real.shape[0], 1))) / 2
        self.manual_backward(d_loss)
        opt_d.step()
        opt_d.zero_grad()
        self.untoggle_optimizer(opt_d)
        self.log_dict({"g_loss": g_loss, "d_loss": d_loss})

    def configure_optimizers(self):
        return [torch.optim.Adam(self.generator.parameters(), lr=2e-3, betas=(0.5, 0.999)),
                torch.optim.Adam(self.discriminator.parameters(), lr=2e-3, betas=(0.5, 0.999))]


class PerOptimizerGrads(L.Callback):
    """Each optimizer's own pre-step hook: the grads of its parameters it is about to use."""

    def __init__(self, ref):
        self.ref = ref

    def on_fit_start(self, trainer, pl_module):
        for opt in trainer.optimizers:
            def pre(o, args, kwargs):
                params = [p for g in o.param_groups for p in g["params"]]
                self.ref.grads.setdefault(self.ref.updates[0] + 1, {}).update(grads_of(pl_module, params))
            opt.register_step_pre_hook(pre)


def test_gan_manual_optimization_two_optimizers(tmp_path):
    torch.manual_seed(2)
    ref = Reference()
    ref.on_before_optimizer_step = lambda *a: None        # manual: take grads at the optimizers
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(40, 6)), batch_size=8)
    rec = Recorder(tmp_path / "run", weights="full", grads="full", activations="full")
    trainer = L.Trainer(max_epochs=1, log_every_n_steps=1, callbacks=[ref, PerOptimizerGrads(ref), rec],
                        **TRAINER)
    gan = GAN()
    d_calls = {}   # each training step's outputs of D's last layer, in call order
    gan.discriminator[2].register_forward_hook(lambda m, i, o: d_calls.setdefault(
        ref.updates[0] + 1, []).append(o.detach().clone()))
    trainer.fit(gan, data)
    r = nl.open_run(tmp_path / "run")
    assert ref.updates[0] == 5 and trainer.global_step == 10   # Lightning counts each optimizer
    assert_stream(r, "grads", ref.grads)
    assert_stream(r, "weights", ref.weights)
    assert {k: list(r[f"grads/{k}.0.weight"].steps) for k in ("generator", "discriminator")} == {
        "generator": [1, 2, 3, 4, 5], "discriminator": [1, 2, 3, 4, 5]}
    assert list(r.metrics.dropna(subset=["d_loss"])["step"]) == [1, 2, 3, 4, 5]
    # training_step calls the sub-modules, never the LightningModule itself: one training step
    # is one forward pass, and D, called 3 times in it (fake for G's loss, real, fake detached),
    # has one stream per call, each at the step of that batch
    for n, suffix in enumerate(("", ":2", ":3")):
        assert_stream(r, "activations", {k: {f"discriminator.2{suffix}": calls[n]} for k, calls in d_calls.items()})
    assert "activations/discriminator.2:4" not in r


def test_fit_that_raises_marks_the_run_failed(tmp_path):
    class Boom(LitClassifier):
        def training_step(self, batch, batch_idx):
            if batch_idx == 2:
                raise RuntimeError("boom at batch 2")
            return super().training_step(batch, batch_idx)

    trainer = L.Trainer(max_epochs=1, callbacks=[Recorder(tmp_path / "run", grads="full")], **TRAINER)
    with pytest.raises(RuntimeError, match="boom"):
        trainer.fit(Boom(), loader())
    r = nl.open_run(tmp_path / "run")
    assert r.status == "failed" and "boom" in r.manifest["exception"]["message"]
    assert list(r["grads/model.1.weight"].steps) == [1, 2]


def test_bad_options_fail_when_the_recorder_is_made(tmp_path):
    with pytest.raises(nl.NetlapseError, match="wieghts"):
        Recorder(tmp_path / "run", wieghts="full")
    with pytest.raises(nl.NetlapseError, match="capture mode"):
        Recorder(tmp_path / "run", grads="everything")


def test_fp16_scaler_skipped_update_is_not_a_step(tmp_path):
    """Lightning's own MixedPrecision plugin with a GradScaler (fp16 AMP), on the CPU; batch 2's
    loss overflows: the scaler skips that update, netlapse does not count it."""
    from lightning.pytorch.plugins.precision import MixedPrecision

    class Overflow(LitClassifier):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            return loss * float("inf") if batch_idx == 2 else loss

    torch.manual_seed(3)
    ref = Reference()
    plugin = MixedPrecision("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", init_scale=2.0 ** 8))
    rec = Recorder(tmp_path / "run", weights="full", grads="full")
    trainer = L.Trainer(max_epochs=1, limit_val_batches=0, plugins=[plugin], callbacks=[ref, rec],
                        **{**TRAINER, "enable_model_summary": False})
    trainer.fit(Overflow(), loader())
    r = nl.open_run(tmp_path / "run")
    assert ref.updates[0] == 5                               # 6 batches, one update skipped
    assert list(r["weights/model.1.weight"].steps) == list(range(6))
    assert_stream(r, "weights", ref.weights)
    assert_stream(r, "grads", ref.grads)     # unscaled (Lightning unscales before this hook)
    assert list(r.metrics.dropna(subset=["amp/skipped_updates"])["step"]) == [2]
    assert "step" not in plugin.scaler.__dict__
