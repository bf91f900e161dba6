"""netlapse.transformers.Recorder inside a real transformers.Trainer (a tiny GPT-2 built from a
config, no download): every stored tensor equals a copy the test takes through the Trainer's own
callback events (on_pre_optimizer_step: after clipping; on_optimizer_step: after the update)."""
import numpy as np
import pytest
import torch

transformers = pytest.importorskip("transformers")

import netlapse as nl  # noqa: E402
from netlapse.transformers import Recorder  # noqa: E402


def tiny_gpt2(seed=0):
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=40, n_positions=16, n_embd=16, n_layer=1, n_head=2,
                                  resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return transformers.GPT2LMHeadModel(cfg)


class Tokens(torch.utils.data.Dataset):
    def __init__(self, n=32, length=12, seed=0):
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(0, 40, (n, length), generator=g)

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, i):
        return {"input_ids": self.ids[i], "labels": self.ids[i]}


class Reference(transformers.TrainerCallback):
    def __init__(self):
        self.grads, self.weights = {}, {}

    def on_train_begin(self, args, state, control, model=None, **kw):
        self.weights[0] = {n: p.detach().clone() for n, p in model.named_parameters()}

    def on_pre_optimizer_step(self, args, state, control, model=None, **kw):
        self.grads[state.global_step + 1] = {n: p.grad.detach().clone()
                                             for n, p in model.named_parameters() if p.grad is not None}

    def on_optimizer_step(self, args, state, control, model=None, **kw):
        self.weights[state.global_step + 1] = {n: p.detach().clone() for n, p in model.named_parameters()}


def args(tmp_path, **kw):
    base = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=4,
                gradient_accumulation_steps=2, max_grad_norm=0.05, learning_rate=1e-2, logging_steps=1,
                eval_strategy="steps", eval_steps=2, per_device_eval_batch_size=8, report_to=[],
                save_strategy="no", use_cpu=True, disable_tqdm=True, dataloader_num_workers=0, seed=3)
    return transformers.TrainingArguments(**{**base, **kw})


def assert_stream(r, kind, ref):
    for name in {n for per in ref.values() for n in per}:
        s = r[f"{kind}/{name}"]
        want = sorted(k for k, per in ref.items() if name in per)
        assert list(s.steps) == want, (kind, name)
        for k in want:
            np.testing.assert_array_equal(s.at(k), ref[k][name].numpy(), err_msg=f"{kind}/{name}@{k}")


def test_trainer_clipping_accumulation_metrics_config(tmp_path):
    ref = Reference()
    model = tiny_gpt2()
    trainer = transformers.Trainer(model=model, args=args(tmp_path), train_dataset=Tokens(),
                                   eval_dataset=Tokens(8, seed=1),
                                   callbacks=[ref, Recorder(tmp_path / "run", weights="full", grads="full")])
    trainer.train()
    r = nl.open_run(tmp_path / "run")
    assert r.status == "finished" and trainer.state.global_step == 4
    assert_stream(r, "grads", ref.grads)                 # clipped, summed over 2 micro-batches
    assert_stream(r, "weights", ref.weights)
    norm = np.sqrt(sum((r[f"grads/{n}"].at(1).astype(np.float64) ** 2).sum() for n in ref.grads[1]))
    assert norm == pytest.approx(0.05, rel=1e-3)         # max_grad_norm took effect
    assert "lm_head.weight" not in ref.weights[0] and "weights/transformer.wte.weight" in r
    m = r.metrics
    logged = [h for h in trainer.state.log_history if "loss" in h]
    got = m.dropna(subset=["loss"])
    assert list(got["step"]) == [h["step"] for h in logged] == [1, 2, 3, 4]
    np.testing.assert_allclose(got["loss"], [h["loss"] for h in logged], rtol=1e-6)
    np.testing.assert_allclose(got["grad_norm"], [h["grad_norm"] for h in logged], rtol=1e-6)
    evals = [h for h in trainer.state.log_history if "eval_loss" in h]
    got_eval = m.dropna(subset=["eval_loss"])
    assert list(got_eval["step"]) == [h["step"] for h in evals] == [2, 4]
    np.testing.assert_allclose(got_eval["eval_loss"], [h["eval_loss"] for h in evals], rtol=1e-6)
    assert r.config["args.max_grad_norm"] == 0.05 and r.config["args.gradient_accumulation_steps"] == 2
    assert r.config["model_type"] == "gpt2"


def test_trainer_with_an_open_run(tmp_path):
    model = tiny_gpt2(1)
    with nl.Run(tmp_path / "run", config={"who": "me"}) as run:
        trainer = transformers.Trainer(model=model, args=args(tmp_path, max_steps=2, eval_strategy="no"),
                                       train_dataset=Tokens(16),
                                       callbacks=[Recorder(run, grads="stats", include="transformer.h.*")])
        trainer.train()
        assert run.step == 2 and not run.closed
    r = nl.open_run(tmp_path / "run")
    assert r.config["who"] == "me" and r.config["args.max_steps"] == 2
    assert r.streams("grads") and all(s.startswith("grads/transformer.h.") for s in r.streams("grads"))
    assert list(r["grads/transformer.h.0.mlp.c_fc.weight"].stats["step"]) == [1, 2]
