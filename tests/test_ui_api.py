"""The dashboard's data API over HTTP (Starlette's test client): values, binary tensors,
downsampling, the refused paths, the token and corrupt runs."""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("starlette")
import warnings  # noqa: E402

with warnings.catch_warnings():   # starlette 1.x suggests httpx2; httpx is what is installed
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient  # noqa: E402

import netlapse as nl  # noqa: E402
from netlapse.ui import create_app  # noqa: E402
from netlapse.ui._data import downsample_minmax  # noqa: E402
from ui_runs import probe_out_at, synthetic_run, weight_at  # noqa: E402

STEPS = 30


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    synthetic_run(root / "alpha", STEPS)
    synthetic_run(root / "sweep" / "beta", 5, config={"lr": 0.5})
    (root / "broken").mkdir()
    (root / "broken" / "run.json").write_text('{"format_version": 1, "name": ')
    outside = tmp_path_factory.mktemp("outside")
    synthetic_run(outside / "secret", 3)
    os.symlink(outside / "secret", root / "leak")
    os.symlink(outside, root / "leakdir")
    return root


@pytest.fixture(scope="module")
def client(runs_dir):
    return TestClient(create_app(runs_dir), base_url="http://localhost")


def _tensor(resp):
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"] == "application/octet-stream"
    assert resp.headers["x-dtype"] == "float32"
    shape = tuple(int(n) for n in resp.headers["x-shape"].split(","))
    return np.frombuffer(resp.content, dtype="<f4").reshape(shape)


def test_runs_lists_nested_runs_flags_broken_one_and_skips_symlinks_outside(client):
    rows = {r["id"]: r for r in client.get("/api/runs").json()["runs"]}
    assert set(rows) == {"alpha", "sweep/beta", "broken"}
    assert rows["alpha"]["status"] == "finished"
    assert rows["alpha"]["last_step"] == STEPS - 1
    assert rows["alpha"]["metrics"]["loss"]["value"][-1] == pytest.approx(1.0 / STEPS)
    assert rows["broken"]["status"] == "error" and "not valid JSON" in rows["broken"]["error"]


def test_run_detail_matches_reader(client, runs_dir):
    d = client.get("/api/run", params={"run": "alpha"}).json()
    r = nl.open_run(runs_dir / "alpha")
    assert [s["name"] for s in d["streams"]] == r.streams()
    row = {s["name"]: s for s in d["streams"]}["weights/fc1.weight"]
    assert row["shape"] == [32, 64] and row["capture"] == "full" and row["length"] == STEPS
    assert row["last"]["norm"] == pytest.approx(float(np.linalg.norm(weight_at(STEPS - 1))), rel=1e-5)
    assert d["metric_names"] == ["loss", "acc"]
    assert (d["first_step"], d["last_step"]) == (0, STEPS - 1)


def test_tensor_is_the_recorded_tensor_in_little_endian_binary(client):
    for step in (0, 7, STEPS - 1):
        resp = client.get("/api/tensor", params={"run": "alpha", "stream": "weights/fc1.weight", "step": step})
        np.testing.assert_array_equal(_tensor(resp), weight_at(step))
        assert int(resp.headers["x-step"]) == step
    resp = client.get("/api/tensor", params={"run": "alpha", "stream": "probe/fc2", "step": -1})
    np.testing.assert_array_equal(_tensor(resp), probe_out_at(STEPS - 1))
    absmax = float(resp.headers["x-absmax"])
    assert absmax == pytest.approx(max(abs(probe_out_at(k)).max() for k in range(STEPS)))


def test_tensor_between_steps_gives_the_last_one_before(client, runs_dir):
    resp = client.get("/api/tensor", params={"run": "sweep/beta", "stream": "inputs/probe", "step": 3})
    assert int(resp.headers["x-step"]) == 0   # recorded once, at step 0
    stats_only = client.get("/api/tensor", params={"run": "alpha", "stream": "grads/fc1.weight", "step": 1})
    assert stats_only.status_code == 422 and "stats" in stats_only.json()["error"]
    missing = client.get("/api/tensor", params={"run": "alpha", "stream": "weights/fc9", "step": 1})
    assert missing.status_code == 422 and "weights/fc1.weight" in missing.json()["error"]


def test_metrics_and_stats_equal_the_store(client, runs_dir):
    r = nl.open_run(runs_dir / "alpha")
    m = client.get("/api/metrics", params={"run": "alpha"}).json()
    np.testing.assert_allclose(m["loss"]["value"], r.metrics["loss"].to_numpy())
    assert m["loss"]["step"] == r.metrics["step"].tolist()
    st = client.get("/api/stats", params={"run": "alpha", "stream": "grads/fc1.weight", "stat": "norm,mean"}).json()
    np.testing.assert_allclose(st["norm"]["value"], r["grads/fc1.weight"].stats["norm"].to_numpy())
    np.testing.assert_allclose(st["mean"]["value"], r["grads/fc1.weight"].stats["mean"].to_numpy())
    bad = client.get("/api/stats", params={"run": "alpha", "stream": "grads/fc1.weight", "stat": "median"})
    assert bad.status_code == 422 and "norm" in bad.json()["error"]


