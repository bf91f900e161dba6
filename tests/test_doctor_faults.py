"""The planted-fault suite: each broken training is flagged with the right kind, layers and
first step; each healthy one gets no problem. Scenarios: tests/doctor_faults.py; precision
and recall over the whole suite: benchmarks/doctor_suite.py."""

import pytest

pytest.importorskip("torch")

import netlapse as nl  # noqa: E402

import doctor_faults as D  # noqa: E402


@pytest.mark.parametrize("sc", D.BROKEN, ids=lambda s: s.name)
def test_planted_fault_is_found(sc, tmp_path):
    report = nl.diagnose(D.train(sc, tmp_path / sc.name))
    verdict = D.judge(sc, report)
    shown = "\n".join(f"{f.kind} {f.severity} {f.first_step} {f.streams}" for f in report)
    for e, met in zip(sc.expect, verdict["met"]):
        assert met, f"expected {e.kind} naming {e.streams} from steps {e.first}; got:\n{shown}"
    assert not verdict["false"], f"unrelated problems:\n{shown}"
    assert not report.ok


@pytest.mark.parametrize("sc", D.HEALTHY, ids=lambda s: s.name)
def test_healthy_training_has_no_problem(sc, tmp_path):
    report = nl.diagnose(D.train(sc, tmp_path / sc.name))
    assert report.ok, str(report)
    assert {"nonfinite", "vanishing_gradients", "update_ratio_high"} <= set(report.checked)
