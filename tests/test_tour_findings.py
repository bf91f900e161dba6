"""Each tour scene reproduces its seed's finding; the numbers are read back from the recorded runs.

The scenes run in quick mode without pictures (the pictures are checked in test_tour_demo.py).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import netlapse as nl  # noqa: E402
from netlapse.tour import deep_saturation, digit_filters, poly_fit, rings, single_neuron  # noqa: E402


def test_single_neuron_weights_reach_one(tmp_path):
    res = single_neuron.run(tmp_path, quick=True, draw=False)
    r = nl.open_run(res["runs"][0])
    w = r["weights/0.weight"]
    # the recorded last step is the model's final weight, exactly
    np.testing.assert_array_equal(w.at(-1).ravel(), res["weights"])
    assert np.all(np.abs(w.at(-1) - 1.0) < 0.05), w.at(-1)
    assert np.all(np.abs(w.at(0) - 1.0) > 0.05), "the weights should start away from 1"
    assert res["loss_before"] / res["loss_after"] >= 100
    assert r.metrics["eval_loss_after"].dropna().iloc[-1] == pytest.approx(res["loss_after"])
    assert len(w.steps) == single_neuron.EPOCHS * 16 + 1   # every step, plus step 0


def test_single_neuron_is_repeatable(tmp_path):
    a = single_neuron.run(tmp_path / "a", quick=True, draw=False)
    b = single_neuron.run(tmp_path / "b", quick=True, draw=False)
    ha = nl.open_run(a["runs"][0])["weights/0.weight"].history()
    hb = nl.open_run(b["runs"][0])["weights/0.weight"].history()
    np.testing.assert_array_equal(ha, hb)


def test_digit_filters_accuracy_and_maps_look_like_digits(tmp_path):
    res = digit_filters.run(tmp_path, quick=True, draw=False)
    assert res["findings"]["accuracy_end"] >= 0.85
    assert res["findings"]["accuracy_epoch1"] >= 0.80
    r = nl.open_run(res["runs"][0])
    s = r["weights/0.weight"]
    assert s.shape == (10, 784)
    assert np.all(s.at(0) == 0), "zero initial weights, as in seed 001"
    assert list(s.steps[:3]) == [0, 5, 10]     # every 5 batches, as in seed 003
    # "looks like digits": each class's map correlates best with that class's mean image
    from netlapse.datasets import load_mnist

    x, y, _, _, _ = load_mnist()
    means = np.stack([x[y == k].mean(0) for k in range(10)])
    means -= means.mean(0)
    w = s.at(-1)
    corr = np.corrcoef(np.concatenate([w, means]))[:10, 10:]
    assert np.all(corr.argmax(axis=1) == np.arange(10)), corr.round(2)
    assert np.all(np.diag(corr) > 0.3), np.diag(corr).round(2)
    acc = r.metrics["test_accuracy"].dropna().to_numpy()
    np.testing.assert_allclose(acc, res["accuracy"])


def test_deep_saturation_gradients_vanish_with_stddev_200(tmp_path):
    res = deep_saturation.run(tmp_path, quick=True, draw=False)
    tanh200, sane = res["findings"]["tanh, stddev 200"], res["findings"]["tanh, Xavier"]
    assert tanh200["grad_last"] > 0.1
    assert tanh200["grad_first"] <= 1e-3 * tanh200["grad_last"]      # orders of magnitude below
    assert sane["ratio_first_last"] > 1e-2                          # same order with a sane init
    # the recorded stats equal the gradient computed independently for the same first batch
    rng = np.random.default_rng(0)
    rng.standard_normal((1, 20))
    x = torch.from_numpy(rng.standard_normal((deep_saturation.QUICK_STEPS * 32, 20)).astype(np.float32))
    y = torch.sin(x[:32, :3].sum(1, keepdim=True))
    model = deep_saturation.build("tanh", "xavier", seed=0)
    torch.nn.functional.mse_loss(model(x[:32]), y).backward()
    want = [m.weight.grad.abs().mean().item() for m in model if isinstance(m, torch.nn.Linear)]
    got = deep_saturation.layer_grads(res["runs"][1], step=1)
    np.testing.assert_allclose(got, want, rtol=1e-5)
    # one-example activations: the tanh units of the stddev-200 net are saturated (|a| ~ 1)
    r = nl.open_run(res["runs"][0])
    tanh_out = np.concatenate([r[f"probe/{i}"].at(0) for i in range(3, 2 * deep_saturation.LAYERS, 2)])
    assert tanh_out.shape == (deep_saturation.LAYERS - 1, 20)
    assert np.mean(np.abs(tanh_out) > 0.999) > 0.95
    sane = nl.open_run(res["runs"][1])
    sane_out = np.concatenate([sane[f"probe/{i}"].at(0) for i in range(3, 2 * deep_saturation.LAYERS, 2)])
    assert np.mean(np.abs(sane_out) > 0.999) < 0.05
    # the doctor's verdict per variant, as the tour prints it and the gallery shows it
    bad, good = tanh200["doctor"], res["findings"]["tanh, Xavier"]["doctor"]
    kinds = {p["kind"]: p["layers"] for p in bad["problems"]}
    assert set(kinds) == {"vanishing_gradients", "saturated_units"}
    assert {f"{i}.weight" for i in range(0, 16, 2)} <= set(kinds["vanishing_gradients"])
    assert kinds["saturated_units"] == [str(i) for i in range(3, 2 * deep_saturation.LAYERS, 2)]
    assert good["ok"] and not good["problems"]
    assert "Doctor: tanh, stddev 200: vanishing_gradients" in res["summary"]
    assert "tanh, Xavier: healthy" in res["summary"]


def test_poly_fit_width_beats_narrow(tmp_path):
    res = poly_fit.run(tmp_path, quick=True, draw=False)
    mse = res["findings"]["test_mse"]
    assert mse["1-6-1"] < mse["1-2-1"]
    r = nl.open_run(res["runs"][1])
    assert r.config["arch"] == "1-6-1"
    # the recorded output on the probe at the last step gives the same error
    out = r["probe/2"].at(-1)
    target = r["inputs/probe_target"].at(0)
    assert float(np.mean((out - target) ** 2)) == pytest.approx(mse["1-6-1"], rel=1e-5)
    assert len(r["probe/2"].steps) == poly_fit.QUICK_EPOCHS + 1


def test_rings_three_units_separate_one_cannot(tmp_path):
    res = rings.run(tmp_path, quick=True, draw=False)
    acc = res["findings"]["accuracy"]
    assert acc["2-3-2-1"] >= 0.95
    assert acc["2-1-2-1"] < 0.95
    r = nl.open_run(res["runs"][1])
    layout = r.config["probe_layout"]
    lo, hi = layout["data"]
    out = r["probe/5"].at(-1)[lo:hi]          # 2-3-2-1: leaves 0..5, "5" is the sigmoid
    labels = r["inputs/probe_target"].at(0)[lo:hi]
    assert np.mean((out > 0.5) == (labels > 0.5)) >= 0.95
    hidden = r[f"probe/{r.config['hidden_layer']}"]
    assert hidden.shape[-1] == 2
    assert len(hidden.steps) == 2 * rings.QUICK_EPOCHS + 1       # two frames per epoch, plus step 0
