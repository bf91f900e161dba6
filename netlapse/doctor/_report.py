"""Findings and the report that holds them (plain data; JSON as ``netlapse doctor --json``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

__all__ = ["Finding", "Report", "KINDS", "SEVERITIES"]

KINDS = ("nonfinite", "vanishing_gradients", "exploding_gradients", "dead_units",
         "saturated_units", "update_ratio_high", "update_ratio_low", "unused_parameters",
         "loss_diverging")
SEVERITIES = ("problem", "warning")


@dataclass
class Finding:
    """One thing wrong with a training run, where (``streams``, in layer order), since when
    (``first_step``..``last_step``), the numbers (``evidence``), what usually fixes it
    (``advice``) and the view that shows it (``view``: ``{"name": ..., "args": {...}}``, a
    view of ``netlapse.views`` / ``netlapse render``)."""

    kind: str
    severity: str
    streams: list
    first_step: int
    last_step: int
    evidence: dict
    advice: str
    view: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")
        self.first_step, self.last_step = int(self.first_step), int(self.last_step)
        self.evidence = {k: _plain(v) for k, v in self.evidence.items()}

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def key(self) -> tuple:
        """What makes a finding new for live alerts: its kind and the streams it names."""
        return (self.kind, tuple(self.streams))

    def where(self, most: int = 3) -> str:
        names = [s.split("/", 1)[-1] for s in self.streams]
        more = f" (+{len(names) - most} more)" if len(names) > most else ""
        return ", ".join(names[:most]) + more


def _plain(v):
    """Evidence values as JSON-friendly Python numbers (NaN/inf kept as floats)."""
    import numpy as np

    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_plain(x) for x in list(v)]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return float(f"{f:.4g}") if np.isfinite(f) else (None if np.isnan(f) else str(f))
    return v


@dataclass
class Report:
    """The doctor's verdict on one run: ``findings`` (problems first), the instruments that ran
    (``checked``) and those that could not, with why (``skipped``)."""

    run: str
    steps: list
    findings: list
    checked: list
    skipped: list

    @property
    def ok(self) -> bool:
        """True when no finding is a ``problem`` (warnings may remain)."""
        return not any(f.severity == "problem" for f in self.findings)

    @property
    def problems(self) -> list:
        return [f for f in self.findings if f.severity == "problem"]

    def __iter__(self):
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def __getitem__(self, i):
        return self.findings[i]

    def kinds(self) -> set:
        return {f.kind for f in self.findings}

    def to_dict(self) -> dict:
        return {"run": self.run, "steps": list(self.steps),
                "findings": [f.to_dict() for f in self.findings],
                "checked": list(self.checked), "skipped": list(self.skipped)}

    def __str__(self) -> str:
        return format_report(self)

    def _repr_html_(self) -> str:
        import html

        return "<pre>" + html.escape(format_report(self)) + "</pre>"


def _evidence_text(ev: dict, most: int = 4) -> str:
    parts = []
    for k, v in ev.items():
        if isinstance(v, (list, dict)):
            continue
        parts.append(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}")
    return ", ".join(parts[:most])


def format_report(report: Report) -> str:
    lo, hi = report.steps if report.steps else (None, None)
    head = f"netlapse doctor: {report.run} (steps {lo}..{hi})"
    if not report.findings:
        lines = [head, "healthy: no finding."]
    else:
        rows = [("severity", "kind", "layers", "steps", "evidence")]
        for f in report.findings:
            rows.append((f.severity, f.kind, f.where(), f"{f.first_step}..{f.last_step}",
                         _evidence_text(f.evidence)))
        widths = [max(len(r[i]) for r in rows) for i in range(4)]
        lines = [head, ""]
        for r in rows:
            lines.append("  ".join(c.ljust(w) for c, w in zip(r[:4], widths)) + "  " + r[4])
        lines.append("")
        for f in report.findings:
            view = f.view.get("name", "")
            args = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in f.view.get("args", {}).items())
            lines.append(f"- {f.kind} ({f.where()}): {f.advice}"
                         + (f" See: netlapse render RUN {view} {args} --out {f.kind}.png".rstrip()
                            if view else ""))
        n = len(report.problems)
        lines.append("")
        lines.append(f"{n} problem(s), {len(report.findings) - n} warning(s).")
    if report.skipped:
        lines.append("not checked: " + "; ".join(f"{s['instrument']} ({s['why']})"
                                                   for s in report.skipped))
    return "\n".join(lines)
