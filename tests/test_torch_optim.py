"""The optimizer side of nl.watch: closures, wrapped optimizers, several optimizers and models, AMP.

Every stored tensor is compared with a copy the test takes itself at the same moment, through
the optimizer's own hooks or inside the user's closure.
"""
import numpy as np
import pytest
import torch
from torch import nn

import netlapse as nl
from netlapse import NetlapseError


def mlp(seed=0, d_in=6, hidden=8, d_out=3):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, d_out))


def batches(n, seed=1, d_in=6, d_out=3, size=8):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(size, d_in, generator=g), torch.randn(size, d_out, generator=g))
            for _ in range(n)]


def copies(params):
    return {n: p.detach().clone() for n, p in params}


def grad_copies(params):
    return {n: p.grad.detach().clone() for n, p in params if p.grad is not None}


def assert_stream(r, kind, ref, prefix=""):
    """Every step of ref {step: {name: tensor}} equals the stored full stream, and nothing else."""
    names = {n for per in ref.values() for n in per}
    for n in names:
        s = r[f"{kind}/{prefix}{n}"]
        want = sorted(k for k, per in ref.items() if n in per)
        assert list(s.steps) == want, (kind, n)
        for k in want:
            np.testing.assert_array_equal(s.at(k), ref[k][n].numpy(), err_msg=f"{kind}/{n} step {k}")


def weight_hook(model, ref, counter):
    """The optimizer's own post-step hook: weights after each update."""
    def hook(opt, args, kwargs):
        counter[0] += 1
        ref[counter[0]] = copies(model.named_parameters())
    return hook


def test_closure_grads_are_the_ones_the_update_used(tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    grads_ref, weights_ref, count = {}, {0: copies(model.named_parameters())}, [0]
    opt.register_step_post_hook(weight_hook(model, weights_ref, count))
    with nl.Run(tmp_path / "run") as run:
        nl.watch(model, run, opt, weights="full", grads="full")
        for k, (x, y) in enumerate(batches(5), start=1):
            def closure():
                opt.zero_grad()
                loss = nn.functional.mse_loss(model(x), y)
                loss.backward()
                grads_ref[k] = grad_copies(model.named_parameters())
                return loss
            opt.step(closure)
        assert run.step == 5
    r = nl.open_run(tmp_path / "run")
    assert_stream(r, "grads", grads_ref)            # step 1 has grads, each step its own
    assert_stream(r, "weights", weights_ref)


def test_lbfgs_stores_the_first_closure_call(tmp_path):
    model = mlp(d_out=1)
    opt = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=3, history_size=4)
    grads_ref, calls, weights_ref, count = {}, {}, {0: copies(model.named_parameters())}, [0]
    opt.register_step_post_hook(weight_hook(model, weights_ref, count))
    with nl.Run(tmp_path / "run") as run:
        nl.watch(model, run, opt, weights="full", grads="full")
        for k, (x, y) in enumerate(batches(3, d_out=1), start=1):
            def closure():
                opt.zero_grad()
                loss = nn.functional.mse_loss(model(x), y)
                loss.backward()
                calls[k] = calls.get(k, 0) + 1
                grads_ref.setdefault(k, grad_copies(model.named_parameters()))
                return loss
            opt.step(closure)
    assert all(c > 1 for c in calls.values())       # LBFGS evaluated again at other weights
    r = nl.open_run(tmp_path / "run")
    assert_stream(r, "grads", grads_ref)
    assert_stream(r, "weights", weights_ref)


def test_accelerate_prepared_objects_and_lightning_optimizer_are_unwrapped(tmp_path):
    accelerate = pytest.importorskip("accelerate")
    from lightning.pytorch.core.optimizer import LightningOptimizer

    model = mlp()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    data = torch.utils.data.TensorDataset(*map(torch.cat, zip(*batches(4))))
    accelerator = accelerate.Accelerator(cpu=True, gradient_accumulation_steps=2)
    model, opt_p, loader = accelerator.prepare(model, opt, torch.utils.data.DataLoader(data, batch_size=8))
    assert type(opt_p).__name__ == "AcceleratedOptimizer"
    grads_ref, weights_ref, count = {}, {0: copies(model.named_parameters())}, [0]
    opt.register_step_pre_hook(lambda o, a, kw: grads_ref.__setitem__(
        count[0] + 1, grad_copies(model.named_parameters())))
    opt.register_step_post_hook(weight_hook(model, weights_ref, count))
    with nl.Run(tmp_path / "run") as run:
        w = nl.watch(model, run, opt_p, weights="full", grads="full")
        assert w.optimizer is opt
        for x, y in loader:
            with accelerator.accumulate(model):      # steps on every 2nd batch only
                accelerator.backward(nn.functional.mse_loss(model(x), y))
                opt_p.step()
                opt_p.zero_grad()
    with nl.Run(tmp_path / "run2") as run2:
        assert nl.watch(model, run2, LightningOptimizer(opt)).optimizer is opt
    r = nl.open_run(tmp_path / "run")
    assert sorted(r.streams("weights")) == ["weights/0.bias", "weights/0.weight",
                                            "weights/2.bias", "weights/2.weight"]
    assert count[0] == 2
    assert_stream(r, "grads", grads_ref)
    assert_stream(r, "weights", weights_ref)


