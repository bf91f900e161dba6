"""nl.export.tensorboard / `netlapse export`: read back with TensorBoard's own EventAccumulator."""

import io
import sys

import numpy as np
import pytest
import torch

import netlapse as nl
from netlapse.cli import main
from netlapse.errors import NetlapseError

ea = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def _load(path):
    acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0,
                                                        ea.IMAGES: 0, ea.TENSORS: 0})
    return acc.Reload()


def _train(model, opt, run, x, y, steps):
    for _ in range(steps):
        opt.zero_grad()
        out = model(x)
        loss = torch.nn.functional.cross_entropy(out, y)
        loss.backward()
        opt.step()
        run.log(loss=loss.item())
        if run.step % 4 == 0:
            run.log(acc=(out.argmax(1) == y).float().mean().item())


def _check_against_store(acc, run_path, images=False):
    r = nl.open_run(run_path)
    tags = acc.Tags()
    assert sorted(tags["histograms"]) == r.streams()
    for name in r.streams():
        s = r[name]
        h = s.histograms
        got = acc.Histograms(name)
        assert [e.step for e in got] == s.steps.tolist()
        for i, e in enumerate(got):
            v = e.histogram_value
            np.testing.assert_array_equal(np.asarray(v.bucket), h.counts[i])     # not resampled
            np.testing.assert_array_equal(np.asarray(v.bucket_limit), h.edges(i)[1:])
            assert (v.min, v.max, v.num) == (h.lo[i], h.hi[i], h.counts[i].sum())
            assert v.sum_squares == pytest.approx(s.stats_array[i, 4] ** 2)
    m = r.metrics
    assert sorted(tags["scalars"]) == sorted(m.columns[1:])
    for col in m.columns[1:]:
        rows = m[["step", col]].dropna()
        got = acc.Scalars(col)
        assert [e.step for e in got] == rows["step"].tolist()
        np.testing.assert_array_equal(np.float32([e.value for e in got]), np.float32(rows[col]))
    full2d = [n for n in r.streams() if r[n].capture == "full" and len(r[n].shape) == 2]
    assert sorted(t for t in tags["images"]) == (sorted(f"{n}/image" for n in full2d) if images else [])
    return r


