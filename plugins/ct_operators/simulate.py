"""Drift simulator: labelled points y = slope·x + offset + noise, so anyone can watch degradation."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Mapping

import numpy as np

from ct_operators.store.types import Sample

# Close to the seed data set (y ≈ 1.2·x + 9 on x in [50, 125]).
SEED_LIKE = {"slope": 1.2, "offset": 9.0, "noise": 4.0, "x_min": 50.0, "x_max": 125.0}


@dataclass(frozen=True)
class DriftSpec:
    points: int = 30
    slope: float = 1.2
    offset: float = 9.0
    noise: float = 4.0
    x_min: float = 50.0
    x_max: float = 125.0
    seed: int | None = None
    label: str = "simulated"

    def __post_init__(self) -> None:
        for name in ("slope", "offset", "noise", "x_min", "x_max"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                raise ValueError(f"drift field {name!r} must be a finite number, got {value!r}")
        if isinstance(self.points, bool) or not isinstance(self.points, int) or not 1 <= self.points <= 1_000_000:
            raise ValueError(f"drift field 'points' must be an integer in [1, 1000000], got {self.points!r}")
        if self.noise < 0:
            raise ValueError(f"drift field 'noise' must not be negative, got {self.noise}")
        if self.x_min >= self.x_max:
            raise ValueError(f"drift field 'x_min' ({self.x_min}) must be below 'x_max' ({self.x_max})")
        if not np.isfinite(float(self.x_max) - float(self.x_min)):
            raise ValueError(f"drift fields 'x_min'..'x_max' span a range too wide to draw from "
                             f"({self.x_min}..{self.x_max})")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0):
            raise ValueError(f"drift field 'seed' must be a non-negative integer or empty, got {self.seed!r}")
        if not isinstance(self.label, str) or len(self.label) > 100:
            raise ValueError("drift field 'label' must be text of at most 100 characters")

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "DriftSpec":
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__ and v is not None}
        return cls(**known)

    def as_dict(self) -> dict:
        return asdict(self)


def simulate_points(spec: DriftSpec, now: datetime) -> list[Sample]:
    rng = np.random.default_rng(spec.seed)
    x = rng.uniform(spec.x_min, spec.x_max, spec.points)
    y = spec.slope * x + spec.offset + rng.normal(0.0, spec.noise, spec.points)
    return [Sample(x=float(a), y=float(b), label=spec.label, event_ts=now) for a, b in zip(x, y)]


def insert_simulated(settings: Any, store: Any, spec: DriftSpec, ids: Mapping[str, str] | None = None) -> dict:
    """Insert the points in one transaction and audit it; returns what was inserted."""
    from ct_operators.events import emit, utcnow

    now = utcnow()
    inserted = store.insert_samples(simulate_points(spec, now))
    emit("simulated", settings.audit_log, **(ids or {}), inserted=inserted, spec=spec.as_dict())
    return {"inserted": inserted, "event_ts": now.isoformat(), "spec": spec.as_dict()}
