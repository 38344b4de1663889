"""Audit events (JSON lines) and the serving-pointer format."""
from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path

import pytest

from ct_operators.events import RunIds, emit, read_events
from ct_operators.registry import ModelRef, parse_pointer, pointer_for


def test_emit_writes_one_json_line_with_fields(tmp_path: Path) -> None:
    log = tmp_path / "audit" / "events.jsonl"  # parent folder does not exist yet
    ids = RunIds(dag_id="ct_training", run_id="manual__1", task_id="promote_model")
    record = emit("promoted", log, **ids.fields(), model_version="3", reasons=["a", "b"], when=datetime(2026, 1, 1))
    lines = log.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 1
    data = json.loads(lines[0])
    assert data == record | {"when": "2026-01-01 00:00:00"}
    assert data["event"] == "promoted"
    assert data["dag_id"] == "ct_training" and data["airflow_run_id"] == "manual__1"
    assert data["task_id"] == "promote_model"
    assert data["model_version"] == "3" and data["reasons"] == ["a", "b"]
    assert datetime.fromisoformat(data["ts"]).utcoffset().total_seconds() == 0


def test_emit_appends_and_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    log = tmp_path / "events.jsonl"
    with caplog.at_level(logging.INFO, logger="ct_pipeline.events"):
        emit("extracted", log, rows=10)
        emit("rejected", log, reasons=["worse"])
        emit("extracted", log, rows=12)
    assert len(log.read_text().splitlines()) == 3
    assert any('"event": "rejected"' in r.getMessage() for r in caplog.records)


def test_read_events_filters(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    assert read_events(log) == []
    emit("extracted", log, rows=10)
    emit("rejected", log, reasons=["worse"])
    emit("extracted", log, rows=12)
    assert [e["event"] for e in read_events(log)] == ["extracted", "rejected", "extracted"]
    assert [e["rows"] for e in read_events(log, "extracted")] == [10, 12]
    assert read_events(log, "promoted") == []


def test_emit_non_ascii_and_quotes_round_trip(tmp_path: Path) -> None:
    log = tmp_path / "events.jsonl"
    text = "R² 0.9 > champion's \"0.8\"\nnext line"
    emit("validated", log, message=text)
    assert read_events(log)[0]["message"] == text
    assert len(log.read_text(encoding="utf-8").splitlines()) == 1


def test_run_ids_fields() -> None:
    assert RunIds("d", "r").fields() == {"dag_id": "d", "airflow_run_id": "r", "task_id": ""}


@pytest.mark.parametrize("pointer, expected", [
    ("models:/ct_point_regressor/1", ("ct_point_regressor", "1")),
    ("models:/ct_point_regressor/12", ("ct_point_regressor", "12")),
    ("models:/team/sub_model/3", ("team/sub_model", "3")),
])
def test_parse_pointer(pointer: str, expected: tuple[str, str]) -> None:
    assert parse_pointer(pointer) == expected


@pytest.mark.parametrize("pointer", [
    "", "models:/", "models:/name", "models:/name/", "models:/name/champion", "models:/name@champion",
    "runs:/abc/model", "ct_point_regressor/1", "models:/name/1.0", "models://2",
])
def test_parse_pointer_rejects(pointer: str) -> None:
    with pytest.raises(ValueError, match="models:/<name>/<version>"):
        parse_pointer(pointer)


def test_pointer_for_round_trips() -> None:
    ref = ModelRef(name="ct_point_regressor", version="4", run_id="abc")
    assert pointer_for(ref) == "models:/ct_point_regressor/4"
    assert parse_pointer(pointer_for(ref)) == ("ct_point_regressor", "4")
