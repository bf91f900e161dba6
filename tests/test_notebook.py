"""examples/notebook.ipynb executed headless by nbclient in a real ipykernel.

The kernel imports this checkout's netlapse (its root goes first on PYTHONPATH). Every iopub
message of the run is recorded by the client, so the live display's ``update_display_data``
messages sent while the training cell ran are checked one by one.
"""

import base64
import html
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

import netlapse as nl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "examples" / "notebook.ipynb"


class RecordingClient(nbclient.NotebookClient):
    """A NotebookClient that keeps every iopub message it processes, with its cell's index."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.messages = []

    def process_message(self, msg, cell, cell_index):
        self.messages.append((cell_index, msg))
        return super().process_message(msg, cell, cell_index)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    work = tmp_path_factory.mktemp("notebook")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell("import netlapse; print(netlapse.__file__)"))
    env_before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env_before) if p)
    try:
        client = RecordingClient(nb, timeout=300, kernel_name="python3",
                                 resources={"metadata": {"path": str(work)}})
        client.execute()
    finally:
        if env_before is None:
            os.environ.pop("PYTHONPATH")
        else:
            os.environ["PYTHONPATH"] = env_before
    return nb, client.messages, work


def _cell(nb, needle):
    (i,) = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and needle in c.source]
    return i, nb.cells[i]


def _png_of_plot(fig, dpi=72) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def test_the_kernel_ran_this_checkouts_netlapse(executed):
    nb, _, _ = executed
    assert nb.cells[-1].outputs[0]["text"].strip() == str(ROOT / "netlapse" / "__init__.py")


def test_live_display_updated_during_training_with_a_new_picture_each_time(executed):
    nb, messages, work = executed
    i, cell = _cell(nb, "nl.live(")
    shown = [m for ci, m in messages if ci == i and m["msg_type"] == "display_data"]
    assert len(shown) == 1
    live_id = shown[0]["content"]["transient"]["display_id"]
    updates = [m["content"] for ci, m in messages
               if ci == i and m["msg_type"] == "update_display_data"]
    assert updates and all(u["transient"]["display_id"] == live_id for u in updates)
    pictures = [base64.b64decode(u["data"]["image/png"]) for u in updates if "image/png" in u["data"]]
    assert len(pictures) >= 3 and len(pictures) == len(updates)
    assert len(set(pictures)) == len(pictures)                   # each update a new picture
    # the last picture is the run's last recorded step, drawn from the store
    run = nl.open_run(work / "runs" / "notebook-mnist")
    stream = "weights/linear.weight"
    expected = _png_of_plot(nl.plot.weight_images(run, stream, image=(28, 28), vmax=0.25))
    assert pictures[-1] == expected
    assert f"step {run[stream].steps[-1]}" in updates[-1]["data"]["text/plain"]
    # the saved notebook holds the final picture in the live display's output
    out = [o for o in cell.outputs if o["output_type"] == "display_data"]
    assert base64.b64decode(out[0]["data"]["image/png"]) == expected
    assert f"replaced {len(updates)} times" in "".join(o.get("text", "") for o in cell.outputs)


def test_plot_animation_and_summaries_show_inline(executed):
    nb, _, work = executed
    run = nl.open_run(work / "runs" / "notebook-mnist")
    stream = "weights/linear.weight"
    _, plot_cell = _cell(nb, "nl.plot.weight_images(")
    assert "image/png" in plot_cell.outputs[0]["data"]
    _, anim_cell = _cell(nb, "nl.animate.weight_images(")
    page = anim_cell.outputs[0]["data"]["text/html"]
    assert page.startswith("<iframe srcdoc=") and 'data-netlapse-player="40"' in page
    src = html.unescape(re.search(r'srcdoc="([^"]*)"', page).group(1))
    doc = json.loads(re.search(r'id="netlapse-data">(.*?)</script>', src, re.S).group(1)
                     .replace("<\\/", "</"))
    anim = nl.animate.weight_images(run, stream, image=(28, 28), vmax=0.25, max_frames=40)
    assert doc["steps"] == [int(s) for s in anim.frames]
    (summary_cell,) = [c for c in nb.cells if c.source == "r"]
    summary = summary_cell.outputs[0]["data"]["text/html"]
    assert "netlapse run" in summary and "finished" in summary
    assert f"0..{run[stream].steps[-1]} ({len(run[stream].steps)})" in summary
    assert "test_accuracy" in summary and "<polyline" in summary
    _, stream_cell = _cell(nb, 'r["grads/linear.weight"]')
    text = stream_cell.outputs[0]["data"]["text/html"]
    assert "grads/linear.weight" in text and "10×784" in text
    np.testing.assert_allclose(float(re.search(r"norm<br><b>([^<]+)</b>", text).group(1)),
                               run["grads/linear.weight"].stats_array[-1][4], rtol=1e-3)
