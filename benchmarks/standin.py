"""A small stand-in for the exported model, in the exported repository's layout.

Used by the Triton tests (and `dermalink triton repo --standin`) until the trained
``model_repository/ham10000_mobilenetv2/1/model.onnx`` exists. Same contract as the real model:
uint8 ``image`` ``[-1, 224, 224, 3]`` -> float32 probabilities ``[-1, 7]``. The graph scales pixels to
[-1, 1], pools 4x4 patches (a real computation over every pixel), applies a fixed projection and a
softmax, so the probabilities differ from image to image and parity checks mean something.

    python -m benchmarks.standin <repository-dir>
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

LABELS = ("akiec", "bcc", "bkl", "df", "mel", "nv", "vasc")
MODEL_NAME = "ham10000_mobilenetv2"

CONFIG = """# Stand-in, shaped like the exported production config (training/export.py): GPU Triton,
# ONNX Runtime with the TensorRT FP16 accelerator, dynamic batching, warmup.
name: "{name}"
platform: "onnxruntime_onnx"
max_batch_size: 32
input [ {{ name: "image" data_type: TYPE_UINT8 dims: [ 224, 224, 3 ] }} ]
output [ {{ name: "probabilities" data_type: TYPE_FP32 dims: [ 7 ] label_filename: "labels.txt" }} ]
dynamic_batching {{ preferred_batch_size: [ 4, 8, 16, 32 ] max_queue_delay_microseconds: 2000 }}
instance_group [ {{ count: 1 kind: KIND_GPU }} ]
optimization {{ execution_accelerators {{ gpu_execution_accelerator: [ {{
  name: "tensorrt"
  parameters {{ key: "precision_mode" value: "FP16" }}
  parameters {{ key: "max_workspace_size_bytes" value: "1073741824" }}
  parameters {{ key: "trt_engine_cache_enable" value: "1" }}
}} ] }} }}
model_warmup [ {{ name: "warmup_batch_32" batch_size: 32
  inputs {{ key: "image" value {{ data_type: TYPE_UINT8 dims: [ 224, 224, 3 ] random_data: true }} }} }} ]
"""


def build_onnx(path: Path, seed: int = 6) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    pooled = 56 * 56 * 3  # 4x4 average pooling of 224x224x3
    weights = (rng.standard_normal((pooled, len(LABELS))) * 0.05).astype(np.float32)
    bias = (rng.standard_normal(len(LABELS)) * 0.1).astype(np.float32)
    inits = [
        numpy_helper.from_array(np.array(1 / 127.5, np.float32), "scale"),
        numpy_helper.from_array(np.array(1.0, np.float32), "one"),
        numpy_helper.from_array(np.array([0, 3, 1, 2], np.int64), "unused"),
        numpy_helper.from_array(np.array([-1, pooled], np.int64), "flat_shape"),
        numpy_helper.from_array(weights, "W"),
        numpy_helper.from_array(bias, "b"),
    ]
    nodes = [
        helper.make_node("Cast", ["image"], ["x_f"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["x_f", "scale"], ["x_s"]),
        helper.make_node("Sub", ["x_s", "one"], ["x_n"]),  # [-1, 1] like MobileNetV2's preprocess_input
        helper.make_node("Transpose", ["x_n"], ["x_t"], perm=[0, 3, 1, 2]),
        helper.make_node("AveragePool", ["x_t"], ["x_p"], kernel_shape=[4, 4], strides=[4, 4]),
        helper.make_node("Reshape", ["x_p", "flat_shape"], ["x_flat"]),
        helper.make_node("MatMul", ["x_flat", "W"], ["logits_nb"]),
        helper.make_node("Add", ["logits_nb", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "standin",
        [helper.make_tensor_value_info("image", TensorProto.UINT8, ["batch", 224, 224, 3])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", len(LABELS)])],
        [i for i in inits if i.name != "unused"],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="dermalink-standin"
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def build_repository(repo: Path, name: str = MODEL_NAME) -> Path:
    """Write ``repo/<name>/{config.pbtxt,labels.txt,1/model.onnx}``; returns ``repo``."""
    model_dir = Path(repo) / name
    build_onnx(model_dir / "1" / "model.onnx")
    (model_dir / "labels.txt").write_text("\n".join(LABELS) + "\n")
    (model_dir / "config.pbtxt").write_text(CONFIG.format(name=name))
    return Path(repo)


if __name__ == "__main__":
    print(build_repository(Path(sys.argv[1] if len(sys.argv) > 1 else "build/standin_repository")))
