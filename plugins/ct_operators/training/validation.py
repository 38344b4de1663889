"""Data validation with two levels: errors stop the run, warnings are kept in a report."""
from __future__ import annotations

from ct_operators.config import PermanentError

from dataclasses import asdict, dataclass, field
from typing import Literal, Sequence

import numpy as np
import pandas as pd

Level = Literal["error", "warning"]


class DataValidationError(PermanentError):
    """The training data is unusable; the message lists every error found."""


@dataclass(frozen=True)
class Finding:
    level: Level
    check: str
    column: str | None
    message: str


@dataclass
class ValidationReport:
    rows: int
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def to_dict(self) -> dict:
        return {"rows": self.rows, "errors": len(self.errors), "warnings": len(self.warnings),
                "findings": [asdict(f) for f in self.findings]}

    def raise_for_errors(self) -> None:
        if self.errors:
            detail = "; ".join(f"{f.check}: {f.message}" for f in self.errors)
            raise DataValidationError(f"training data failed validation ({len(self.errors)} error(s)): {detail}")


def validate_frame(frame: pd.DataFrame, features: Sequence[str], target: str, *, min_rows: int,
                   max_missing_fraction: float = 0.0, iqr_factor: float = 1.5,
                   outliers_are_errors: bool = False) -> ValidationReport:
    """Required columns, numeric types, missing/non-finite values, row count, duplicates, IQR outliers."""
    report = ValidationReport(rows=len(frame))
    add = report.findings.append
    required = [*features, target]
    missing_cols = [c for c in required if c not in frame.columns]
    if missing_cols:
        add(Finding("error", "required_columns", None,
                    f"missing column(s) {missing_cols}; the data has {list(frame.columns)}"))
        return report
    if len(frame) < min_rows:
        add(Finding("error", "min_rows", None, f"{len(frame)} row(s), at least {min_rows} needed"))
    numeric: dict[str, pd.Series] = {}
    for col in required:
        values = pd.to_numeric(frame[col], errors="coerce")
        text = frame[col].notna() & values.isna()
        if text.any():
            sample = frame.loc[text, col].astype(str).head(3).tolist()
            add(Finding("error", "numeric_type", col, f"{int(text.sum())} non-numeric value(s) in {col!r}, e.g. {sample}"))
            continue
        numeric[col] = values.astype("float64")
    for col, values in numeric.items():
        missing = int(values.isna().sum())
        infinite = int(np.isinf(values).sum())
        if infinite:
            add(Finding("error", "finite_values", col, f"{infinite} infinite value(s) in {col!r}"))
        if missing and (len(values) == 0 or missing / len(values) > max_missing_fraction):
            add(Finding("error", "missing_values", col,
                        f"{missing} missing value(s) in {col!r} (allowed fraction {max_missing_fraction})"))
        elif missing:
            add(Finding("warning", "missing_values", col, f"{missing} missing value(s) in {col!r}, rows dropped"))
        finite = values[np.isfinite(values)]
        if len(finite) >= 2 and finite.nunique() == 1 and col in features:
            add(Finding("error", "constant_column", col, f"feature {col!r} is constant ({finite.iloc[0]}): nothing to learn"))
        if len(finite) >= 4:
            q1, q3 = finite.quantile(0.25), finite.quantile(0.75)
            iqr = q3 - q1
            outside = int(((finite < q1 - iqr_factor * iqr) | (finite > q3 + iqr_factor * iqr)).sum())
            if outside:
                add(Finding("error" if outliers_are_errors else "warning", "iqr_outliers", col,
                            f"{outside} value(s) of {col!r} outside [{q1 - iqr_factor * iqr:.4g}, {q3 + iqr_factor * iqr:.4g}]"))
    if len(numeric) == len(required):
        usable = int(pd.DataFrame(numeric).replace([np.inf, -np.inf], np.nan).dropna().shape[0])
        if usable < min_rows and len(frame) >= min_rows:
            add(Finding("error", "min_rows", None,
                        f"{usable} usable row(s) after dropping missing values, at least {min_rows} needed"))
    if numeric and len(numeric) == len(required):
        dupes = int(frame.duplicated(subset=required).sum())
        if dupes:
            add(Finding("warning", "duplicates", None, f"{dupes} duplicated row(s) of {required}"))
    return report


def clean_frame(frame: pd.DataFrame, features: Sequence[str], target: str) -> pd.DataFrame:
    """The validated frame with numeric columns and rows with missing values dropped."""
    cols = [*features, target]
    out = frame.copy()
    for col in cols:
        out[col] = pd.to_numeric(out[col], errors="raise").astype("float64")
    return out.dropna(subset=cols).reset_index(drop=True)
