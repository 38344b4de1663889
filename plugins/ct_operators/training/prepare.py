"""Reproducible train/test split."""
from __future__ import annotations

from typing import Sequence

import pandas as pd
from sklearn.model_selection import train_test_split


def split_frame(frame: pd.DataFrame, *, test_size: float, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    if len(frame) < 2:
        raise ValueError(f"cannot split {len(frame)} row(s) into train and test sets")
    train, test = train_test_split(frame, test_size=test_size, random_state=seed)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def xy(frame: pd.DataFrame, features: Sequence[str], target: str) -> tuple[pd.DataFrame, pd.Series]:
    return frame[list(features)].astype("float64"), frame[target].astype("float64")
