"""Data validation: errors stop the run, warnings are reported; clean_frame drops what was allowed."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ct_operators.training.validation import DataValidationError, clean_frame, validate_frame

FEATURES = ("x",)


def good_frame(n: int = 20) -> pd.DataFrame:
    x = np.linspace(0.0, 19.0, n)
    return pd.DataFrame({"id": range(n), "x": x, "y": 2 * x + 1 + np.sin(x), "label": "a"})


def checks(report, level: str) -> set[tuple[str, str | None]]:
    return {(f.check, f.column) for f in report.findings if f.level == level}


def validate(frame: pd.DataFrame, **kw):
    kw.setdefault("min_rows", 10)
    return validate_frame(frame, FEATURES, "y", **kw)


def test_good_data_passes() -> None:
    report = validate(good_frame())
    assert report.findings == []
    report.raise_for_errors()
    assert report.to_dict() == {"rows": 20, "errors": 0, "warnings": 0, "findings": []}


def test_empty_frame_is_an_error() -> None:
    report = validate(pd.DataFrame({"x": pd.Series([], dtype="float64"), "y": pd.Series([], dtype="float64")}))
    assert ("min_rows", None) in checks(report, "error")
    with pytest.raises(DataValidationError, match="0 row"):
        report.raise_for_errors()


def test_frame_without_columns_is_an_error() -> None:
    report = validate(pd.DataFrame())
    assert checks(report, "error") == {("required_columns", None)}


def test_missing_column_named() -> None:
    report = validate(good_frame().drop(columns=["y"]))
    assert checks(report, "error") == {("required_columns", None)}
    with pytest.raises(DataValidationError, match=r"missing column\(s\) \['y'\]"):
        report.raise_for_errors()


def test_min_rows() -> None:
    assert ("min_rows", None) in checks(validate(good_frame(9)), "error")
    assert validate(good_frame(10)).errors == []
    with pytest.raises(DataValidationError, match="9 row.*at least 10"):
        validate(good_frame(9)).raise_for_errors()


def test_text_in_numeric_column() -> None:
    frame = good_frame().astype({"x": object})
    frame.loc[3, "x"] = "abc"
    report = validate(frame)
    assert ("numeric_type", "x") in checks(report, "error")
    with pytest.raises(DataValidationError, match="non-numeric.*'x'.*abc"):
        report.raise_for_errors()


def test_numeric_strings_are_accepted() -> None:
    frame = good_frame().astype({"x": str})
    assert validate(frame).errors == []
    assert clean_frame(frame, FEATURES, "y")["x"].dtype == "float64"


def test_nan_target_is_an_error_by_default() -> None:
    frame = good_frame()
    frame.loc[[2, 5], "y"] = math.nan
    report = validate(frame)
    assert ("missing_values", "y") in checks(report, "error")
    with pytest.raises(DataValidationError, match="2 missing value.*'y'"):
        report.raise_for_errors()


def test_nan_within_allowed_fraction_is_a_warning_and_dropped() -> None:
    frame = good_frame()
    frame.loc[[2, 5], "y"] = math.nan
    report = validate(frame, max_missing_fraction=0.2)
    assert report.errors == []
    assert ("missing_values", "y") in checks(report, "warning")
    cleaned = clean_frame(frame, FEATURES, "y")
    assert len(cleaned) == 18
    assert cleaned["y"].notna().all()


def test_all_missing_target_is_an_error_even_when_fraction_allowed() -> None:
    frame = good_frame()
    frame["y"] = math.nan
    assert ("missing_values", "y") in checks(validate(frame, max_missing_fraction=0.5), "error")


@pytest.mark.parametrize("value", [math.inf, -math.inf])
def test_infinite_values_are_errors(value: float) -> None:
    frame = good_frame()
    frame.loc[4, "x"] = value
    report = validate(frame)
    assert ("finite_values", "x") in checks(report, "error")
    with pytest.raises(DataValidationError, match="infinite.*'x'"):
        report.raise_for_errors()


def test_constant_feature_is_an_error() -> None:
    frame = good_frame()
    frame["x"] = 3.0
    report = validate(frame)
    assert ("constant_column", "x") in checks(report, "error")
    with pytest.raises(DataValidationError, match="constant"):
        report.raise_for_errors()


def test_constant_target_is_not_a_constant_feature_error() -> None:
    frame = good_frame()
    frame["y"] = 1.0
    assert ("constant_column", "y") not in checks(validate(frame), "error")


def test_duplicates_are_a_warning() -> None:
    frame = pd.concat([good_frame(), good_frame().head(3)], ignore_index=True)
    report = validate(frame)
    assert report.errors == []
    assert ("duplicates", None) in checks(report, "warning")
    assert "3 duplicated" in report.warnings[0].message


def outlier_frame() -> pd.DataFrame:
    frame = good_frame()
    frame.loc[7, "y"] = 10_000.0
    return frame


def test_iqr_outlier_is_a_warning_by_default() -> None:
    report = validate(outlier_frame())
    assert report.errors == []
    assert ("iqr_outliers", "y") in checks(report, "warning")
    report.raise_for_errors()  # warnings do not raise


def test_iqr_outlier_is_an_error_when_configured() -> None:
    report = validate(outlier_frame(), outliers_are_errors=True)
    assert ("iqr_outliers", "y") in checks(report, "error")
    with pytest.raises(DataValidationError, match="iqr_outliers"):
        report.raise_for_errors()


def test_iqr_factor_widens_the_fence() -> None:
    assert validate(outlier_frame(), iqr_factor=10_000.0).findings == []


def test_error_message_lists_every_error() -> None:
    frame = good_frame(5)
    frame.loc[1, "y"] = math.nan
    frame.loc[2, "x"] = math.inf
    with pytest.raises(DataValidationError) as info:
        validate(frame).raise_for_errors()
    text = str(info.value)
    assert "3 error(s)" in text
    for check in ("min_rows", "missing_values", "finite_values"):
        assert check in text


def test_report_dict_is_json_ready() -> None:
    import json

    report = validate(outlier_frame())
    data = json.loads(json.dumps(report.to_dict()))
    assert data["warnings"] == 1 and data["findings"][0]["check"] == "iqr_outliers"


def test_min_rows_counts_usable_rows() -> None:
    """Regression: min_rows counted rows before the allowed missing values were dropped."""
    frame = good_frame(12)
    frame.loc[[1, 2, 3], "y"] = math.nan  # 9 usable rows, 25% missing (allowed below)
    report = validate(frame, min_rows=10, max_missing_fraction=0.3)
    assert len(clean_frame(frame, FEATURES, "y")) == 9
    assert ("min_rows", None) in checks(report, "error")
    with pytest.raises(DataValidationError, match="9 usable row"):
        report.raise_for_errors()
    # enough usable rows left: only the warning remains
    assert validate(frame, min_rows=9, max_missing_fraction=0.3).errors == []