def test_downsampling_keeps_at_most_max_points_and_every_extreme():
    rng = np.random.default_rng(0)
    x = np.arange(100_000)
    y = np.cumsum(rng.normal(size=x.size))
    y[51_234] = 1e6        # a spike must survive
    xs, ys = downsample_minmax(x, y, 2000)
    assert len(xs) <= 2000 and np.all(np.diff(xs) > 0)
    assert ys.max() == 1e6 and ys.min() == y.min()
    buckets = np.array_split(np.arange(x.size), 1000)   # every bucket's min and max are kept
    kept = set(xs.tolist())
    size = -(-x.size // 1000)
    for b in range(0, 1000, 97):
        seg = slice(b * size, min((b + 1) * size, x.size))
        assert int(x[seg][np.argmax(y[seg])]) in kept and int(x[seg][np.argmin(y[seg])]) in kept
    assert buckets  # the split exists
    same = downsample_minmax(x[:50], y[:50], 2000)
    np.testing.assert_array_equal(same[1], y[:50])


def test_heatmap_rows_are_the_stored_histograms_on_one_range(client, runs_dir):
    resp = client.get("/api/heatmap", params={"run": "alpha", "stream": "weights/fc1.weight"})
    rows = _tensor(resp)
    h = nl.open_run(runs_dir / "alpha")["weights/fc1.weight"].histograms
    assert rows.shape == (STEPS, 64)
    np.testing.assert_allclose(rows.sum(axis=1), 1.0, rtol=1e-5)
    assert float(resp.headers["x-lo"]) == pytest.approx(h.lo.min())
    assert float(resp.headers["x-hi"]) == pytest.approx(h.hi.max())
    # the last step spans the whole range, so its rebinned row keeps its mass profile
    assert [int(s) for s in resp.headers["x-steps"].split(",")] == list(range(STEPS))


def test_layer_profile_reads_stats_at_the_step(client, runs_dir):
    prof = client.get("/api/profile", params={"run": "alpha", "step": 4}).json()
    r = nl.open_run(runs_dir / "alpha")
    row = {x["name"]: x for x in prof["weights"]}["weights/fc1.weight"]
    assert row["step"] == 4
    assert row["mean_abs"] == pytest.approx(float(np.abs(weight_at(4)).mean()), rel=1e-5)
    assert row["mean_abs"] == pytest.approx(r["weights/fc1.weight"].stats["mean_abs"][4])


@pytest.mark.parametrize("name", ["../alpha", "sweep/../alpha", "./alpha", "/etc", "%2e%2e/alpha",
                                  "sweep%2F..%2Falpha", "..\\alpha", "leak", "leakdir/secret", "alpha/\x00"])
def test_unsafe_run_names_are_refused(client, name):
    resp = client.get("/api/run", params={"run": name})
    assert resp.status_code == 403, (name, resp.status_code, resp.text)
    assert "refused" in resp.json()["error"]


@pytest.mark.parametrize("raw", ["/static/..%2fapp.js", "/static/%2e%2e/index.html", "/api/run?run=%2e%2e%2Fx",
                                 "/api/run?run=..%252Falpha", "/static/%5c..%5capp.js",
                                 "/api/tensor?run=alpha%2F..%2F..%2Fetc&stream=x"])
def test_encoded_dots_and_slashes_are_refused(client, raw):
    resp = client.get(raw)
    assert resp.status_code in (400, 403), (raw, resp.status_code)


def test_static_files_are_served_and_others_are_not(client):
    assert client.get("/").status_code == 200 and "netlapse" in client.get("/").text
    assert "Charts" in client.get("/static/charts.js").text
    assert client.get("/static/run.json").status_code == 404
    assert client.get("/static/../_app.py").status_code in (400, 404)


def test_corrupt_run_gives_an_error_and_the_others_keep_working(client):
    bad = client.get("/api/run", params={"run": "broken"})
    assert bad.status_code == 422 and bad.json()["kind"] == "corrupt"
    assert client.get("/api/run", params={"run": "alpha"}).status_code == 200


def test_half_written_commit_pointing_past_the_data_is_reported(tmp_path):
    synthetic_run(tmp_path / "r", 4)
    synthetic_run(tmp_path / "ok", 2)
    import shutil
    shutil.rmtree(tmp_path / "r" / "data" / "weights")
    c = TestClient(create_app(tmp_path), base_url="http://localhost")
    resp = c.get("/api/tensor", params={"run": "r", "stream": "weights/fc1.weight", "step": 1})
    assert resp.status_code == 422 and "cannot be read" in resp.json()["error"]
    assert c.get("/api/run", params={"run": "ok"}).status_code == 200


def test_token_is_required_when_set(runs_dir):
    c = TestClient(create_app(runs_dir, token="s3cret", loopback=False), base_url="http://localhost")
    assert c.get("/api/runs").status_code == 401
    assert c.get("/api/runs", params={"token": "wrong"}).status_code == 401
    ok = c.get("/", params={"token": "s3cret"})
    assert ok.status_code == 200 and "netlapse_token=s3cret" in ok.headers["set-cookie"]
    assert c.get("/api/runs").status_code == 200            # the cookie now carries it
    c2 = TestClient(create_app(runs_dir, token="s3cret", loopback=False), base_url="http://localhost")
    assert c2.get("/api/runs", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_loopback_server_refuses_foreign_host_header(client):
    assert client.get("/api/runs", headers={"Host": "evil.example:8765"}).status_code == 403
    assert client.get("/api/runs", headers={"Host": "localhost:8765"}).status_code == 200


def test_non_loopback_dashboard_generates_a_token(runs_dir):
    from netlapse.ui import Dashboard, is_loopback

    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    d = Dashboard(runs_dir, host="0.0.0.0", port=0)
    assert d.token and len(d.token) >= 20 and d.url.endswith("?token=" + d.token)
    assert Dashboard(runs_dir, port=0).token is None


def test_cli_ui_help_and_a_run_folder_is_refused(runs_dir, capsys):
    from netlapse.cli import main

    with pytest.raises(SystemExit):
        main(["ui", "--help"])
    assert "--host" in capsys.readouterr().out
    assert main(["ui", str(runs_dir / "alpha"), "--no-browser"]) == 1
    assert "is a run itself" in capsys.readouterr().err


def test_tensor_neighbours_and_colour_codes(client):
    params = {"run": "alpha", "stream": "weights/fc1.weight", "step": 7}
    resp = client.get("/api/tensor", params=params)
    assert (resp.headers["x-prev-step"], resp.headers["x-next-step"]) == ("6", "8")
    last = client.get("/api/tensor", params={**params, "step": -1})
    assert last.headers["x-next-step"] == "" and last.headers["x-prev-step"] == str(STEPS - 2)
    codes = client.get("/api/tensor", params={**params, "as": "u8"})
    assert codes.headers["x-dtype"] == "uint8"
    got = np.frombuffer(codes.content, np.uint8).reshape(32, 64)
    scale = float(codes.headers["x-scale"])
    w = [weight_at(k).astype(np.float64) for k in range(STEPS)]
    assert scale == pytest.approx(max(min(np.abs(x).max(), 4 * np.sqrt((x ** 2).mean())) for x in w), rel=1e-6)
    c = np.float32(127.5 / scale)
    want = np.clip(np.floor(weight_at(7) * c + np.float32(128)), 0, 255)
    np.testing.assert_array_equal(got, want.astype(np.uint8))
    assert got.min() < 64 and got.max() > 192            # the scale is used, not a flat image
    assert client.get("/api/tensor", params={**params, "as": "png"}).status_code == 422


def test_cli_serves_the_runs_and_prints_its_url(runs_dir):
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen([sys.executable, "-m", "netlapse", "ui", str(runs_dir), "--port", "0",
                             "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        line = proc.stdout.readline()
        assert line.startswith("netlapse dashboard: http://127.0.0.1:"), line
        url = line.split(": ", 1)[1].strip()
        import time
        for _ in range(100):
            try:
                body = urllib.request.urlopen(url + "api/runs", timeout=5).read()
                break
            except OSError:
                time.sleep(0.1)
        import json
        assert {r["id"] for r in json.loads(body)["runs"]} == {"alpha", "sweep/beta", "broken"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_truncated_chunk_gives_the_damaged_file_error_not_pixels(tmp_path):
    # incompressible weights: blosc stores the chunk as is and would decode it cut short
    # without complaint; the reader's chunk-size check must run under the dashboard too
    rng = np.random.default_rng(3)
    values = {k: rng.standard_normal((512, 512)).astype(np.float32) for k in range(8)}
    with nl.Run(tmp_path / "runs" / "noisy") as run:
        for k, v in values.items():
            run.step = k
            run.record_array("weights/noise", v)
    chunk_rows = nl.open_run(tmp_path / "runs" / "noisy")["weights/noise"].values_chunk_rows
    assert chunk_rows < 8   # two chunks at least: the damage stays in one of them
    chunk = tmp_path / "runs" / "noisy" / "data" / "weights" / "noise" / "values" / "c" / "1" / "0" / "0"
    data = chunk.read_bytes()
    chunk.write_bytes(data[: len(data) - 1000])
    client = TestClient(create_app(tmp_path / "runs"), base_url="http://localhost")
    for form in ("f32", "u8"):
        bad = client.get("/api/tensor", params={"run": "noisy", "stream": "weights/noise",
                                                "step": chunk_rows, "as": form})
        assert bad.status_code == 422, (form, bad.headers.get("content-type"))
        assert bad.json()["kind"] == "corrupt"
        assert str(chunk) in bad.json()["error"] and "truncated or corrupt" in bad.json()["error"]
    good = _tensor(client.get("/api/tensor", params={"run": "noisy", "stream": "weights/noise", "step": 1}))
    np.testing.assert_array_equal(good, values[1])
