"""nl.live in a real IPython shell (its own display machinery, capturing what is published):
driven by ``sync()`` and thread joins, never by sleeping."""

import base64

import numpy as np
import pytest

import netlapse as nl
from netlapse.errors import NetlapseError

pytest.importorskip("IPython")


@pytest.fixture
def shell():
    from IPython.core.displaypub import CapturingDisplayPublisher
    from IPython.core.interactiveshell import InteractiveShell

    sh = InteractiveShell.instance()
    sh.display_pub = CapturingDisplayPublisher()
    yield sh
    InteractiveShell.clear_instance()


def _outputs(shell, live):
    did = live._handle.display_id
    return [o for o in shell.display_pub.outputs if (o["transient"] or {}).get("display_id") == did]


def _png(output) -> bytes:
    return base64.b64decode(output["data"]["image/png"])


def _expected(path, view, dpi=72, **args) -> bytes:
    import io

    fig = getattr(nl.plot, view)(nl.open_run(path), **args)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def _weights(step):
    rng = np.random.default_rng(step)
    return rng.normal(size=(3, 16)).astype(np.float32) * (1 + step)


def test_live_redraws_only_after_new_commits_and_shows_the_stores_picture(shell, tmp_path):
    run = nl.Run(tmp_path / "r")
    run.record_array("weights/w", _weights(0), step=0)
    run.flush()
    live = nl.live(run, "weight_images", stream="weights/w", every_s=3600)
    try:
        outs = _outputs(shell, live)
        assert len(outs) == 1 and not outs[0]["update"]          # shown at once, in the cell
        assert _png(outs[0]) == _expected(tmp_path / "r", "weight_images", stream="weights/w")
        assert live.sync() and live.sync()                       # nothing new committed:
        assert live.draws == 1 and len(_outputs(shell, live)) == 1   # no redraw, no update
        for step in (1, 2, 3):
            run.record_array("weights/w", _weights(step), step=step)
            assert live.sync()                                   # flushes, then the thread checks
            outs = _outputs(shell, live)
            assert len(outs) == step + 1 and outs[-1]["update"] and live.updates == step
            assert _png(outs[-1]) == _expected(tmp_path / "r", "weight_images", stream="weights/w")
        assert len({_png(o) for o in _outputs(shell, live)}) == 4   # each picture differs
        run.log(loss=1.0)               # a new commit that does not change this picture:
        assert live.sync()              # drawn again, but the picture is not replaced
        assert live.draws == 5 and live.updates == 3
    finally:
        run.close()
        live.stop()


def test_live_stops_by_itself_when_the_run_closes(shell, tmp_path):
    run = nl.Run(tmp_path / "r")
    run.record_array("weights/w", _weights(0), step=0)
    run.flush()
    live = nl.live(str(tmp_path / "r"), "weight_images", stream="weights/w", every_s=0.02)
    assert live.running
    run.record_array("weights/w", _weights(1), step=1)
    run.close()
    live._thread.join(timeout=60)           # returns as soon as the thread has ended
    assert not live.running and live.error is None
    last = _outputs(shell, live)[-1]
    assert _png(last) == _expected(tmp_path / "r", "weight_images", stream="weights/w")
    assert "step 1" in last["data"]["text/plain"]


def test_live_stops_keeping_its_picture_when_the_run_is_overwritten(shell, tmp_path):
    run = nl.Run(tmp_path / "r")
    run.record_array("weights/w", _weights(0), step=0)
    run.flush()
    live = nl.live(run, "weight_images", stream="weights/w", every_s=3600)
    first = _png(_outputs(shell, live)[0])
    run.close()
    with nl.Run(tmp_path / "r", overwrite=True) as again:     # the cell is run once more
        again.record_array("weights/w", _weights(7), step=0)
    assert live.sync()
    assert live.replaced and not live.running and live.updates == 0
    assert _png(_outputs(shell, live)[-1]) == first


def test_several_live_views_at_once_and_stop(shell, tmp_path):
    run = nl.Run(tmp_path / "r")
    run.record_array("weights/w", _weights(0), step=0)
    run.flush()
    a = nl.live(run, "weight_images", stream="weights/w", every_s=3600)
    b = nl.live(run, "distributions", stream="weights/w", every_s=3600)
    assert a._handle.display_id != b._handle.display_id
    run.record_array("weights/w", _weights(1), step=1)
    assert a.sync() and b.sync()
    assert (a.updates, b.updates) == (1, 1)
    assert _png(_outputs(shell, b)[-1]) == _expected(tmp_path / "r", "distributions", stream="weights/w")
    a.stop()
    assert not a.running and b.running
    run.record_array("weights/w", _weights(2), step=2)
    assert a.sync() and b.sync()
    assert (a.updates, b.updates) == (1, 2)
    run.close()
    b.stop()


def test_live_waits_for_a_stream_not_recorded_yet(shell, tmp_path):
    run = nl.Run(tmp_path / "r")
    live = nl.live(run, "weight_images", stream="weights/w", every_s=3600)
    first = _outputs(shell, live)[0]["data"]
    assert "image/png" not in first and "no stream 'weights/w'" in first["text/plain"]
    run.record_array("weights/w", _weights(0), step=0)
    assert live.sync()
    assert _png(_outputs(shell, live)[-1]) == _expected(tmp_path / "r", "weight_images", stream="weights/w")
    run.close()
    live.stop()


def test_live_refuses_unknown_views_and_plain_scripts(tmp_path):
    run = nl.Run(tmp_path / "r")
    with pytest.raises(NetlapseError, match="nl.live shows one of: trajectories"):
        nl.live(run, "weights")
    with pytest.raises(NetlapseError, match="none is running here"):
        nl.live(run, "weight_images", stream="weights/w")
    run.close()


def test_live_compare_of_several_runs(shell, tmp_path):
    runs = [nl.Run(tmp_path / f"r{k}") for k in range(2)]
    for k, run in enumerate(runs):
        run.record_array("weights/w", _weights(k), step=0)
    live = nl.live(runs, "compare", compare_view="weight_images", stream="weights/w", every_s=3600)
    for k, run in enumerate(runs):
        run.record_array("weights/w", _weights(10 + k), step=1)
    assert live.sync() and live.updates == 1
    import io

    fig = nl.plot.compare([nl.open_run(tmp_path / f"r{k}") for k in range(2)], "weight_images",
                          stream="weights/w")
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=72)
    assert _png(_outputs(shell, live)[-1]) == buf.getvalue()
    for run in runs:
        run.close()
    assert live.sync() and not live.running       # stops once every run is closed
