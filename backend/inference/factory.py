"""Choosing and lazily loading the configured classifier (in-process ONNX Runtime by default)."""

from __future__ import annotations

import os
import threading

from backend.config import Settings
from backend.core import metrics
from backend.inference.base import Classifier, InferenceUnavailable


def model_threads(processes: int = 1) -> int:
    """ONNX Runtime threads for the model of one of ``processes`` server processes on this machine, when
    `ONNX_THREADS` is not set: that process's share of the cores less one, at least one. The one left
    over is for the request path (decoding, encoding, Python): the model's threads meet after every
    layer, so each time one of them is pushed off its core by other work, all of them wait; on two
    cores a one-thread model beside the request path answered sooner and used less CPU than a
    two-thread one (`dermalink bench paired`, `docs/benchmarks/README.md`). (ONNX Runtime's own default is every core, which
    `dermalink bench api` keeps for its bare model.)"""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // processes - 1)


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

        threads = settings.onnx_threads or model_threads()
        return OnnxClassifier(settings.model_repository, settings.model_name, threads=threads)

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