def test_anything_else_is_refused_at_watch(tmp_path):
    class Holder:
        optimizer = "sgd"

    with nl.Run(tmp_path / "run") as run:
        for bad, named in (("sgd", "str"), (Holder(), "Holder -> str"), ([], "empty")):
            with pytest.raises(NetlapseError, match=named) as e:
                nl.watch(mlp(), run, bad)
            if bad != []:
                assert "torch.optim.Optimizer" in str(e.value) and "AcceleratedOptimizer" in str(e.value)


def test_two_optimizers_one_model(tmp_path):
    """Adam for matrices, SGD for biases; the SGD grads are halved between the two updates."""
    model = mlp()
    mats = [p for p in model.parameters() if p.ndim == 2]
    vecs = [p for p in model.parameters() if p.ndim == 1]
    opt_a, opt_b = torch.optim.Adam(mats, lr=1e-2), torch.optim.SGD(vecs, lr=0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    grads_ref, weights_ref, count = {}, {0: copies(model.named_parameters())}, [0]

    def pre(opt, args, kwargs):   # each optimizer's own pre-hook: the grads it is about to use
        per = grads_ref.setdefault(count[0] + 1, {})
        per.update({names[id(p)]: p.grad.clone() for g in opt.param_groups for p in g["params"]})
    for o in (opt_a, opt_b):
        o.register_step_pre_hook(pre)
    opt_b.register_step_post_hook(weight_hook(model, weights_ref, count))
    with nl.Run(tmp_path / "run") as run:
        nl.watch(model, run, optimizer=[opt_a, opt_b], weights="full", grads="full")
        for k, (x, y) in enumerate(batches(4), start=1):
            opt_a.zero_grad(); opt_b.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt_a.step()
            assert run.step == k - 1                     # not complete until both stepped
            for p in vecs:
                p.grad.mul_(0.5)
            opt_b.step()
            assert run.step == k
    r = nl.open_run(tmp_path / "run")
    assert_stream(r, "grads", grads_ref)
    assert_stream(r, "weights", weights_ref)
    with nl.Run(tmp_path / "run2") as run, pytest.raises(NetlapseError, match="twice"):
        nl.watch(model, run, optimizer=[opt_a, opt_a])


class Generator(nn.Module):
    def __init__(self, nz=4, out=6):
        super().__init__()
        self.main = nn.Sequential(nn.Linear(nz, 16), nn.ReLU(), nn.Linear(16, out), nn.Tanh())

    def forward(self, z):
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self, d_in=6):
        super().__init__()
        self.main = nn.Sequential(nn.Linear(d_in, 16), nn.LeakyReLU(0.2), nn.Linear(16, 1))

    def forward(self, x):
        return self.main(x).view(-1)


