"""Derive the CPU Triton model repository from the exported one.

The exported repository (``model_repository/<model>/{config.pbtxt,labels.txt,<v>/model.onnx}``) is
written for GPU Triton: ``platform: "onnxruntime_onnx"`` with TensorRT. The Triton binary in the
``nvidia-pytriton`` wheel has only the python backend, so for CPU we derive a repository in which a
python-backend model (``triton_model.py``, copied as ``<v>/model.py``) runs the *same* ``model.onnx``
with ONNX Runtime, with dynamic batching and ``KIND_CPU`` instances.

Input/output names, dims and types come from the ONNX graph (the source of truth: the probabilities, and
the class-activation maps ``class_maps`` when the model has them); the exported
``config.pbtxt`` contributes ``max_batch_size``. The labels travel with the model: ``labels.txt``
plus a ``labels`` config parameter, which `TritonClassifier` reads from the served model config.

Derivation is idempotent: unchanged files are not rewritten, stale versions are removed.
"""

from __future__ import annotations

import filecmp
import shutil
from dataclasses import dataclass
from pathlib import Path

from backend.inference.base import CAM_OUTPUT
from backend.inference.onnx import read_labels

PYTHON_MODEL_SOURCE = Path(__file__).with_name("triton_model.py")
DEFAULT_MAX_BATCH_SIZE = 32

_ONNX_TO_TRITON = {
    "tensor(uint8)": "TYPE_UINT8",
    "tensor(int8)": "TYPE_INT8",
    "tensor(int32)": "TYPE_INT32",
    "tensor(int64)": "TYPE_INT64",
    "tensor(float16)": "TYPE_FP16",
    "tensor(float)": "TYPE_FP32",
    "tensor(double)": "TYPE_FP64",
}


class RepositoryError(Exception):
    """The exported repository cannot be turned into a servable CPU repository."""


@dataclass(frozen=True)
class CpuRepoOptions:
    instances: int = 1
    intra_op_threads: int = 0  # 0: ONNX Runtime's default (all cores)
    max_queue_delay_us: int = 0
    preferred_batch_sizes: tuple[int, ...] = (4, 8, 16)
    max_batch_size: int | None = None  # None: from the exported config.pbtxt, else DEFAULT_MAX_BATCH_SIZE


def _tensor_specs(
    onnx_path: Path,
) -> tuple[list[tuple[str, str, list[int]]], list[tuple[str, str, list[int]]]]:
    """(name, triton type, dims without the batch dimension) for the graph's inputs and outputs."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise RepositoryError(f"cannot load {onnx_path}: {exc}") from exc

    def spec(arg) -> tuple[str, str, list[int]]:
        if arg.type not in _ONNX_TO_TRITON:
            raise RepositoryError(f"{onnx_path}: {arg.name} has unsupported type {arg.type}")
        dims = [d if isinstance(d, int) and d > 0 else -1 for d in arg.shape[1:]]
        if isinstance(arg.shape[0], int) and arg.shape[0] > 0:
            raise RepositoryError(f"{onnx_path}: {arg.name} has a fixed batch dimension {arg.shape[0]}")
        return arg.name, _ONNX_TO_TRITON[arg.type], dims

    return [spec(a) for a in session.get_inputs()], [spec(a) for a in session.get_outputs()]


def read_config(path: Path):
    """Parse a ``config.pbtxt`` into tritonclient's ``ModelConfig`` protobuf."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    config = model_config_pb2.ModelConfig()
    if path.exists():
        try:
            text_format.Parse(path.read_text(), config)
        except text_format.ParseError as exc:
            raise RepositoryError(f"{path}: {exc}") from exc
    return config


