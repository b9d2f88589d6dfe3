"""Exposures reduced to one per unit, experiment and day; metrics from events; the analysis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from blocks.experiments import Plan
from experiments.analysis import ExperimentInfo, analyze
from experiments.metrics import (
    Exposure,
    beacon_exposures,
    log_exposures,
    reduce_exposures,
    unit_rows,
)
from experiments.report import as_json, as_text, chart_html

DAY1 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
KEY = "hero-test"


def page_view(visitor: str, at: datetime, variation: int, **extra: Any) -> dict[str, Any]:
    return {
        "_id": f"{visitor}-{at.isoformat()}",
        "visitorId": visitor,
        "ts": at,
        "blocks": [
            {"blockId": "banner", "variantId": "default", "reason": "default"},
            {
                "blockId": "hero",
                "variantId": ("default", "bold")[variation],
                "experiment": KEY,
                "variation": variation,
                "bucket": ("default", "bold")[variation],
                "unit": f"visitorId:{visitor}",
                **extra,
            },
        ],
    }


def test_one_exposure_per_unit_experiment_and_day() -> None:
    docs = [
        page_view("a", DAY1, 0),
        page_view("a", DAY1 + timedelta(hours=2), 0),
        page_view("a", DAY1 + timedelta(days=1), 0),
        page_view("b", DAY1 + timedelta(hours=1), 1),
    ]
    reduced = reduce_exposures(log_exposures(docs, KEY))
    assert reduced.daily_exposures == 3
    assert [(u.unit, u.variation, u.first) for u in reduced.units] == [
        ("visitorId:a", 0, DAY1),
        ("visitorId:b", 1, DAY1 + timedelta(hours=1)),
    ]


def test_a_multivariate_page_view_is_one_exposure() -> None:
    doc = page_view("a", DAY1, 1)
    doc["blocks"].append({**doc["blocks"][1], "blockId": "cta"})
    assert len(log_exposures([doc], KEY)) == 1


def test_other_experiments_and_undecided_blocks_are_ignored() -> None:
    docs = [page_view("a", DAY1, 0), {**page_view("b", DAY1, 1), "ts": "not a date"}]
    docs[0]["blocks"][1]["experiment"] = "another"
    assert log_exposures(docs, KEY) == []


def test_beacons_reconcile_edge_served_pages() -> None:
    beacons = [
        # An edge-served page: the gateway logged nothing for `edge`.
        {
            "type": "block_view",
            "visitorId": "edge",
            "timestamp": DAY1,
            "blockId": "hero",
            "variantId": "bold",
            "properties": {"experiment": KEY, "variation": 1},
        },
        # The same day as a logged page view of `a`: no second exposure.
        {
            "type": "block_view",
            "visitorId": "a",
            "timestamp": DAY1 + timedelta(minutes=1),
            "properties": {"experiment": KEY, "variation": 0},
        },
        # A shipped winner is no exposure; nor is a variation out of range or a bool.
        {
            "type": "block_view",
            "visitorId": "w",
            "timestamp": DAY1,
            "properties": {"experiment": KEY, "variation": 1, "reason": "experiment:winner"},
        },
        {
            "type": "block_view",
            "visitorId": "x",
            "timestamp": DAY1,
            "properties": {"experiment": KEY, "variation": 7},
        },
        {
            "type": "block_view",
            "visitorId": "y",
            "timestamp": DAY1,
            "properties": {"experiment": KEY, "variation": True},
        },
    ]
    exposures = log_exposures([page_view("a", DAY1, 0)], KEY) + beacon_exposures(
        beacons, KEY, num_variations=2
    )
    reduced = reduce_exposures(exposures)
    assert {u.unit: u.variation for u in reduced.units} == {"visitorId:a": 0, "visitorId:edge": 1}
    assert (reduced.daily_exposures, reduced.beacon_only) == (2, 1)


def test_a_unit_seen_in_two_variations_is_left_out() -> None:
    exposures = [
        Exposure("visitorId:a", "a", 0, DAY1),
        Exposure("visitorId:a", "a", 1, DAY1 + timedelta(days=1)),
        Exposure("visitorId:b", "b", 1, DAY1),
    ]
    reduced = reduce_exposures(exposures)
    assert [u.unit for u in reduced.units] == ["visitorId:b"]
    assert reduced.multiple_variations == 1


def test_a_user_hashed_unit_collects_its_visitors_beacons() -> None:
    logged = [Exposure("userId:u1", "phone", 1, DAY1)]
    beacon = [Exposure("visitorId:phone", "phone", 1, DAY1 + timedelta(days=1), "beacon")]
    (unit,) = reduce_exposures(logged + beacon).units
    assert unit.unit == "userId:u1"
    assert unit.days == {DAY1.date(), (DAY1 + timedelta(days=1)).date()}


def test_a_visitor_who_logs_in_stays_one_person() -> None:
    # Anonymous on the phone (hashed by visitor id), then known (hashed by user id),
    # then on a laptop: one unit, first exposed on day one, three visitors' events.
    exposures = [
        Exposure("visitorId:phone", "phone", 1, DAY1),
        Exposure("userId:u1", "phone", 1, DAY1 + timedelta(days=1)),
        Exposure("userId:u1", "laptop", 1, DAY1 + timedelta(days=2)),
        Exposure("visitorId:other", "other", 0, DAY1),
    ]
    reduced = reduce_exposures(exposures)
    assert [(u.unit, u.first, sorted(u.visitors)) for u in reduced.units] == [
        ("userId:u1", DAY1, ["laptop", "phone"]),
        ("visitorId:other", DAY1, ["other"]),
    ]
    assert reduced.daily_exposures == 4


def _event(kind: str, visitor: str, at: datetime, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "visitorId": visitor, "timestamp": at, **extra}


def test_metrics_count_only_after_the_first_exposure() -> None:
    units = reduce_exposures(
        [Exposure("visitorId:a", "a", 1, DAY1), Exposure("visitorId:b", "b", 0, DAY1)]
    ).units
    events = [
        _event("purchase", "a", DAY1 - timedelta(days=2), properties={"revenue": 40}),
        _event("purchase", "a", DAY1 + timedelta(hours=1), properties={"revenue": 10}),
        _event("purchase", "a", DAY1 + timedelta(hours=2), properties={"price": 5, "quantity": 3}),
        _event("click", "a", DAY1 + timedelta(minutes=1), blockId="hero"),
        _event("click", "b", DAY1 + timedelta(minutes=1), blockId="elsewhere"),
        _event("custom", "b", DAY1 + timedelta(minutes=2), properties={"name": "signup"}),
        _event("custom", "b", DAY1 + timedelta(minutes=3), properties={"name": "signup"}),
        _event("purchase", "stranger", DAY1 + timedelta(hours=1), properties={"revenue": 99}),
    ]
    metrics = ("conversion", "clickThrough", "revenue", "custom:signup")
    a, b = unit_rows(units, events, metrics, frozenset({"hero"}))
    assert [a.value(m) for m in metrics] == [1.0, 1.0, 25.0, 0.0]
    assert [b.value(m) for m in metrics] == [0.0, 0.0, 0.0, 2.0]
    assert (a.pre("revenue"), a.pre("conversion")) == (40.0, 1.0)
    assert a.value("revenue", until=DAY1 + timedelta(hours=1, minutes=30)) == 10.0


def _rows(rng: np.random.Generator, n: int, rates: tuple[float, float]) -> list[Any]:
    exposures, events = [], []
    for i in range(n):
        variation = i % 2
        at = DAY1 + timedelta(minutes=i)
        exposures.append(Exposure(f"visitorId:v{i}", f"v{i}", variation, at))
        if rng.random() < rates[variation]:
            revenue = float(rng.exponential(50))
            events.append(
                _event(
                    "purchase", f"v{i}", at + timedelta(hours=1), properties={"revenue": revenue}
                )
            )
    units = reduce_exposures(exposures).units
    return unit_rows(units, events, ("conversion", "revenue"), frozenset({"hero"}))


INFO = ExperimentInfo(
    key=KEY,
    variation_keys=("default", "bold"),
    weights=(0.5, 0.5),
    metrics=("conversion", "revenue"),
    plan=Plan(users=4000, mde=0.3),
    name="Hero test",
    blocks=frozenset({"hero"}),
)


def test_the_report_finds_a_real_lift_and_says_everything() -> None:
    rows = _rows(np.random.default_rng(7), 8000, (0.10, 0.14))
    report = analyze(INFO, rows, now=DAY1 + timedelta(days=7), sequential=True)
    conversion, revenue = report.metrics
    control, bold = conversion.rows
    assert (control.users, bold.users) == (4000, 4000)
    assert bold.lift is not None
    assert bold.lift_low is not None
    assert 0.2 < bold.lift < 0.6
    assert bold.lift_low > 0
    assert bold.p_value is not None
    assert bold.p_value < 0.001
    assert bold.test == "z"
    assert bold.chance_to_beat_control is not None
    assert bold.chance_to_beat_control > 0.99
    assert bold.significant
    assert bold.sequential is not None
    assert bold.sequential.p_value is not None
    assert bold.sequential.p_value < 0.05
    assert revenue.rows[1].test == "welch"
    assert report.srm is not None
    assert not report.srm.flagged
    assert report.power is not None
    assert report.power.planned_users == 4000
    assert report.power.mde is not None
    text = as_text(report, "chart.html")
    assert "conversion (primary, two-proportion z-test)" in text
    assert "revenue (Welch's t-test)" in text
    assert "chart: chart.html" in text
    data = as_json(report)
    assert data["metrics"][0]["rows"][1]["chanceToBeatControl"] > 0.99
    html = chart_html(report)
    assert html.startswith("<!doctype html>")
    assert "<script" not in html
    assert "conversion: bold" in html


def test_a_mismatched_split_is_flagged_and_warned_about() -> None:
    rows = _rows(np.random.default_rng(8), 10_000, (0.1, 0.1))
    # Lose 400 treatment users, as a broken beacon in one arm would.
    treatment = [r for r in rows if r.variation == 1][:4600]
    kept = [r for r in rows if r.variation == 0] + treatment
    report = analyze(INFO, kept, now=DAY1 + timedelta(days=7))
    assert report.srm is not None
    assert report.srm.flagged
    assert any("sample ratio mismatch" in w for w in report.warnings)
    assert "FLAGGED" in as_text(report)


def test_cuped_applies_when_a_pre_period_exists() -> None:
    rng = np.random.default_rng(9)
    exposures, events = [], []
    for i in range(4000):
        at = DAY1 + timedelta(minutes=i)
        exposures.append(Exposure(f"visitorId:v{i}", f"v{i}", i % 2, at))
        habit = float(rng.exponential(30))
        events.append(
            _event("purchase", f"v{i}", at - timedelta(days=3), properties={"revenue": habit})
        )
        later = habit * float(rng.uniform(0.8, 1.2)) * (1.05 if i % 2 else 1.0)
        events.append(
            _event("purchase", f"v{i}", at + timedelta(hours=1), properties={"revenue": later})
        )
    units = reduce_exposures(exposures).units
    rows = unit_rows(units, events, ("revenue",), frozenset())
    info = ExperimentInfo(KEY, ("default", "bold"), (0.5, 0.5), ("revenue",))
    (revenue,) = analyze(info, rows, now=DAY1 + timedelta(days=7)).metrics
    assert revenue.variance_reduction is not None
    assert revenue.variance_reduction > 0.8
    plain, adjusted = revenue.rows[1], revenue.rows[1].cuped
    assert adjusted is not None
    assert plain.lift_low is not None
    assert plain.lift_high is not None
    assert adjusted.low is not None
    assert adjusted.high is not None
    assert (adjusted.high - adjusted.low) < (plain.lift_high - plain.lift_low) / 2


@pytest.mark.parametrize("users", [0, 1])
def test_an_experiment_without_users_reports_without_failing(users: int) -> None:
    rows = _rows(np.random.default_rng(1), users, (0.1, 0.1))
    report = analyze(INFO, rows, now=DAY1, sequential=True)
    assert report.users == users
    assert as_text(report)
    assert chart_html(report)
    assert as_json(report)["key"] == KEY
