"""An experiment report for people (a table and a chart) and for programs (JSON).

The chart is one self-contained HTML file (inline SVG, no script, no
external asset): each treatment's relative lift per metric with its 95 %
interval against zero (a forest plot), and users per variation against
the configured split, so a sample-ratio mismatch is visible at a glance.
"""

from __future__ import annotations

import dataclasses
import html
import math
from datetime import datetime
from typing import Any

from experiments.analysis import MetricReport, MetricRow, Report


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            _camel(f.name): _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)
        }
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, tuple | list):
        return [_jsonable(item) for item in value]
    if isinstance(value, frozenset | set):
        return sorted(_jsonable(item) for item in value)
    return value


def as_json(report: Report) -> dict[str, Any]:
    """The report as JSON-ready data (camelCase keys, ISO dates)."""
    data: dict[str, Any] = _jsonable(report)
    return data


def _pct(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "—"
    return f"{value:+.1%}" if signed else f"{value:.2%}"


def _p(value: float | None) -> str:
    if value is None:
        return "—"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def _interval(low: float | None, high: float | None) -> str:
    if low is None or high is None:
        return "—"
    return f"[{low:+.1%}, {high:+.1%}]"


def _rate(report: MetricReport, row: MetricRow) -> str:
    return _pct(row.rate) if report.kind == "proportion" else f"{row.rate:.3f}"


def _metric_table(report: MetricReport, sequential: bool) -> list[str]:
    test = "two-proportion z-test" if report.kind == "proportion" else "Welch's t-test"
    title = f"{report.metric} ({'primary, ' if report.primary else ''}{test})"
    total_name = "conversions" if report.kind == "proportion" else "total"
    rate_name = "rate" if report.kind == "proportion" else "mean"
    head = [
        "variation",
        "users",
        total_name,
        rate_name,
        "lift",
        "95% CI",
        "p",
        "P(beat ctrl)",
        "CUPED lift [CI]",
    ]
    if sequential:
        head += ["always-valid p", "sequence"]
    rows = [head]
    for row in report.rows:
        cells = [
            row.key + (" *" if row.significant else ""),
            f"{row.users:,}",
            f"{row.total:,.0f}" if report.kind == "proportion" else f"{row.total:,.2f}",
            _rate(report, row),
            _pct(row.lift, signed=True) if row.variation else "(control)",
            _interval(row.lift_low, row.lift_high) if row.variation else "",
            _p(row.p_value) if row.variation else "",
            _pct(row.chance_to_beat_control) if row.variation else "",
            (
                f"{_pct(row.cuped.lift, True)} {_interval(row.cuped.low, row.cuped.high)}"
                if row.cuped is not None
                else ("—" if row.variation else "")
            ),
        ]
        if sequential:
            seq = row.sequential
            cells += [
                _p(seq.p_value) if seq is not None else ("—" if row.variation else ""),
                _interval(seq.low, seq.high) if seq is not None else "",
            ]
        rows.append(cells)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = [title]
    for index, cells in enumerate(rows):
        line = "  ".join(
            cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i])
            for i, cell in enumerate(cells)
        )
        lines.append("  " + line.rstrip())
        if index == 0:
            lines.append("  " + "  ".join("-" * w for w in widths))
    if report.variance_reduction is not None:
        lines.append(f"  CUPED removed {report.variance_reduction:.0%} of the variance")
    return lines


