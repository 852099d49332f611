"""In-process ONNX Runtime classifier: the embedded default.

Loads ``<repository>/<model>/<version>/model.onnx`` and ``<repository>/<model>/labels.txt``
(Triton's model-repository layout, so one exported folder serves both paths).
Input and output names come from the ONNX graph, not from constants: the probabilities are the first
output, and an output named ``class_maps`` (when the model has one) gives each prediction its top
class's activation map.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from backend.inference.base import (
    CAM_OUTPUT,
    Classifier,
    InferenceRejected,
    InferenceUnavailable,
    ModelInfo,
    Prediction,
    top_class_maps,
)


def latest_version(model_dir: Path) -> str:
    versions = sorted(
        int(p.name)
        for p in model_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and (p / "model.onnx").exists()
    )
    if not versions:
        raise InferenceUnavailable(f"no <version>/model.onnx under {model_dir}")
    return str(versions[-1])


def read_labels(model_dir: Path) -> tuple[str, ...]:
    path = model_dir / "labels.txt"
    if not path.exists():
        raise InferenceUnavailable(f"{path} is missing")
    labels = tuple(line.strip() for line in path.read_text().splitlines() if line.strip())
    if not labels:
        raise InferenceUnavailable(f"{path} is empty")
    return labels


class OnnxClassifier(Classifier):
    def __init__(
        self,
        repository: Path,
        model_name: str,
        version: str | None = None,
        *,
        threads: int = 0,
        spinning: bool = False,
    ) -> None:
        """``spinning``: let ONNX Runtime's worker threads busy-wait for the next call (its default). Off
        here: in a server the same cores decode and encode images between calls, and spinning threads
        took them away (on a loaded 2-core machine, batch-1 p50 was 60-76 ms spinning, 8-20 ms not)."""
        model_dir = Path(repository) / model_name
        if not model_dir.is_dir():
            raise InferenceUnavailable(f"model {model_name!r} not found in {repository}")
        self._version = version or latest_version(model_dir)
        self._labels = read_labels(model_dir)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            options.add_session_config_entry("session.inter_op.allow_spinning", "0")
        path = model_dir / self._version / "model.onnx"
        try:
            self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise InferenceUnavailable(f"cannot load {path}: {exc}") from exc
        (inp,) = self._session.get_inputs()
        out = self._session.get_outputs()[0]
        self._input_name, self._input_shape = inp.name, inp.shape
        self._output_name = out.name
        names = [o.name for o in self._session.get_outputs()]
        self._outputs = [out.name, CAM_OUTPUT] if CAM_OUTPUT in names[1:] else [out.name]
        width = out.shape[-1]
        if isinstance(width, int) and width != len(self._labels):
            raise InferenceUnavailable(
                f"{model_dir}/labels.txt has {len(self._labels)} labels but the model outputs {width}"
            )
        self._info = ModelInfo(name=model_name, version=self._version, labels=self._labels)

    @property
    def info(self) -> ModelInfo:
        return self._info

    def _check(self, images: np.ndarray) -> None:
        if images.dtype != np.uint8:
            raise InferenceRejected(f"expected uint8 pixels, got {images.dtype}")
        expected = self._input_shape
        if images.ndim != len(expected) or any(
            isinstance(e, int) and e != g for e, g in zip(expected[1:], images.shape[1:], strict=True)
        ):
            raise InferenceRejected(f"expected input shape {expected}, got {list(images.shape)}")

    def predict_batch(self, images: np.ndarray) -> list[Prediction]:
        self._check(images)
        start = time.perf_counter()
        probs, *maps = self._session.run(self._outputs, {self._input_name: images})
        elapsed = (time.perf_counter() - start) * 1000 / max(len(images), 1)
        probs = np.asarray(probs)
        return [
            Prediction(
                probabilities={label: float(p) for label, p in zip(self._labels, row, strict=True)},
                model_name=self._info.name,
                model_version=self._info.version,
                inference_ms=elapsed,
                class_map=cam,
            )
            for row, cam in zip(probs, top_class_maps(probs, maps[0] if maps else None), strict=True)
        ]
