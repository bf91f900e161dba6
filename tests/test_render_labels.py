"""Tick labels of the layer profile stay readable for deep models: a 6-layer BERT (built from a
BertConfig, no download) recorded by nl.watch and drawn by `netlapse render`."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("matplotlib")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

import netlapse as nl  # noqa: E402
from netlapse.cli import main as cli  # noqa: E402
from netlapse.render.spec import short_names  # noqa: E402


@pytest.fixture(scope="module")
def bert_run(tmp_path_factory):
    torch.manual_seed(0)
    cfg = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=6, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=16)
    model = transformers.BertModel(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    ids = torch.randint(0, 64, (2, 8))
    path = tmp_path_factory.mktemp("bert") / "run"
    with nl.Run(path) as run, nl.watch(model, run, optimizer=opt, weights="stats", grads="stats",
                                        activations="stats"):
        for _ in range(2):
            loss = model(input_ids=ids).last_hidden_state.pow(2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
    return path


def test_short_names_keep_the_shortest_unique_ending():
    assert short_names(["embeddings.word", "encoder.layer.0.attention.self.query",
                        "encoder.layer.1.attention.self.query", "encoder.layer.1.output.dense",
                        "pooler.dense"]) == ["word", "0.attention.self.query", "1.attention.self.query",
                                             "output.dense", "pooler.dense"]


def test_layer_profile_of_a_6_layer_bert_has_no_overlapping_labels(bert_run, tmp_path):
    out = tmp_path / "profile.png"
    assert cli(["render", str(bert_run), "layer_profile", "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000
    view = nl.views.layer_profile(bert_run)
    assert len(view.layers) > 30   # 3 embeddings + 6 x (q, k, v, 3 dense)
    fig = nl.plot.layer_profile(bert_run)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    fig_box = fig.bbox
    for ax in fig.axes:
        labels = [t for t in ax.get_xticklabels() if t.get_text()]
        assert [t.get_text() for t in labels] == short_names(view.layers)
        boxes = [t.get_window_extent(renderer) for t in labels]
        for a, b in zip(boxes, boxes[1:]):   # neighbours left to right, not overlapping
            assert a.x1 <= b.x0 + 0.5, (a, b)
        for box in boxes:                    # and inside the picture
            assert fig_box.x0 <= box.x0 and box.x1 <= fig_box.x1 and fig_box.y0 <= box.y0
    # the plotted values are the store's: mean |grad| of the first layer at the last step
    line = fig.axes[0].get_lines()[0]
    np.testing.assert_allclose(line.get_ydata(), view.grad[-1], rtol=1e-12)
