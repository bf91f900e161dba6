"""The adapters' shared support core (netlapse/_record/support.py), framework-free."""

import numpy as np
import pytest

import netlapse as nl
from netlapse._record.support import (InstancePatches, first_array, probe_rejected,
                                      require_open_run, split_probe, summary, param_entry)


class _Opt:
    def apply(self, grads):
        return ("class", grads)


def test_instance_patches_wrap_one_instance_and_restore_it():
    a, b = _Opt(), _Opt()
    own = lambda grads: ("own", grads)   # noqa: E731 - an instance attribute to put back
    b.apply = own
    seen = []
    patches = InstancePatches()
    for opt in (a, b):
        patches.patch(opt, "apply", lambda original, g: seen.append(g) or original(g))
    assert a.apply(1) == ("class", 1) and b.apply(2) == ("own", 2) and seen == [1, 2]
    assert _Opt().apply(3) == ("class", 3) and seen == [1, 2]   # the class is untouched
    patches.restore()
    assert "apply" not in a.__dict__ and b.apply is own
    assert a.apply(4) == ("class", 4) and seen == [1, 2]


def test_probe_split_and_errors(tmp_path):
    x, y = np.zeros((4, 2)), np.ones(4)
    assert split_probe(None) == (None, None)
    assert split_probe(x)[0] is x and split_probe(x)[1] is None
    assert split_probe((x, y))[1] is y and split_probe([x, y])[0] is x
    err = probe_rejected((4, 2), ValueError("bad width"), " at layer 'fc'")
    assert "(4, 2) at layer 'fc': bad width" in str(err) and "shaped like" in str(err)
    with nl.Run(tmp_path / "r") as run:
        require_open_run(run, "watch()", "second")
    with pytest.raises(nl.NetlapseError, match=r"watch\(\) needs an open netlapse.Run as its second"):
        require_open_run(run, "watch()", "second")


def test_first_array_and_summary():
    t = np.arange(3)
    assert first_array(t) is t
    assert first_array((None, t, np.zeros(1))) is t
    assert first_array({"state": None, "out": t}) is t
    assert first_array(("a", 1)) is None
    s = summary("MLP", [param_entry("w", (3, 4), "float32"), param_entry("b", (4,), "float32", False)],
                [], name="m")
    assert (s["total_params"], s["trainable_params"], s["name"]) == (16, 12, "m")


def test_record_array_widens_bfloat16_like_every_adapter(tmp_path):
    ml_dtypes = pytest.importorskip("ml_dtypes")
    x = (np.arange(12, dtype=np.float32).reshape(3, 4) / 7).astype(ml_dtypes.bfloat16)
    with nl.Run(tmp_path / "r") as run:
        run.record_array("weights/w", x, step=0)
        run.record_array("weights/w", x * 2, step=1)
    s = nl.open_run(tmp_path / "r")["weights/w"]
    assert s.meta["dtype"] == "bfloat16" and s.at(0).dtype == np.float32
    np.testing.assert_array_equal(s.at(1), (x * 2).astype(np.float32))
