"""Matplotlib figures logged to MLflow (headless Agg backend)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def predicted_vs_actual(y_true, y_pred, title: str = "Predicted vs actual"):
    fig, ax = plt.subplots(figsize=(5, 5))
    ax.scatter(y_true, y_pred, s=18)
    lo, hi = float(np.min([np.min(y_true), np.min(y_pred)])), float(np.max([np.max(y_true), np.max(y_pred)]))
    ax.plot([lo, hi], [lo, hi], "k--", lw=1, label="ideal")
    ax.set(xlabel="actual", ylabel="predicted", title=title)
    ax.legend()
    fig.tight_layout()
    return fig


def residuals(y_true, y_pred):
    fig, ax = plt.subplots(figsize=(6, 4))
    res = np.asarray(y_true) - np.asarray(y_pred)
    ax.scatter(y_pred, res, s=18)
    ax.axhline(0, color="k", lw=1)
    ax.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals")
    fig.tight_layout()
    return fig


def champion_vs_challenger(x, y_true, challenger_pred, champion_pred=None, feature: str = "x"):
    fig, ax = plt.subplots(figsize=(6, 4))
    order = np.argsort(np.asarray(x))
    xs = np.asarray(x)[order]
    ax.scatter(xs, np.asarray(y_true)[order], color="k", s=18, label="actual")
    ax.plot(xs, np.asarray(challenger_pred)[order], "o-", label="challenger")
    if champion_pred is not None:
        ax.plot(xs, np.asarray(champion_pred)[order], "s--", label="champion")
    ax.set(xlabel=feature, ylabel="target", title="Challenger vs champion on the holdout")
    ax.legend()
    fig.tight_layout()
    return fig


def predictions_over_time(frame: pd.DataFrame):
    """frame: event_ts, y, predicted."""
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(frame["event_ts"], frame["y"], "o", ms=4, label="actual")
    ax.plot(frame["event_ts"], frame["predicted"], "x", ms=5, label="predicted")
    ax.set(xlabel="event time (UTC)", ylabel="target", title="Champion predictions and truth over time")
    ax.legend()
    fig.autofmt_xdate()
    fig.tight_layout()
    return fig


def close(fig) -> None:
    plt.close(fig)
