"""Export a trained run to the Triton model repository (ONNX) and to TFLite, with parity checks."""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from training import LABELS
from training.data import Dataset, DatasetError


class ExportError(DatasetError):
    """The exported model does not match the trained one (or cannot be written)."""


def _rel(path: Path) -> str:
    """``path`` relative to the repository when inside it (for files that are committed)."""
    from training.paths import REPO_ROOT

    try:
        return str(Path(path).resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def load_keras(path: Path):
    import keras

    path = Path(path)
    file = path / "model.keras" if path.is_dir() else path
    if not file.exists():
        raise DatasetError(f"no trained model at {file} (run `dermalink train` first)")
    return keras.models.load_model(file, compile=False)


def parity_images(dataset: Dataset, n: int, size: int, seed: int = 0) -> np.ndarray:
    """``n`` real images (spread over the classes), decoded with the shared preprocessing contract."""
    from backend.inference.preprocess import load_image

    rng = np.random.default_rng(seed)
    records = list(dataset.records)
    if not records:
        raise ExportError("no images for the parity check")
    by_class: dict[str, list] = {}
    for r in records:
        by_class.setdefault(r.label, []).append(r)
    chosen = []
    while len(chosen) < min(n, len(records)):
        for recs in by_class.values():
            if recs and len(chosen) < n:
                chosen.append(recs.pop(int(rng.integers(len(recs)))))
        if not any(by_class.values()):
            break
    return np.stack([load_image(r.path, size) for r in chosen])


def to_onnx(model, path: Path, opset: int = 17) -> None:
    import tensorflow as tf
    import tf2onnx

    size = int(model.input.shape[1])
    spec = [tf.TensorSpec([None, size, size, 3], tf.uint8, name="image")]
    path.parent.mkdir(parents=True, exist_ok=True)

    @tf.function(input_signature=spec)
    def serve(image):
        return {"probabilities": model(image, training=False)}

    tf2onnx.convert.from_function(serve, input_signature=spec, opset=opset, output_path=str(path))


def onnx_session(path: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def onnx_predict(session, images: np.ndarray, batch: int = 32) -> np.ndarray:
    name = session.get_inputs()[0].name
    out = session.get_outputs()[0].name
    return np.concatenate(
        [session.run([out], {name: images[s : s + batch]})[0] for s in range(0, len(images), batch)]
    )


def config_pbtxt(
    name: str,
    input_name: str,
    output_name: str,
    size: int,
    max_batch_size: int,
    cam_dims: tuple[int, int] | None = None,
) -> str:
    """The GPU Triton config; ``cam_dims`` ``(h, w)`` adds the ``class_maps`` output ``[h, w, classes]``."""
    preferred = [b for b in (4, 8, 16, 32, 64) if b <= max_batch_size]
    cam_comment, cam_output = "", ""
    if cam_dims is not None:
        from training.cam_export import CAM_OUTPUT

        cam_comment = (
            f"\n# Output: float32 {CAM_OUTPUT} [{cam_dims[0]}, {cam_dims[1]}, {len(LABELS)}], the class-activation"
            " maps (their spatial\n# mean is the logits): where the model looked, not a diagnosis."
        )
        cam_output = f""",
  {{
    name: "{CAM_OUTPUT}"
    data_type: TYPE_FP32
    dims: [ {cam_dims[0]}, {cam_dims[1]}, {len(LABELS)} ]
  }}"""
    return f"""# DermaLink: MobileNetV2 on HAM10000 for GPU Triton (NGC tritonserver container).
# Input: uint8 RGB, the whole image resized to {size}x{size} (antialiased bilinear, no crop).
# Output: float32 probabilities in labels.txt order (temperature-calibrated on validation).{cam_comment}
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: {max_batch_size}
input [
  {{
    name: "{input_name}"
    data_type: TYPE_UINT8
    dims: [ {size}, {size}, 3 ]
  }}
]
output [
  {{
    name: "{output_name}"
    data_type: TYPE_FP32
    dims: [ {len(LABELS)} ]
    label_filename: "labels.txt"
  }}{cam_output}
]
dynamic_batching {{
  preferred_batch_size: [ {", ".join(map(str, preferred))} ]
  max_queue_delay_microseconds: 2000
}}
instance_group [
  {{
    count: 1
    kind: KIND_GPU
  }}
]
optimization {{
  execution_accelerators {{
    gpu_execution_accelerator: [
      {{
        name: "tensorrt"
        parameters {{ key: "precision_mode" value: "FP16" }}
        parameters {{ key: "max_workspace_size_bytes" value: "1073741824" }}
        parameters {{ key: "trt_engine_cache_enable" value: "1" }}
      }}
    ]
  }}
}}
model_warmup [
  {{
    name: "warmup_batch_{preferred[-1]}"
    batch_size: {preferred[-1]}
    inputs {{
      key: "{input_name}"
      value {{
        data_type: TYPE_UINT8
        dims: [ {size}, {size}, 3 ]
        random_data: true
      }}
    }}
  }}
]
"""


def to_tflite(model, out_dir: Path, images: np.ndarray, reference: np.ndarray) -> dict:
    """float16 and dynamic-range int8 TFLite models, with agreement against Keras and size/latency."""
    import tensorflow as tf

    out_dir.mkdir(parents=True, exist_ok=True)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        saved = Path(tmp) / "saved"
        model.export(str(saved), format="tf_saved_model", verbose=False)
        for kind in ("float16", "int8_dynamic"):
            conv = tf.lite.TFLiteConverter.from_saved_model(str(saved))
            conv.optimizations = [tf.lite.Optimize.DEFAULT]
            if kind == "float16":
                conv.target_spec.supported_types = [tf.float16]
            path = out_dir / f"model_{kind}.tflite"
            path.write_bytes(conv.convert())
            probs, ms = _tflite_predict(path, images)
            results[kind] = {
                "path": _rel(path),
                "size_mb": round(path.stat().st_size / 1e6, 2),
                "max_abs_diff_vs_keras": float(np.abs(probs - reference).max()),
                "top1_agreement_vs_keras": float((probs.argmax(1) == reference.argmax(1)).mean()),
                "ms_per_image": round(ms, 2),
                "n_images": len(images),
            }
    return results


def _tflite_predict(path: Path, images: np.ndarray) -> tuple[np.ndarray, float]:
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter
    interp = Interpreter(model_path=str(path), num_threads=2)
    inp = interp.get_input_details()[0]
    out = interp.get_output_details()[0]
    interp.resize_tensor_input(inp["index"], [1, *images.shape[1:]])
    interp.allocate_tensors()
    probs = []
    start = time.perf_counter()
    for img in images:
        interp.set_tensor(inp["index"], img[None].astype(inp["dtype"]))
        interp.invoke()
        probs.append(interp.get_tensor(out["index"])[0])
    ms = (time.perf_counter() - start) * 1000 / len(images)
    return np.stack(probs), ms


CAM_TOLERANCE = 1e-5


def _with_cam(path: Path, session, images: np.ndarray) -> dict:
    """Replace the ONNX file at ``path`` by its CAM-capable version, after checking it on ``images``."""
    from training.cam_export import add_cam_output, cam_session, check_cam

    cam_path = path.with_name("model_cam.onnx")
    try:
        add_cam_output(path, cam_path)
    except ValueError as exc:
        raise ExportError(
            f"cannot add the class-activation maps output: {exc} (export with --no-cam)"
        ) from exc
    report = check_cam(session, cam_session(cam_path), images)
    worst = max(report["first_output_max_abs_diff"], report["softmax_of_mean_map_max_abs_diff"])
    if not worst <= CAM_TOLERANCE:
        raise ExportError(f"the CAM-capable model disagrees with the exported one ({report}): export refused")
    cam_path.replace(path)
    return report


def export(
    run: Path,
    repository: Path,
    name: str,
    version: str,
    dataset: Dataset,
    *,
    n_parity: int = 64,
    tolerance: float = 1e-4,
    tflite_dir: Path | None = None,
    max_batch_size: int = 32,
    cam: bool = True,
) -> dict:
    """Write ``<repository>/<name>/{config.pbtxt,labels.txt,triage.json,<version>/model.onnx}``.

    Fails (and leaves no half-written version) if ONNX Runtime differs from Keras by more than
    ``tolerance`` on real images. With ``cam`` (the default) the model gets a second output
    ``class_maps`` (`training.cam_export.add_cam_output`), checked on the same images: the first output
    unchanged, and the spatial mean of the maps giving the probabilities back.
    """
    run = Path(run)
    model = load_keras(run)
    size = int(model.input.shape[1])
    if int(model.output.shape[-1]) != len(LABELS):
        raise ExportError(f"model outputs {model.output.shape[-1]} classes, labels has {len(LABELS)}")
    images = parity_images(dataset, n_parity, size)
    reference = model.predict(images, batch_size=32, verbose=0)

    model_dir = Path(repository) / name
    with tempfile.TemporaryDirectory() as tmp:
        onnx_tmp = Path(tmp) / "model.onnx"
        to_onnx(model, onnx_tmp)
        session = onnx_session(onnx_tmp)
        got = onnx_predict(session, images)
        diff = float(np.abs(got - reference).max())
        if not diff <= tolerance:
            raise ExportError(
                f"ONNX Runtime differs from Keras by {diff:.3g} > {tolerance:g} on "
                f"{len(images)} real images: export refused"
            )
        inp, out = session.get_inputs()[0], session.get_outputs()[0]
        if inp.shape[0] not in (None, "N", "unk__0") and isinstance(inp.shape[0], int):
            raise ExportError(f"ONNX input batch dimension is fixed ({inp.shape}); expected dynamic")
        cam_report = _with_cam(onnx_tmp, session, images) if cam else None
        (model_dir / version).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(onnx_tmp, model_dir / version / "model.onnx")
    (model_dir / "labels.txt").write_text("".join(f"{lab}\n" for lab in LABELS))
    cam_dims = tuple(cam_report["class_maps_shape"][:2]) if cam_report else None
    (model_dir / "config.pbtxt").write_text(
        config_pbtxt(name, inp.name, out.name, size, max_batch_size, cam_dims=cam_dims)
    )
    triage_src = run / "triage.json" if run.is_dir() else run.parent / "triage.json"
    run_info = json.loads((run / "run.json").read_text()) if (run / "run.json").exists() else {}
    preds = (run / "val_predictions.npz") if run.is_dir() else run.parent / "val_predictions.npz"
    if preds.exists():  # recompute from the run's validation predictions with the current rules
        from training.triage import choose_thresholds

        with np.load(preds) as v:
            groups = v["lesions"] if "lesions" in v.files else None  # runs before the referral model: none
            triage = choose_thresholds(v["probs"], v["y"], version=version, groups=groups)
        triage.update(model=name)
        triage["temperature_baked_into_model"] = run_info.get("temperature")
        (model_dir / "triage.json").write_text(json.dumps(triage, indent=2) + "\n")
    elif triage_src.exists():
        triage = json.loads(triage_src.read_text())
        triage.update(model=name, version=version)
        triage["temperature_baked_into_model"] = run_info.get("temperature")
        (model_dir / "triage.json").write_text(json.dumps(triage, indent=2) + "\n")
    result = {
        "onnx": _rel(model_dir / version / "model.onnx"),
        "onnx_size_mb": round((model_dir / version / "model.onnx").stat().st_size / 1e6, 2),
        "parity_max_abs_diff": diff,
        "parity_top1_agreement": float((got.argmax(1) == reference.argmax(1)).mean()),
        "parity_images": len(images),
        "input": {"name": inp.name, "shape": [str(d) for d in inp.shape], "type": inp.type},
        "output": {"name": out.name, "shape": [str(d) for d in out.shape], "type": out.type},
    }
    if cam_report is not None:
        result["class_maps"] = cam_report
    if tflite_dir is not None:
        result["tflite"] = to_tflite(model, Path(tflite_dir), images, reference)
    lines = [
        f"wrote {model_dir} (version {version}); ONNX {result['onnx_size_mb']} MB",
        f"Keras vs ONNX Runtime on {len(images)} real images: max |diff| {diff:.2e} (tolerance {tolerance:g})",
    ]
    if cam_report is not None:
        lines.append(
            f"class_maps {cam_report['class_maps_shape']}: first output bit-identical "
            f"{cam_report['first_output_bit_identical']}, softmax(mean map) vs probabilities max |diff| "
            f"{cam_report['softmax_of_mean_map_max_abs_diff']:.2e}"
        )
    for kind, r in result.get("tflite", {}).items():
        lines.append(
            f"TFLite {kind}: {r['size_mb']} MB, top-1 agreement {r['top1_agreement_vs_keras']:.3f}, "
            f"max |diff| {r['max_abs_diff_vs_keras']:.3g}, {r['ms_per_image']} ms/image"
        )
    result["text"] = "\n".join(lines)
    return result