def cpu_config_text(
    model_name: str,
    onnx_path: Path,
    labels: tuple[str, ...],
    exported_config: Path | None = None,
    options: CpuRepoOptions = CpuRepoOptions(),
) -> str:
    """The ``config.pbtxt`` of the derived python-backend model."""
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2 as mc

    exported = read_config(exported_config) if exported_config else mc.ModelConfig()
    inputs, outputs = _tensor_specs(onnx_path)
    extra = [o[0] for o in outputs[1:]]
    if not outputs or extra not in ([], [CAM_OUTPUT]):
        raise RepositoryError(
            f"{onnx_path}: expected the probabilities and optionally {CAM_OUTPUT!r}, found "
            f"{[o[0] for o in outputs]}"
        )
    out_width = outputs[0][2][-1] if outputs[0][2] else -1
    if out_width not in (-1, len(labels)):
        raise RepositoryError(f"{onnx_path} outputs {out_width} classes but labels.txt has {len(labels)}")

    config = mc.ModelConfig()
    config.name = model_name
    config.backend = "python"
    config.max_batch_size = options.max_batch_size or exported.max_batch_size or DEFAULT_MAX_BATCH_SIZE
    for name, dtype, dims in inputs:
        config.input.add(name=name, data_type=mc.DataType.Value(dtype), dims=dims)
    for i, (name, dtype, dims) in enumerate(outputs):
        output = config.output.add(name=name, data_type=mc.DataType.Value(dtype), dims=dims)
        if i == 0:  # the probabilities; the class maps have no labels of their own
            output.label_filename = "labels.txt"
    batching = config.dynamic_batching
    batching.preferred_batch_size.extend(
        b for b in options.preferred_batch_sizes if b <= config.max_batch_size
    )
    batching.max_queue_delay_microseconds = options.max_queue_delay_us
    config.instance_group.add(count=options.instances, kind=mc.ModelInstanceGroup.KIND_CPU)
    config.parameters["labels"].string_value = ",".join(labels)
    config.parameters["intra_op_threads"].string_value = str(options.intra_op_threads)
    config.parameters["onnx_file"].string_value = "model.onnx"
    return (
        f"# Derived by `dermalink triton repo` from {exported_config or onnx_path}; do not edit.\n"
        "# CPU stand-in for the GPU config: python backend running the same model.onnx with ONNX Runtime.\n"
        + text_format.MessageToString(config)
    )


def _copy_if_changed(src: Path, dst: Path) -> bool:
    if dst.exists() and filecmp.cmp(src, dst, shallow=False):
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".tmp")
    shutil.copyfile(src, tmp)
    tmp.replace(dst)
    return True


def _write_if_changed(dst: Path, text: str) -> bool:
    if dst.exists() and dst.read_text() == text:
        return False
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(text)
    return True


def derive_model(
    src_repo: Path, model_name: str, dst_repo: Path, options: CpuRepoOptions = CpuRepoOptions()
) -> Path:
    """Derive ``dst_repo/model_name`` from ``src_repo/model_name``; returns the derived model folder."""
    src = Path(src_repo) / model_name
    if not src.is_dir():
        raise RepositoryError(f"model {model_name!r} not found in {src_repo}")
    versions = sorted(
        (p.name for p in src.iterdir() if p.is_dir() and p.name.isdigit() and (p / "model.onnx").exists()),
        key=int,
    )
    if not versions:
        raise RepositoryError(f"no <version>/model.onnx under {src}")
    try:
        labels = read_labels(src)
    except Exception as exc:
        raise RepositoryError(str(exc)) from exc
    dst = Path(dst_repo) / model_name
    exported_config = src / "config.pbtxt"
    text = cpu_config_text(
        model_name,
        src / versions[-1] / "model.onnx",
        labels,
        exported_config if exported_config.exists() else None,
        options,
    )
    _write_if_changed(dst / "config.pbtxt", text)
    _write_if_changed(dst / "labels.txt", "\n".join(labels) + "\n")
    for version in versions:
        _copy_if_changed(src / version / "model.onnx", dst / version / "model.onnx")
        _copy_if_changed(PYTHON_MODEL_SOURCE, dst / version / "model.py")
    for stale in dst.iterdir():
        if stale.is_dir() and stale.name.isdigit() and stale.name not in versions:
            shutil.rmtree(stale)
    return dst


def derive_repository(
    src_repo: Path,
    dst_repo: Path,
    models: list[str] | None = None,
    options: CpuRepoOptions = CpuRepoOptions(),
) -> list[Path]:
    """Derive every model of ``src_repo`` that has a ``<version>/model.onnx`` (or only ``models``)."""
    src_repo = Path(src_repo)
    if models is None:
        models = (
            sorted(p.name for p in src_repo.iterdir() if p.is_dir() and any(p.glob("[0-9]*/model.onnx")))
            if src_repo.is_dir()
            else []
        )
    if not models:
        raise RepositoryError(f"no exported models (<model>/<version>/model.onnx) in {src_repo}")
    Path(dst_repo).mkdir(parents=True, exist_ok=True)
    return [derive_model(src_repo, name, dst_repo, options) for name in models]
