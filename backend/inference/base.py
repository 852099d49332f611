"""The `Classifier` interface every inference backend implements."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

import numpy as np


class InferenceError(Exception):
    """Inference failed. ``retryable`` says whether trying again later may succeed."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class InferenceUnavailable(InferenceError):
    """The inference service cannot answer now (down, not ready, timed out): retry later."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=True)


class InferenceRejected(InferenceError):
    """The request itself is wrong for this model (shape, type, missing model): do not retry."""

    def __init__(self, message: str) -> None:
        super().__init__(message, retryable=False)


CAM_OUTPUT = "class_maps"  # the optional second model output: class-activation maps [N, h, w, classes]


@dataclass(frozen=True)
class Prediction:
    """Per-class probabilities for one image, in the model's label order.

    ``class_map``: the top class's class-activation map ``[h, w]`` (7x7) when the model has the
    ``class_maps`` output, else None: where the model looked, not a diagnosis (see `cam`)."""

    probabilities: dict[str, float]
    model_name: str
    model_version: str
    inference_ms: float
    class_map: np.ndarray | None = field(default=None, compare=False, repr=False)

    @property
    def top_label(self) -> str:
        return max(self.probabilities, key=self.probabilities.__getitem__)

    @property
    def top_probability(self) -> float:
        return self.probabilities[self.top_label]


@dataclass(frozen=True)
class ModelInfo:
    name: str
    version: str
    labels: tuple[str, ...]
    extra: dict = field(default_factory=dict)


def top_class_maps(probs: np.ndarray, maps: np.ndarray | None) -> list[np.ndarray | None]:
    """Each image's ``[h, w]`` map of its top class from ``maps [N, h, w, classes]`` (None: no maps)."""
    if maps is None:
        return [None] * len(probs)
    maps = np.asarray(maps, np.float32)
    top = np.asarray(probs).argmax(axis=1)
    return [np.ascontiguousarray(maps[i, ..., c]) for i, c in enumerate(top)]


class Classifier(abc.ABC):
    """Classifies preprocessed uint8 RGB batches ``[N, 224, 224, 3]`` (see `preprocess`)."""

    @property
    @abc.abstractmethod
    def info(self) -> ModelInfo: ...

    @abc.abstractmethod
    def predict_batch(self, images: np.ndarray) -> list[Prediction]:
        """Return one `Prediction` per image. Raises `InferenceError` subclasses on failure."""

    def ready(self) -> tuple[bool, str]:
        """Whether the classifier can answer now, and why not."""
        return True, "ready"

    def close(self) -> None:  # pragma: no cover - optional
        return None
