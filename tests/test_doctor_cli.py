"""``netlapse doctor``: exit codes, the JSON shape, --step, and a run still being written."""

import json
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")
from torch import nn  # noqa: E402

import netlapse as nl  # noqa: E402
from netlapse.cli import main  # noqa: E402


def _train(path, nan_at=None, steps=30):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3)
    with nl.Run(path) as run, nl.watch(m, run, opt, activations="stats"):
        for step in range(1, steps + 1):
            x = torch.randn(16, 4)
            if step == nan_at:
                x[0, 0] = float("nan")
            opt.zero_grad()
            loss = ((m(x) - x.sum(1, keepdim=True)) ** 2).mean()
            loss.backward()
            opt.step()
            run.log(loss=loss.item())
    return str(path)


def test_exit_codes_and_json(tmp_path, capsys):
    good = _train(tmp_path / "good")
    bad = _train(tmp_path / "bad", nan_at=12)
    assert main(["doctor", good]) == 0
    assert "healthy" in capsys.readouterr().out
    assert main(["doctor", bad, "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"run", "steps", "findings", "checked", "skipped"}
    assert out["steps"] == [0, 30]
    f = next(f for f in out["findings"] if f["kind"] == "nonfinite")
    assert set(f) == {"kind", "severity", "streams", "first_step", "last_step", "evidence",
                      "advice", "view"}
    assert f["first_step"] == 12 and f["streams"][0] == "activations/0"
    assert f["view"] == {"name": "distributions", "args": {"stream": "activations/0"}}
    # as of step 11, before the NaN: healthy
    assert main(["doctor", bad, "--step", "11"]) == 0
    capsys.readouterr()
    assert main(["doctor", str(tmp_path / "missing")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_table_names_kind_layers_and_view(tmp_path):
    bad = _train(tmp_path / "bad", nan_at=5)
    out = subprocess.run([sys.executable, "-m", "netlapse.cli", "doctor", bad],
                         capture_output=True, text=True)
    assert out.returncode == 1
    assert "nonfinite" in out.stdout and "5..30" in out.stdout
    assert "netlapse render RUN distributions --stream activations/0" in out.stdout


def test_view_of_each_finding_renders(tmp_path):
    from netlapse import views

    bad = _train(tmp_path / "bad", nan_at=5)
    for f in nl.diagnose(bad):
        frames = getattr(views, f.view["name"])(bad, **f.view["args"])
        assert len(frames.steps)
