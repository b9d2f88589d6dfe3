"""`python -m gateway recommendations evaluate | train | online` and the generator script."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from gateway.cli import main
from scoring.registry import RECOMMENDATIONS_MODEL, STATE

ROOT = Path(__file__).resolve().parents[2]
END = "2026-11-01T00:00:00Z"


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated events, written by the documented script itself."""
    out = tmp_path_factory.mktemp("gen") / "events.ndjson"
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "synthetic_events.py"),
            "--visitors",
            "800",
            "--days",
            "45",
            "--seed",
            "5",
            "--end",
            END,
            "--out",
            str(out),
        ],
        check=True,
        cwd=ROOT,
        capture_output=True,
    )
    return out


def test_the_generator_writes_valid_events_with_latent_tastes(events_file: Path) -> None:
    lines = events_file.read_text(encoding="utf-8").splitlines()
    events = [json.loads(line) for line in lines]
    assert len(events) > 5000
    kinds = {e["type"] for e in events}
    assert kinds == {"page_view", "add_to_cart", "purchase"}
    assert all(e["eventId"] and e["visitorId"] and e["timestamp"].endswith("Z") for e in events)
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    # Latent tastes: most shoppers' product views fall in one or two categories.
    by_visitor: dict[str, list[str]] = {}
    for e in events:
        category = (e.get("properties") or {}).get("category")
        if e["type"] == "page_view" and category:
            by_visitor.setdefault(e["visitorId"], []).append(category)
    focused = [
        max(cats.count(c) for c in set(cats)) / len(cats)
        for cats in by_visitor.values()
        if len(cats) >= 6
    ]
    assert sum(focused) / len(focused) > 0.6


def test_evaluate_prints_one_json_object_per_the_issue(
    events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["recommendations", "evaluate", "--events", str(events_file), "--format", "json"]) == 0
    )
    out = capsys.readouterr().out
    report = json.loads(out)
    assert out.count("\n") == 1  # one object, one line
    assert set(report) == {"models"}
    assert {"popularity", "hybrid"} <= set(report["models"])
    assert set(report["models"]) == {"popularity", "item-cf", "content", "hybrid"}
    for metrics in report["models"].values():
        assert set(metrics) == {"precision@10", "recall@10", "ndcg@10", "coverage", "novelty"}
        assert all(isinstance(v, float) for v in metrics.values())
        assert 0 <= metrics["precision@10"] <= 1
        assert 0 <= metrics["coverage"] <= 1
    assert report["models"]["hybrid"]["ndcg@10"] > report["models"]["popularity"]["ndcg@10"]


def test_evaluate_as_text(events_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["recommendations", "evaluate", "--events", str(events_file)]) == 0
    out = capsys.readouterr().out
    assert "catalogue: 217 products from the CMS (filesystem)" in out
    assert "hybrid vs popularity: NDCG@10 +" in out
    for name in ("popularity", "item-cf", "content", "hybrid"):
        assert f"\n{name} " in out


def test_without_a_cms_catalogue_the_events_name_the_products(
    events_file: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "pages").mkdir()
    monkeypatch.setenv("CONTENT_DIR", str(tmp_path))  # a content folder without catalog/
    assert main(["recommendations", "evaluate", "--events", str(events_file)]) == 0
    out = capsys.readouterr().out
    assert "products named by the events (no CMS catalogue is configured)" in out
    # Any event file: products the CMS does not know are evaluated on the events' own terms.
    other = tmp_path / "other.ndjson"
    lines = events_file.read_text(encoding="utf-8").replace('"productId":"', '"productId":"X-')
    other.write_text(lines, encoding="utf-8")
    monkeypatch.delenv("CONTENT_DIR")
    assert main(["recommendations", "evaluate", "--events", str(other), "--format", "json"]) == 0
    assert "hybrid" in json.loads(capsys.readouterr().out)["models"]


