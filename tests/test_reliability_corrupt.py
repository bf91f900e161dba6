"""Damaged stores: errors name the file and what is wrong, other streams stay readable, and
`netlapse info` exits non-zero with the message."""
import json

import numpy as np
import pytest

import netlapse as nl
from netlapse import CorruptRunError
from netlapse.cli import main as cli


def make_run(path, steps=10, side=512):
    """'weights/big' spans 3 chunks (1 MiB a step, 4 steps a chunk, at side=512); 'weights/small'
    one chunk."""
    big, small = {}, {}
    with nl.Run(path) as run:
        for k in range(steps):
            run.step = k
            big[k] = np.full((side, side), k, np.float32)
            small[k] = np.arange(6, dtype=np.float32) + k
            run.record_array("weights/big", big[k])
            run.record_array("weights/small", small[k])
            run.record_array("grads/g", np.arange(5, dtype=np.float32) * k, full=False)
            run.log(loss=1.0 / (k + 1))
    return big, small


def truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def info(capsys, *args):
    rc = cli(["info", *map(str, args)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_truncated_values_chunk(tmp_path, capsys):
    path = tmp_path / "r"
    big, small = make_run(path)
    chunk = path / "data" / "weights" / "big" / "values" / "c" / "1" / "0" / "0"   # steps 4..7
    truncate(chunk)
    r = nl.open_run(path)
    with pytest.raises(CorruptRunError) as err:
        r["weights/big"].at(5)
    msg = str(err.value)
    assert str(chunk) in msg and "rows 4..7" in msg and "truncated or corrupt" in msg
    with pytest.raises(CorruptRunError, match="c/1/0/0"):
        r["weights/big"].history()
    # the same stream's other chunks, and every other stream, read normally
    for k in (0, 3, 8, 9):
        np.testing.assert_array_equal(r["weights/big"].at(k), big[k])
    np.testing.assert_array_equal(r["weights/small"].history(), np.stack([small[k] for k in range(10)]))
    np.testing.assert_allclose(r.metrics["loss"], 1.0 / (np.arange(10) + 1))
    assert r["weights/big"].stats["mean"].tolist() == list(map(float, range(10)))
    # plain info reads no values; --check decodes every chunk and finds it
    rc, out, err = info(capsys, path)
    assert rc == 0 and "weights/big" in out
    rc, out, err = info(capsys, "--check", path)
    assert rc == 1 and str(chunk) in err and "1 damaged file" in err
    assert "weights/small" in out


def test_truncated_stats_chunk_info_exits_nonzero(tmp_path, capsys):
    path = tmp_path / "r"
    make_run(path, side=8)
    stats = path / "data" / "grads" / "g" / "stats" / "c" / "0" / "0"
    truncate(stats)
    r = nl.open_run(path)
    with pytest.raises(CorruptRunError, match=str(stats)):
        r["grads/g"].stats
    np.testing.assert_array_equal(r["weights/small"].at(2), np.arange(6, dtype=np.float32) + 2)
    rc, out, err = info(capsys, path)
    assert rc == 1
    assert str(stats) in err
    row = [line for line in out.splitlines() if line.startswith("grads/g")][0]
    assert "DAMAGED" in row
    good = [line for line in out.splitlines() if line.startswith("weights/small")][0]
    assert "0..9 (10)" in good


def test_damaged_array_metadata(tmp_path, capsys):
    path = tmp_path / "r"
    big, _ = make_run(path, side=8)
    meta = path / "data" / "weights" / "small" / "steps" / "zarr.json"
    meta.write_text("{\"zarr_format\": 3,")
    r = nl.open_run(path)
    with pytest.raises(CorruptRunError, match="weights/small/steps cannot be read"):
        r["weights/small"].steps
    np.testing.assert_array_equal(r["weights/big"].at(9), big[9])
    rc, out, err = info(capsys, path)
    assert rc == 1 and "weights/small/steps cannot be read" in err


def test_array_shorter_than_committed(tmp_path):
    path = tmp_path / "r"
    make_run(path, side=8)
    meta = path / "data" / "weights" / "small" / "values" / "zarr.json"
    doc = json.loads(meta.read_text())
    doc["shape"][0] = 3
    meta.write_text(json.dumps(doc))
    with pytest.raises(CorruptRunError, match=r"says 3 rows but commit.json publishes 10"):
        nl.open_run(path)["weights/small"].history()


@pytest.mark.parametrize("damage, expect", [
    (lambda p: p.unlink(), "run.json is missing, but .* holds recorded data"),
    (lambda p: p.write_text(""), "run.json is empty"),
    (lambda p: p.write_bytes(b"\x00\xff\xfe"), "run.json is not valid JSON"),
    (lambda p: p.write_text('{"format_version": 1, "streams": '), "run.json is not valid JSON"),
    (lambda p: p.write_text("[1, 2]"), "run.json should hold a JSON object"),
    (lambda p: p.write_text('{"format_version": "1"}'), "run.json has no integer format_version"),
    (lambda p: p.write_text('{"format_version": 7}'), "run.json has format version 7, newer"),
    (lambda p: p.write_text('{"format_version": 1, "streams": []}'), "run.json: 'streams' should map"),
])
def test_damaged_manifest(tmp_path, capsys, damage, expect):
    path = tmp_path / "r"
    make_run(path, side=8)
    damage(path / "run.json")
    with pytest.raises(CorruptRunError, match=expect):
        nl.open_run(path)
    rc, out, err = info(capsys, path)
    assert rc == 1 and err.startswith("netlapse: error: ") and "run.json" in err


@pytest.mark.parametrize("content, expect", [
    ("{\"lengths\": {\"weights/small\": 10", "commit.json is not valid JSON"),
    ('{"format_version": 5, "lengths": {}}', "commit.json has format version 5"),
    ('{"format_version": 1, "lengths": {"weights/small": -4}}', "commit.json: 'lengths' should map"),
])
def test_damaged_commit(tmp_path, capsys, content, expect):
    path = tmp_path / "r"
    make_run(path, side=8)
    (path / "commit.json").write_text(content)
    with pytest.raises(CorruptRunError, match=expect):
        nl.open_run(path)
    rc, _, err = info(capsys, path)
    assert rc == 1 and "commit.json" in err


def test_leftover_temporary_files_are_ignored(tmp_path, capsys):
    """A writer killed mid-write leaves .partial chunk files and .tmp json files: not data."""
    path = tmp_path / "r"
    big, small = make_run(path)
    (path / ".run.json.999.tmp").write_text("{")
    (path / ".commit.json.999.tmp").write_text("")
    (path / "data" / "weights" / "small" / "values" / "c" / "0.abcdef.partial").write_bytes(b"junk")
    r = nl.open_run(path)
    np.testing.assert_array_equal(r["weights/small"].history(), np.stack([small[k] for k in range(10)]))
    assert info(capsys, "--check", path)[0] == 0
    with nl.Run(path, resume=True) as run:   # and it resumes
        run.step = 10
        run.record_array("weights/small", np.zeros(6, np.float32))
    assert list(nl.open_run(path)["weights/small"].steps) == list(range(11))


def test_truncated_chunk_of_incompressible_values_is_found(tmp_path):
    # random float32 does not compress: blosc stores such a chunk as is, and would decode it
    # cut short without complaint (reading past its end); the size in its header tells
    path = tmp_path / "r"
    rng = np.random.default_rng(7)
    values = {k: rng.standard_normal((512, 512)).astype(np.float32) for k in range(8)}
    with nl.Run(path) as run:
        for k, v in values.items():
            run.step = k
            run.record_array("weights/noise", v)
    chunk = path / "data" / "weights" / "noise" / "values" / "c" / "1" / "0" / "0"   # steps 4..7
    truncate(chunk)
    r = nl.open_run(path)
    with pytest.raises(CorruptRunError, match="truncated or corrupt") as err:
        r["weights/noise"].at(6)
    assert str(chunk) in str(err.value)
    np.testing.assert_array_equal(r["weights/noise"].at(2), values[2])
