"""The promotion rule, as a pure function with its reasons (the seed's rule plus a floor)."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Scores:
    mae: float
    rmse: float
    r2: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class Decision:
    promote: bool
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"promote": self.promote, "reasons": self.reasons}


def decide_promotion(challenger: Scores, champion: Scores | None, *, r2_floor: float,
                     serves: bool, serve_error: str = "") -> Decision:
    """Promote only if the challenger serves, clears the R² floor, and (when there is a champion)
    has a lower MAE AND a higher R² on the same holdout."""
    reasons: list[str] = []
    ok = True
    if not serves:
        ok = False
        reasons.append(f"challenger failed the load-and-serve check: {serve_error or 'no usable predictions'}")
    if not all(math.isfinite(v) for v in (challenger.mae, challenger.r2)):
        ok = False
        reasons.append("challenger metrics are not finite")
    if challenger.r2 <= r2_floor:
        ok = False
        reasons.append(f"challenger R² {challenger.r2:.4f} is not above the floor {r2_floor:.4f}")
    else:
        reasons.append(f"challenger R² {challenger.r2:.4f} is above the floor {r2_floor:.4f}")
    if champion is None:
        reasons.append("no champion yet")
    else:
        if challenger.mae < champion.mae:
            reasons.append(f"MAE {challenger.mae:.4f} < champion's {champion.mae:.4f}")
        else:
            ok = False
            reasons.append(f"MAE {challenger.mae:.4f} is not lower than champion's {champion.mae:.4f}")
        if challenger.r2 > champion.r2:
            reasons.append(f"R² {challenger.r2:.4f} > champion's {champion.r2:.4f}")
        else:
            ok = False
            reasons.append(f"R² {challenger.r2:.4f} is not higher than champion's {champion.r2:.4f}")
    return Decision(promote=ok, reasons=reasons)
