"""Reproducible train/test split."""
from __future__ import annotations

import math
from typing import Sequence

import pandas as pd
from sklearn.model_selection import train_test_split


MIN_SPLIT_ROWS = 2  # R² needs at least two points on each side


def split_frame(frame: pd.DataFrame, *, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """At least two rows in each part, so the holdout can always be scored."""
    if len(frame) < 2 * MIN_SPLIT_ROWS:
        raise ValueError(f"cannot split {len(frame)} row(s) into train and test sets of at least "
                         f"{MIN_SPLIT_ROWS} rows each; load more data or widen the window")
    n_test = min(max(MIN_SPLIT_ROWS, math.ceil(test_size * len(frame))), len(frame) - MIN_SPLIT_ROWS)
    train, test = train_test_split(frame, test_size=n_test, random_state=seed)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def xy(frame: pd.DataFrame, features: Sequence[str], target: str) -> tuple[pd.DataFrame, pd.Series]:
    return frame[list(features)].astype("float64"), frame[target].astype("float64")