def test_gan_two_named_watchers_never_mix(tmp_path):
    """The PyTorch DCGAN example's loop (tiny linear nets): D then G each iteration."""
    torch.manual_seed(0)
    G, D = Generator(), Discriminator()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.5, 0.999))
    ref = {m: {"grads": {}, "weights": {0: copies(net.named_parameters())}, "n": [0]}
           for m, net in (("G", G), ("D", D))}
    for m, net, opt in (("G", G, opt_g), ("D", D, opt_d)):
        opt.register_step_pre_hook(lambda o, a, kw, m=m, net=net: ref[m]["grads"].__setitem__(
            ref[m]["n"][0] + 1, grad_copies(net.named_parameters())))
        opt.register_step_post_hook(weight_hook(net, ref[m]["weights"], ref[m]["n"]))
    last_d_out, d_acts = [None], {}      # D's last output (a forward hook) when D's update begins
    D.main[2].register_forward_hook(lambda m, i, o: last_d_out.__setitem__(0, o.detach().clone()))
    opt_d.register_step_pre_hook(lambda o, a, kw: d_acts.__setitem__(
        ref["D"]["n"][0] + 1, {"main.2": last_d_out[0]}))
    bce = nn.BCEWithLogitsLoss()
    real_data = torch.randn(40, 6)
    with nl.Run(tmp_path / "run") as run:
        wg = nl.watch(G, run, opt_g, name="G", weights="full", grads="full")
        wd = nl.watch(D, run, opt_d, name="D", weights="full", grads="full", activations="full")
        with pytest.raises(NetlapseError, match="name="):
            nl.watch(mlp(), run, None)
        with pytest.raises(NetlapseError, match="already used"):
            nl.watch(mlp(), run, None, name="G")
        for it in range(5):
            real = real_data[it * 8:(it + 1) * 8]
            D.zero_grad()
            bce(D(real), torch.ones(8)).backward()
            fake = G(torch.randn(8, 4))
            d_fake = D(fake.detach())
            bce(d_fake, torch.zeros(8)).backward()
            opt_d.step()
            G.zero_grad()
            bce(D(fake), torch.ones(8)).backward()
            opt_g.step()
            assert (wg.steps_taken, wd.steps_taken, run.step) == (it + 1, it + 1, it + 1)
            np.testing.assert_array_equal(d_acts[it + 1]["main.2"].view(-1), d_fake.detach())
            run.log(step=run.step, it=it)
    r = nl.open_run(tmp_path / "run")
    assert set(r.manifest["models"]) == {"G", "D"}
    assert r.manifest["models"]["D"]["type"] == "Discriminator"
    assert not [s for s in r.streams() if s.split("/")[1] not in ("G", "D")]
    for m in ("G", "D"):
        assert_stream(r, "grads", ref[m]["grads"], prefix=f"{m}/")
        assert_stream(r, "weights", ref[m]["weights"], prefix=f"{m}/")
    assert list(r.metrics["step"]) == [1, 2, 3, 4, 5]
    # D's activations at step k: its own pass on the fake batch of update k (the last training
    # forward before it), not the generator step's pass through D that follows the update
    assert_stream(r, "activations", d_acts, prefix="D/")
    # views order several models' layers model by model, in each model's own order
    from netlapse.views import layer_profile
    lp = layer_profile(r, 5)
    assert lp.layers == ["G/main.0", "G/main.2", "D/main.0", "D/main.2"]
    for i, layer in enumerate(lp.layers):
        net, mod = layer.split("/")
        np.testing.assert_allclose(lp.grad[0, i], np.abs(ref[net]["grads"][5][f"{mod}.weight"].numpy()).mean(),
                                   rtol=1e-5)


def test_amp_grads_unscaled_and_skipped_update_is_not_a_step(tmp_path):
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0 ** 10)
    grads_ref, weights_ref, count = {}, {0: copies(model.named_parameters())}, [0]
    scaled = {}
    opt.register_step_pre_hook(lambda o, a, kw: grads_ref.__setitem__(
        count[0] + 1, grad_copies(model.named_parameters())))   # inside scaler.step, unscaled
    opt.register_step_post_hook(weight_hook(model, weights_ref, count))
    with nl.Run(tmp_path / "run") as run:
        w = nl.watch(model, run, opt, weights="full", grads="full", scaler=scaler)
        for it, (x, y) in enumerate(batches(5)):
            opt.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model(x)
            loss = nn.functional.mse_loss(out.float(), y)
            if it == 2:
                loss = loss * float("inf")                  # planted overflow
            scaler.scale(loss).backward()
            scaled[it] = model[0].weight.grad.clone()
            scaler.step(opt)
            scaler.update()
        assert run.step == 4 and w.skipped_updates == 1
        w.close()
        assert "step" not in scaler.__dict__                # the scaler is as it was
    r = nl.open_run(tmp_path / "run")
    assert_stream(r, "grads", grads_ref)
    assert_stream(r, "weights", weights_ref)
    np.testing.assert_allclose(r["grads/0.weight"].at(1) * 2.0 ** 10, scaled[0].numpy(), rtol=1e-6)
    m = r.metrics
    assert list(m["step"]) == [2] and list(m["amp/skipped_updates"]) == [1.0]
