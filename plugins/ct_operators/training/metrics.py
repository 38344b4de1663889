"""Regression scores shared by evaluation, model validation and monitoring."""
from __future__ import annotations

import numpy as np
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score

from ct_operators.training.decide import Scores


def regression_scores(y_true, y_pred) -> Scores:
    y_true = np.asarray(y_true, dtype="float64")
    y_pred = np.asarray(y_pred, dtype="float64")
    if len(y_true) < 2:
        raise ValueError(f"need at least 2 labelled points to score a model, got {len(y_true)}")
    if y_true.shape != y_pred.shape:
        raise ValueError(f"{len(y_pred)} predictions for {len(y_true)} targets")
    return Scores(mae=float(mean_absolute_error(y_true, y_pred)),
                  rmse=float(np.sqrt(mean_squared_error(y_true, y_pred))),
                  r2=float(r2_score(y_true, y_pred)))
