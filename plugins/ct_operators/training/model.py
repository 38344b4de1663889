"""Build the scikit-learn pipeline named by configuration (import paths + hyperparameters)."""
from __future__ import annotations

from ct_operators.config import PermanentError

import importlib
from typing import Any, Mapping

from sklearn.base import RegressorMixin
from sklearn.pipeline import Pipeline


class ModelConfigError(PermanentError):
    """The configured model cannot be built; the message names the setting to fix."""


def import_class(path: str, setting: str) -> type:
    module_name, _, class_name = path.rpartition(".")
    if not module_name:
        raise ModelConfigError(f"setting {setting!r}: {path!r} is not a dotted import path like 'sklearn.linear_model.Ridge'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelConfigError(f"setting {setting!r}: cannot import module {module_name!r} ({exc})") from exc
    cls = getattr(module, class_name, None)
    if not isinstance(cls, type):
        raise ModelConfigError(f"setting {setting!r}: module {module_name!r} has no class {class_name!r}")
    return cls


def build_pipeline(model_class: str, model_params: Mapping[str, Any], preprocessor_class: str = "") -> Pipeline:
    """Checks the class is a regressor and its hyperparameters are accepted, before any data is read."""
    cls = import_class(model_class, "model_class")
    if not issubclass(cls, RegressorMixin):
        raise ModelConfigError(f"setting 'model_class': {model_class} is not a scikit-learn regressor")
    try:
        estimator = cls(**dict(model_params))
    except TypeError as exc:
        raise ModelConfigError(f"setting 'model_params': {model_class} rejects {dict(model_params)} ({exc})") from exc
    check = getattr(estimator, "_validate_params", None)  # sklearn's constraints, checked without fitting
    if check is not None:
        try:
            check()
        except (ValueError, TypeError) as exc:
            raise ModelConfigError(f"setting 'model_params': invalid hyperparameters for {model_class}: {exc}") from exc
    steps = []
    if preprocessor_class:
        steps.append(("preprocess", import_class(preprocessor_class, "preprocessor_class")()))
    steps.append(("model", estimator))
    return Pipeline(steps)