def as_text(report: Report, chart: str | None = None) -> str:
    """The report as a table for people (and where its chart is)."""
    name = f" — {report.name}" if report.name else ""
    span = (
        f"{report.first_exposure:%Y-%m-%d} → {report.last_exposure:%Y-%m-%d}"
        if report.first_exposure and report.last_exposure
        else "no exposure yet"
    )
    ex = report.exposures
    lines = [
        f"Experiment {report.key}{name} ({report.status})",
        f"users {report.users:,} · exposures {ex.daily_exposures:,} "
        f"(one per user and day; {ex.beacon_only:,} from block_view beacons) · {span} "
        f"· alpha {report.alpha:g}" + (" · sequential (always valid)" if report.sequential else ""),
    ]
    split = ", ".join(
        f"{v.key} {v.users:,} ({v.share:.1%} of {v.expected_share:.0%})" for v in report.variations
    )
    lines.append(f"split: {split}")
    if report.srm is not None:
        verdict = "FLAGGED: sample ratio mismatch" if report.srm.flagged else "ok"
        lines.append(f"SRM: chi-square {report.srm.chi2:.2f}, p = {_p(report.srm.p)} ({verdict})")
    for metric in report.metrics:
        lines.append("")
        lines.extend(_metric_table(metric, report.sequential))
    power = report.power
    if power is not None:
        lines.append("")
        base = (
            _pct(power.baseline)
            if power.baseline is not None and power.baseline < 1
            else (f"{power.baseline:.3f}" if power.baseline is not None else "unknown")
        )
        text = f"power ({power.metric}, baseline {base}, alpha {power.alpha:g}): "
        if power.planned_users:
            text += (
                f"planned {power.planned_users:,} users ({power.users_per_arm or 0:,.0f} in the "
                f"smallest arm) detect {_pct(power.mde, True)} at "
                f"{power.target_power:.0%} power; power for {_pct(power.planned_mde, True)}: "
                f"{_pct(power.power_at_planned_mde)}"
            )
        else:
            text += "no planned sample (set `plan.users` or pass --planned-users)"
        if power.users_needed:
            text += (
                f"; {power.users_needed:,.0f} users needed for {_pct(power.planned_mde, True)} "
                f"({power.users_now:,} so far)"
            )
        lines.append(text)
    lines.append("")
    lines.append("* significant at alpha" + (" (always-valid p)" if report.sequential else ""))
    lines.extend(f"warning: {warning}" for warning in report.warnings)
    if chart:
        lines.append(f"chart: {chart}")
    return "\n".join(lines)


# -- the chart -----------------------------------------------------------------------------

_W = 820
_LABEL = 200
#: Room at the right for the value labels.
_VALUES = 190
_ROW = 30
#: Axis half-widths the forest plot rounds up to.
_SPANS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0)


def _forest(report: Report) -> tuple[str, int]:
    rows = [(m, r) for m in report.metrics for r in m.rows if r.variation and r.lift is not None]
    bounds = [abs(v) for _, r in rows for v in (r.lift_low, r.lift_high, r.lift) if v is not None]
    if report.sequential:
        bounds += [
            abs(v)
            for _, r in rows
            if r.sequential is not None
            for v in (r.sequential.low, r.sequential.high)
            if v is not None
        ]
    widest = max([0.0, *bounds]) * 1.05
    span = next((nice for nice in _SPANS if nice >= widest), widest)
    plot = _W - _LABEL - _VALUES
    height = 50 + _ROW * max(1, len(rows))

    def x(value: float) -> float:
        return _LABEL + plot * (value + span) / (2 * span)

    parts = [
        f'<text x="{_LABEL}" y="18" class="h">Relative lift vs control, 95% interval</text>',
        f'<line x1="{x(0):.1f}" y1="28" x2="{x(0):.1f}" y2="{height - 10}" class="zero"/>',
    ]
    for tick in (-span, -span / 2, span / 2, span):
        parts.append(f'<text x="{x(tick):.1f}" y="{height}" class="tick">{tick:+.0%}</text>')
    if not rows:
        parts.append(f'<text x="{_LABEL}" y="48">no data yet</text>')
    for index, (metric, row) in enumerate(rows):
        y = 45 + index * _ROW
        colour = (
            "win"
            if row.significant and (row.lift or 0) > 0
            else ("loss" if row.significant else "flat")
        )
        label = html.escape(f"{metric.metric}: {row.key}")
        parts.append(f'<text x="8" y="{y + 4}">{label}</text>')
        seq = row.sequential
        if report.sequential and seq is not None and seq.low is not None and seq.high is not None:
            parts.append(
                f'<line x1="{x(max(seq.low, -span)):.1f}" y1="{y}" '
                f'x2="{x(min(seq.high, span)):.1f}" y2="{y}" class="seq"/>'
            )
        if row.lift_low is not None and row.lift_high is not None:
            parts.append(
                f'<line x1="{x(row.lift_low):.1f}" y1="{y}" x2="{x(row.lift_high):.1f}" '
                f'y2="{y}" class="ci {colour}"/>'
            )
        assert row.lift is not None
        parts.append(f'<circle cx="{x(row.lift):.1f}" cy="{y}" r="5" class="{colour}"/>')
        shown = seq.p_value if report.sequential and seq is not None else row.p_value
        value = html.escape(f"{row.lift:+.1%} (p {_p(shown)})")
        parts.append(f'<text x="{_W - 8}" y="{y + 4}" class="val">{value}</text>')
    return "\n".join(parts), height + 10