@pytest.fixture
def model_and_data():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(10, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    return model, opt, torch.randn(48, 10), torch.randint(0, 3, (48,))


def test_export_of_a_run_being_written_then_appending_only_new_steps(tmp_path, model_and_data):
    model, opt, x, y = model_and_data
    tb = tmp_path / "tb"
    run = nl.Run(tmp_path / "run")
    nl.watch(model, run, opt, weights="full", grads="stats", activations="stats")
    _train(model, opt, run, x, y, 6)
    run.flush()
    first = nl.export.tensorboard(tmp_path / "run", tb, images=True)   # the committed prefix
    (file1,) = tb.glob("events.out.tfevents.*")
    acc1 = _load(file1)
    r1 = _check_against_store(acc1, tmp_path / "run", images=True)
    assert first["histograms"] == sum(r1[n].length for n in r1.streams())
    # each image is that step's tensor, one tile per output unit (6 units of 10 inputs: 2x5
    # tiles, 3 per row, 1-pixel gaps, enlarged 8x): red where positive, blue where negative
    w = r1["weights/0.weight"]
    png = acc1.Images("weights/0.weight/image")[-1]
    from PIL import Image

    img = np.asarray(Image.open(io.BytesIO(png.encoded_image_string)).convert("RGB"), np.int64)
    tensor = w.at(int(w.steps[-1]))
    assert png.step == w.steps[-1] and img.shape == ((2 * 3 - 1) * 8, (3 * 6 - 1) * 8, 3)
    for unit in range(6):
        for j in range(10):
            y0 = (unit // 3) * 3 + j // 5
            x0 = (unit % 3) * 6 + j % 5
            r, g, b = img[y0 * 8 + 4, x0 * 8 + 4]
            v = tensor[unit, j] / np.abs(tensor).max()
            assert (r - b) * np.sign(v) >= 0 and abs(255 - g - abs(v) * (255 - (24 if v > 0 else 102))) <= 1

    _train(model, opt, run, x, y, 5)
    run.close()
    second = nl.export.tensorboard(run, tb, images=True)
    file2 = (set(tb.glob("events.out.tfevents.*")) - {file1}).pop()
    acc2 = _load(file2)                                    # the new file: only the new steps
    for name in r1.streams():
        assert min(e.step for e in acc2.Histograms(name)) > r1[name].steps[-1]
    assert min(e.step for e in acc2.Scalars("loss")) == 7
    r2 = _check_against_store(_load(tb), tmp_path / "run", images=True)   # together: everything once
    assert second["histograms"] == sum(r2[n].length - r1[n].length for n in r2.streams())
    # what TensorBoard's histogram dashboard reads (its own v1 -> v2 migration): each bucket's
    # left and right edges are the stored bin edges, its count the stored count
    from tensorboard.backend.event_processing import plugin_event_accumulator as pea
    from tensorboard.util import tensor_util

    acc = pea.EventAccumulator(str(tb), size_guidance={pea.TENSORS: 0}).Reload()
    for name in ("weights/2.weight", "grads/0.bias"):
        h = r2[name].histograms
        for i, e in enumerate(acc.Tensors(name)):
            buckets = tensor_util.make_ndarray(e.tensor_proto)
            edges = h.edges(i).astype(np.float32)
            np.testing.assert_array_equal(buckets, np.stack([edges[:-1], edges[1:], h.counts[i]], 1))
    third = nl.export.tensorboard(run, tb, images=True)
    assert third["scalars"] == third["histograms"] == 0 and len(list(tb.glob("events.*"))) == 2


def test_cli_export_and_its_errors(tmp_path, model_and_data, capsys):
    model, opt, x, y = model_and_data
    with nl.Run(tmp_path / "run") as run:
        nl.watch(model, run, opt, weights="stats", grads="stats")
        _train(model, opt, run, x, y, 4)
    assert main(["export", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")]) == 0
    out = capsys.readouterr().out
    r = nl.open_run(tmp_path / "run")   # one histogram per stored step of every stream
    hists = sum(len(r[n].steps) for n in r.streams())
    scalars = int(r.metrics.drop(columns="step").notna().to_numpy().sum())
    assert f"wrote {scalars} scalars, {hists} histograms" in out and "tensorboard --logdir" in out
    _check_against_store(_load(tmp_path / "tb"), tmp_path / "run")
    assert main(["export", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")]) == 0
    assert "up to date" in capsys.readouterr().out
    # another run into the same folder, or images added later: refused, with what to do
    with nl.Run(tmp_path / "other") as other:
        other.log(loss=1.0)
    assert main(["export", str(tmp_path / "other"), "--tensorboard", str(tmp_path / "tb")]) == 1
    assert "holds an export of" in capsys.readouterr().err
    with pytest.raises(NetlapseError, match="exported without images"):
        nl.export.tensorboard(tmp_path / "run", tmp_path / "tb", images=True)
    with pytest.raises(NetlapseError, match="Nearest"):
        nl.export.tensorboard(tmp_path / "run", tmp_path / "tb2", streams=["weights/0.weigth"])


def test_missing_tensorboard_gives_the_install_hint(tmp_path, monkeypatch, capsys):
    with nl.Run(tmp_path / "run") as run:
        run.log(loss=1.0)
    for mod in [m for m in sys.modules if m == "tensorboard" or m.startswith("tensorboard.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setitem(sys.modules, "tensorboard", None)     # import tensorboard -> ImportError
    assert main(["export", str(tmp_path / "run"), "--tensorboard", str(tmp_path / "tb")]) == 1
    assert "pip install 'netlapse[tensorboard]'" in capsys.readouterr().err