def test_unusable_files_and_too_little_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommendations", "evaluate", "--events", str(tmp_path / "missing")]) == 2
    assert "cannot read" in capsys.readouterr().err
    few = tmp_path / "few.ndjson"
    few.write_text(
        '{"type":"page_view","eventId":"1","visitorId":"v","properties":{"productId":"A"}}\n'
        "not json\n"
        '{"type":"teleport","eventId":"2","visitorId":"v"}\n'
        '{"type":"teleport","eventId":3}\n',  # several problems, one line
        encoding="utf-8",
    )
    assert main(["recommendations", "evaluate", "--events", str(few)]) == 1
    err = capsys.readouterr().err
    assert re.search(
        r"3 of 4 lines were left out \(([4-9]|\d\d+) problem\(s\)\); first: line 2", err
    )
    with pytest.raises(SystemExit):
        main(["recommendations", "evaluate", "--events", str(few), "--test-fraction", "0.9"])


def _stored(events_file: Path, shift: timedelta) -> list[dict[str, Any]]:
    """The file's events as the gateway stores them, moved by `shift`."""
    docs = []
    for line in events_file.read_text(encoding="utf-8").splitlines():
        raw = json.loads(line)
        at = datetime.fromisoformat(raw["timestamp"].replace("Z", "+00:00")) + shift
        docs.append(
            {
                "_id": raw["eventId"],
                "type": raw["type"],
                "visitorId": raw["visitorId"],
                "timestamp": at,
                "receivedAt": at,
                "context": {},
                "properties": raw.get("properties") or {},
                "commit": "c",
            }
        )
    return docs


def test_train_from_the_database_registers_and_activates(
    db: Any, events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shift = datetime.now(UTC) - datetime.fromisoformat(END.replace("Z", "+00:00"))
    db.events.insert_many(_stored(events_file, shift))
    assert main(["recommendations", "train", "--days", "60", "--activate"]) == 0
    out = capsys.readouterr().out
    assert "recommendations model recommendations-" in out
    assert "(active)" in out
    assert "offline evaluation (time split):" in out
    assert "hybrid vs popularity" in out
    state = db[STATE].find_one({"_id": RECOMMENDATIONS_MODEL})
    assert state["active"].startswith("recommendations-")
    entry = db["models.registry"].find_one({"_id": state["active"]})
    assert entry["metrics"]["evaluation"]["hybrid"]["ndcg@10"] > 0
    assert entry["window"]["catalog"] == "filesystem"
    assert main(["models", "list", "--kind", "recommendations"]) == 0
    assert f"* {state['active']}" in capsys.readouterr().out
    # Too few events in the window: refused, nothing registered.
    assert main(["recommendations", "train", "--since", "2001-01-01", "--until", "2001-02-01"]) == 1
    assert "product touches" in capsys.readouterr().err


def test_train_from_a_file_without_activating(
    db: Any, events_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["recommendations", "train", "--events", str(events_file)]) == 0
    out = capsys.readouterr().out
    assert "activate it with: python -m gateway models activate recommendations-" in out
    assert db[STATE].find_one({"_id": RECOMMENDATIONS_MODEL}) is None


def test_hostile_lines_are_problems_not_crashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    hostile = tmp_path / "hostile.ndjson"
    lines = [
        '{"type":"page_view","eventId":"1","visitorId":"v","properties":{"productId":"A"}}',
        "[" * 100_000 + "]" * 100_000,
        '{"type":"page_view","eventId":"2","visitorId":"v","properties":{"price":1e999999}}',
        '{"type":"page_view","eventId":"3","visitorId":"v","timestamp":"9999-12-31T23:59:59-01:00"}',
        '{"type":"page_view","eventId":"4","visitorId":"v","timestamp":"0001-01-01T00:00:00+01:00"}',
        '{"type":"page_view","eventId":"5","visitorId":"\\ud800"}',
        '{"type":"purchase","eventId":"6","visitorId":"v","properties":{"revenue":1180591620717411303424}}',
    ]
    hostile.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # Too little data once the hostile lines are left out: a clear exit 1, no traceback.
    assert main(["recommendations", "evaluate", "--events", str(hostile)]) == 1
    err = capsys.readouterr().err
    assert "6 of 7 lines were left out" in err
    assert "line 2 is not JSON: nested too deeply" in err
    assert "Traceback" not in err