def _split(report: Report, top: int) -> tuple[str, int]:
    most = max([1, *(v.users for v in report.variations)])
    plot = _W - _LABEL - _VALUES
    parts = [
        f'<text x="{_LABEL}" y="{top + 18}" class="h">Users per variation vs planned split</text>'
    ]
    total = max(1, report.users)
    for index, variation in enumerate(report.variations):
        y = top + 40 + index * _ROW
        width = plot * variation.users / most
        expected = plot * variation.expected_share * total / most
        parts.append(f'<text x="8" y="{y + 4}">{html.escape(variation.key)}</text>')
        parts.append(
            f'<rect x="{_LABEL}" y="{y - 9}" width="{width:.1f}" height="18" class="bar"/>'
        )
        parts.append(
            f'<line x1="{_LABEL + expected:.1f}" y1="{y - 13}" x2="{_LABEL + expected:.1f}" '
            f'y2="{y + 13}" class="expected"/>'
        )
        value = html.escape(
            f"{variation.users:,} ({variation.share:.1%} of {variation.expected_share:.0%})"
        )
        parts.append(f'<text x="{_W - 8}" y="{y + 4}" class="val">{value}</text>')
    height = top + 40 + _ROW * len(report.variations)
    return "\n".join(parts), height


def chart_html(report: Report) -> str:
    """The report's chart as one self-contained HTML page."""
    forest, height = _forest(report)
    split, height = _split(report, height)
    srm = ""
    if report.srm is not None:
        state = "FLAGGED" if report.srm.flagged else "ok"
        srm = f"SRM p = {_p(report.srm.p)} ({state})"
    title = html.escape(f"Experiment {report.key}" + (f" — {report.name}" if report.name else ""))
    note = html.escape(
        f"{report.users:,} users · {report.status} · alpha {report.alpha:g} · {srm} · "
        f"generated {report.generated_at:%Y-%m-%d %H:%M} UTC"
    )
    warnings = "".join(f"<p class=warn>{html.escape(w)}</p>" for w in report.warnings)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font: 14px system-ui, sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 18px; margin: 0 0 4px; }} p {{ margin: 0 0 12px; color: #555; }}
.warn {{ color: #a40000; }}
svg text {{ font-size: 12px; fill: #222; }} svg .h {{ font-weight: 600; }}
svg .tick {{ text-anchor: middle; fill: #777; }} svg .val {{ text-anchor: end; }}
svg .zero {{ stroke: #999; stroke-dasharray: 4 3; }}
svg .ci {{ stroke-width: 3; }} svg line.win {{ stroke: #1a7f37; }}
svg line.loss {{ stroke: #c62828; }} svg line.flat {{ stroke: #888; }}
svg circle.win {{ fill: #1a7f37; }} svg circle.loss {{ fill: #c62828; }}
svg circle.flat {{ fill: #555; }}
svg .seq {{ stroke: #bbb; stroke-width: 9; stroke-linecap: round; }}
svg .bar {{ fill: #7aa7d9; }} svg .expected {{ stroke: #222; stroke-width: 2; }}
</style></head>
<body><h1>{title}</h1><p>{note}</p>{warnings}
<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{height + 10}" role="img"
 aria-label="Lift per metric and users per variation">
{forest}
{split}
</svg>
<p>Green: significantly better than the control; red: significantly worse; grey: not
significant. With the sequential option, the wide pale band is the always-valid confidence
sequence. The black tick on each bar is the user count the configured split expects.</p>
</body></html>
"""
