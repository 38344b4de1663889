"""Structured JSON audit events: one line per decision, in the task log and a durable JSON-lines file."""
from __future__ import annotations

import json
import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

logger = logging.getLogger("ct_pipeline.events")
_lock = threading.Lock()

DECISIONS = {
    "extracted", "validated", "validated_model", "prepared", "trained", "evaluated", "promoted", "rejected",
    "triggered", "skipped", "predicted", "monitored", "approval_requested", "pointer_repaired",
    "seed_loaded", "simulated", "training_started", "training_finished",
}


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def emit(event: str, audit_log: Path, **fields: Any) -> dict[str, Any]:
    """Log ``event`` as one JSON object and append it to ``audit_log``; returns the record."""
    record = {"ts": utcnow().isoformat(), "event": event, **fields}
    line = json.dumps(record, default=str, sort_keys=False)
    logger.info(line)
    audit_log.parent.mkdir(parents=True, exist_ok=True)
    with _lock, open(audit_log, "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    return record


def read_events(audit_log: Path, event: str | None = None) -> list[dict[str, Any]]:
    if not audit_log.exists():
        return []
    with open(audit_log, encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    return [r for r in rows if event is None or r["event"] == event]


@dataclass(frozen=True)
class RunIds:
    """Which Airflow run and task a step belongs to; carried into every audit event."""

    dag_id: str
    run_id: str
    task_id: str = ""

    def fields(self) -> dict[str, str]:
        return {"dag_id": self.dag_id, "airflow_run_id": self.run_id, "task_id": self.task_id}
