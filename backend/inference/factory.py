"""Choosing and lazily loading the configured classifier (in-process ONNX Runtime by default)."""

from __future__ import annotations

import threading

from backend.config import Settings
from backend.core import metrics
from backend.inference.base import Classifier, InferenceUnavailable


class ClassifierProvider:
    """Loads the classifier on first use and retries loading after a failure, so a missing model or a
    down inference server makes analyses wait (and `/readyz` say why) instead of failing for good."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._classifier: Classifier | None = None
        self._error: str | None = None
        self._lock = threading.Lock()

    def _load(self) -> Classifier:
        settings = self.settings
        if settings.inference == "triton":
            from backend.inference.triton import TritonClassifier

            return TritonClassifier.from_settings(settings)
        from backend.inference.onnx import OnnxClassifier

        return OnnxClassifier(settings.model_repository, settings.model_name, threads=settings.onnx_threads)

    def __call__(self) -> Classifier:
        with self._lock:
            if self._classifier is None:
                try:
                    self._classifier = self._load()
                    self._error = None
                    info = self._classifier.info
                    metrics.MODEL_INFO.labels(info.name, info.version).set(1)
                except InferenceUnavailable as exc:
                    self._error = str(exc)
                    raise
            return self._classifier

    def readiness(self, _app: object = None) -> tuple[bool, str]:
        try:
            classifier = self()
        except InferenceUnavailable as exc:
            return False, str(exc)
        ok, detail = classifier.ready()
        info = classifier.info
        return ok, f"{info.name} v{info.version} ({self.settings.inference}): {detail}"
