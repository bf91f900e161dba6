"""The doctor's planted-fault suite, scored: recall and precision over all scenarios.

- recall: of the expected findings (each broken training's planted fault: right kind, the
  named layers among its streams, first_step within the stated tolerance), how many the
  doctor reported;
- precision: of all ``problem`` findings over broken and healthy trainings, how many are
  right (the planted kind or a kind that follows from it, e.g. a NaN after exploding
  gradients); any problem on a healthy training is a false alarm. Strict precision counts
  only the planted kind as right.

Scenarios: tests/doctor_faults.py (the same trainings tests/test_doctor_faults.py checks).

    python benchmarks/doctor_suite.py [--out /tmp/doctor-suite]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="/tmp/netlapse-doctor-suite")
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    import doctor_faults as D

    import netlapse as nl

    expected = met = right = problems = planted = 0
    print(f"{'training':<20} {'expected':<40} {'found':<5} {'problems (false alarms)'}")
    t0 = time.perf_counter()
    for sc in D.BROKEN + D.HEALTHY:
        report = nl.diagnose(D.train(sc, Path(args.out) / sc.name))
        v = D.judge(sc, report)
        expected += len(sc.expect)
        met += sum(v["met"])
        right += len(v["right"])
        planted += sum(1 for f in v["right"] if f.kind in {e.kind for e in sc.expect})
        problems += len(v["right"]) + len(v["false"])
        want = ", ".join(e.kind for e in sc.expect) or "healthy (no problem)"
        got = ", ".join(sorted({f.kind for f in report.problems})) or "-"
        false = ", ".join(f.kind for f in v["false"])
        ok = ("yes" if all(v["met"]) else "NO") if sc.expect else ("yes" if not v["false"] else "NO")
        print(f"{sc.name:<20} {want:<40} {ok:<5} {got}" + (f" (false: {false})" if false else ""))
    print(f"\n{len(D.BROKEN)} broken, {len(D.HEALTHY)} healthy trainings in "
          f"{time.perf_counter() - t0:.0f} s")
    print(f"recall    {met}/{expected} = {met / expected:.2f}")
    if problems:
        print(f"precision {right}/{problems} = {right / problems:.2f}  (a problem is right when its "
              "kind is the planted one or follows from it: see each scenario's 'related')")
        print(f"strict precision {planted}/{problems} = {planted / problems:.2f}  (only the planted "
              "kind counts as right)")


if __name__ == "__main__":
    main()
