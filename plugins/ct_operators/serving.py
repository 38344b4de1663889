"""Prediction service: resolve the champion through the serving pointer, load it from a checksummed
local cache (refilled from MLflow when missing or corrupt), score in vectorised batches, write in bulk."""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd

from ct_operators import registry
from ct_operators.config import Settings
from ct_operators.events import emit, utcnow
from ct_operators.store.base import FeatureStore
from ct_operators.store.types import TimeWindow

MANIFEST = "ct_manifest.json"
logger = logging.getLogger("ct_pipeline.serving")


class NoChampionError(RuntimeError):
    """There is no champion to score with yet: run ct_training first."""


class ModelCache:
    """Model versions under ``root/<name>/<version>``; a manifest of SHA-256 sums detects corruption."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._loaded: dict[tuple[str, str], Any] = {}

    def folder(self, name: str, version: str) -> Path:
        return self.root / name / str(version)

    def is_valid(self, name: str, version: str) -> bool:
        folder = self.folder(name, version)
        manifest = folder / MANIFEST
        if not manifest.exists():
            return False
        try:
            expected = json.loads(manifest.read_text())["files"]
        except (json.JSONDecodeError, KeyError, TypeError):
            return False
        files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST}
        return set(expected) == files and all(_sha256(folder / rel) == digest for rel, digest in expected.items())

    def run_id(self, name: str, version: str) -> str:
        return str(json.loads((self.folder(name, version) / MANIFEST).read_text())["run_id"])

    def fill(self, name: str, version: str, run_id: str) -> Path:
        """Download the version from MLflow into the cache atomically (temp folder, then rename)."""
        folder = self.folder(name, version)
        folder.parent.mkdir(parents=True, exist_ok=True)
        with _fill_lock(folder):  # threads of one process download once; processes meet in _install
            if self.is_valid(name, version):
                return folder
            return self._download(name, version, run_id, folder)

    def _download(self, name: str, version: str, run_id: str, folder: Path) -> Path:
        import mlflow

        tmp = Path(tempfile.mkdtemp(prefix=f".{version}-", dir=folder.parent))
        try:
            mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{name}/{version}", dst_path=str(tmp))
            digests = {p.relative_to(tmp).as_posix(): _sha256(p) for p in tmp.rglob("*") if p.is_file()}
            (tmp / MANIFEST).write_text(json.dumps({"run_id": run_id, "files": digests}, indent=1, sort_keys=True))
            self._install(tmp, folder, name, version)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return folder

    def _install(self, tmp: Path, folder: Path, name: str, version: str, attempts: int = 5) -> None:
        """Rename ``tmp`` into place. A valid copy that another process installed meanwhile is kept (it may
        be loading from it); an invalid one is first renamed aside, so no reader sees a half-deleted folder."""
        for _ in range(attempts):
            if self.is_valid(name, version):
                return
            if folder.exists():
                trash = folder.parent / f".{version}-old-{uuid.uuid4().hex}"
                with contextlib.suppress(FileNotFoundError):  # already moved aside by another process
                    folder.rename(trash)
                shutil.rmtree(trash, ignore_errors=True)
            try:
                tmp.rename(folder)
                return
            except OSError:  # another process installed its copy in between: check it on the next pass
                continue
        raise RuntimeError(f"could not install model {name} v{version} into the cache at {folder}")

    def load(self, name: str, version: str, lookup_run_id: Callable[[], str]) -> tuple[Any, str]:
        """The loaded model and where it came from: 'memory', 'cache' or 'mlflow' (refilled)."""
        import mlflow

        key = (name, str(version))
        if key in self._loaded and self.is_valid(name, version):
            return self._loaded[key], "memory"
        source = "cache"
        for attempt in range(1, 4):
            if not self.is_valid(name, version):
                self.fill(name, version, lookup_run_id())
                source = "mlflow"
            try:
                model = mlflow.pyfunc.load_model(str(self.folder(name, version)))
                break
            except Exception as exc:
                if attempt == 3 or not _vanished(exc):
                    raise
                # another process swapped the folder (moved a copy it judged corrupt aside) while this one
                # read it: check the cache again and read the copy now in place
                logger.warning("model %s v%s vanished from the cache while loading (%s); reading it again",
                            name, version, exc)
        self._loaded = {key: model}  # keep only the current version in memory
        return model, source


_FILL_LOCKS: dict[str, threading.Lock] = {}
_FILL_LOCKS_GUARD = threading.Lock()


def _fill_lock(folder: Path) -> threading.Lock:
    with _FILL_LOCKS_GUARD:
        return _FILL_LOCKS.setdefault(str(folder), threading.Lock())


def _vanished(exc: BaseException) -> bool:
    return isinstance(exc, FileNotFoundError) or "No such artifact" in str(exc)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ScoringSummary:
    model_name: str
    model_version: str
    scored: int = 0
    written: int = 0
    skipped_missing_features: int = 0
    batches: int = 0
    model_source: str = ""
    seconds: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)


class PredictionService:
    """Usable outside Airflow: ``PredictionService(settings, store).score_unscored()``."""

    def __init__(self, settings: Settings, store: FeatureStore, cache: ModelCache | None = None,
                 audit_fields: dict[str, str] | None = None) -> None:
        self.settings = settings
        self.store = store
        self.cache = cache or ModelCache(settings.model_cache_dir)
        self.audit_fields = audit_fields or {}

    def champion(self) -> registry.ModelRef:
        """The store's serving pointer, reconciled with the registry alias ``champion`` (the source of
        truth): repaired when they disagree, e.g. after a promotion killed between alias and pointer.
        When the registry cannot be reached, the pointer alone is used so a cached champion keeps serving."""
        pointer = self.store.get_serving_pointer()
        if pointer is not None:
            registry.parse_pointer(pointer)  # a malformed pointer is refused, never silently replaced
        try:
            client = registry.connect(self.settings)
            synced, repaired = registry.sync_serving_pointer(client, self.settings, self.store)
        except Exception as exc:  # MLflow down or unreachable: any client error
            if pointer is None:
                raise
            logger.warning("cannot check the serving pointer %s against the registry alias (%s: %s); "
                           "serving the pointer's version", pointer, type(exc).__name__, str(exc)[:300])
            synced, repaired = pointer, False
        if synced is None:
            raise NoChampionError(
                f"no champion for model {self.settings.registered_model_name!r}: run ct_training first")
        if repaired:
            emit("pointer_repaired", self.settings.audit_log, **self.audit_fields, serving_pointer=synced,
                 previous_pointer=pointer)
        name, version = registry.parse_pointer(synced)
        return registry.ModelRef(name=name, version=version, run_id="")

    def load_champion(self) -> tuple[Any, registry.ModelRef, str]:
        """The champion model (from memory, the local cache, or MLflow when the cache is gone or corrupt)."""
        ref = self.champion()

        def lookup_run_id() -> str:
            return registry.get_version(registry.connect(self.settings), ref.name, ref.version).run_id

        registry.connect(self.settings)
        model, source = self.cache.load(ref.name, ref.version, lookup_run_id)
        ref = registry.ModelRef(ref.name, ref.version, self.cache.run_id(ref.name, ref.version))
        return model, ref, source

    def score_unscored(self, batch_size: int | None = None, max_rows: int | None = None) -> ScoringSummary:
        """Score every sample the champion has not scored yet, batch by batch (keyset pagination)."""
        for name, value in (("batch_size", batch_size), ("max_rows", max_rows)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        model, ref, source = self.load_champion()
        batches = self._unscored_batches(ref, batch_size or self.settings.prediction_batch_size, max_rows)
        return self._score_batches(model, ref, source, batches)

    def score_window(self, window: TimeWindow) -> ScoringSummary:
        model, ref, source = self.load_champion()
        frame = self.store.fetch_samples(window)
        return self._score_batches(model, ref, source, _chunks(frame, self.settings.prediction_batch_size))

    def score_ids(self, ids: Sequence[int]) -> ScoringSummary:
        if any(not isinstance(i, (int, np.integer)) or isinstance(i, bool) for i in ids):
            raise TypeError(f"sample ids must be integers, got {list(ids)[:5]!r}")
        model, ref, source = self.load_champion()
        frame = self.store.fetch_samples_by_ids(list(ids))
        return self._score_batches(model, ref, source, _chunks(frame, self.settings.prediction_batch_size))

    def _unscored_batches(self, ref: registry.ModelRef, size: int, max_rows: int | None) -> Iterator[pd.DataFrame]:
        after, seen = 0, 0
        while max_rows is None or seen < max_rows:
            limit = size if max_rows is None else min(size, max_rows - seen)
            batch = self.store.fetch_unscored(ref.name, ref.version, after, limit)
            if batch.empty:
                return
            yield batch
            seen += len(batch)
            after = int(batch["id"].iloc[-1])

    def _score_batches(self, model: Any, ref: registry.ModelRef, source: str,
                       batches: Iterator[pd.DataFrame]) -> ScoringSummary:
        started = time.perf_counter()
        summary = ScoringSummary(model_name=ref.name, model_version=ref.version, model_source=source)
        features = list(self.settings.features)
        for batch in batches:
            values = batch[features].apply(pd.to_numeric, errors="coerce").astype("float64")
            ok = np.isfinite(values.to_numpy()).all(axis=1)  # missing, text or inf: not scorable
            usable, values = batch[ok], values[ok]
            summary.skipped_missing_features += len(batch) - len(usable)
            if usable.empty:
                continue
            t0 = time.perf_counter()
            predicted = np.asarray(model.predict(values), dtype="float64")
            per_row_ms = (time.perf_counter() - t0) * 1000.0 / len(usable)
            summary.written += self.store.insert_prediction_batch(
                usable["id"].to_numpy().tolist(), predicted.tolist(), model_name=ref.name,
                model_version=ref.version, mlflow_run_id=ref.run_id, inference_ms=per_row_ms, predicted_at=utcnow())
            summary.scored += len(usable)
            summary.batches += 1
        summary.seconds = time.perf_counter() - started
        emit("predicted", self.settings.audit_log, **self.audit_fields, **summary.as_dict())
        return summary


def _chunks(frame: pd.DataFrame, size: int) -> Iterator[pd.DataFrame]:
    for start in range(0, len(frame), size):
        yield frame.iloc[start:start + size]
