"""The derived CPU repository and the set-up checks (no server needed)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from backend.inference.triton_repo import RepositoryError, derive_repository, read_config
from backend.inference.triton_server import TritonInstall, TritonSetupError

pytestmark = pytest.mark.triton
MODEL = "ham10000_mobilenetv2"


def test_derived_config_is_a_cpu_python_model_with_the_graphs_tensors(exported_repo, tmp_path):
    import onnxruntime as ort

    (derived,) = derive_repository(exported_repo, tmp_path, [MODEL])
    config = read_config(derived / "config.pbtxt")
    session = ort.InferenceSession(str(exported_repo / MODEL / "1" / "model.onnx"))
    (graph_in,) = session.get_inputs()
    assert config.backend == "python" and not config.platform
    assert config.input[0].name == graph_in.name and list(config.input[0].dims) == [224, 224, 3]
    assert config.output[0].name == session.get_outputs()[0].name and list(config.output[0].dims) == [7]
    assert config.output[0].label_filename == "labels.txt"
    # every graph output, in order: the class-activation maps too, when the model has them (no labels)
    assert [o.name for o in config.output] == [o.name for o in session.get_outputs()]
    for maps in config.output[1:]:
        assert maps.name == "class_maps" and list(maps.dims) == [7, 7, 7] and not maps.label_filename
    assert config.instance_group[0].kind == config.instance_group[0].KIND_CPU
    assert config.HasField("dynamic_batching") and config.max_batch_size >= 8
    labels = (exported_repo / MODEL / "labels.txt").read_text().split()
    assert config.parameters["labels"].string_value.split(",") == labels
    # the very same model file, and the python model that runs it
    assert (derived / "1" / "model.onnx").read_bytes() == (
        exported_repo / MODEL / "1" / "model.onnx"
    ).read_bytes()
    assert "onnxruntime" in (derived / "1" / "model.py").read_text()


def test_derivation_is_idempotent_and_drops_stale_versions(exported_repo, tmp_path):
    (derived,) = derive_repository(exported_repo, tmp_path, [MODEL])
    stamp = {p: p.stat().st_mtime_ns for p in derived.rglob("*") if p.is_file()}
    (derived / "7").mkdir()
    (derived / "7" / "model.onnx").write_bytes(b"old")
    derive_repository(exported_repo, tmp_path, [MODEL])
    assert not (derived / "7").exists()
    assert {p: p.stat().st_mtime_ns for p in derived.rglob("*") if p.is_file()} == stamp


def test_derivation_rejects_labels_that_do_not_match_the_model(exported_repo, tmp_path):
    import shutil

    src = tmp_path / "src"
    shutil.copytree(exported_repo / MODEL, src / MODEL)
    (src / MODEL / "labels.txt").write_text("a\nb\n")
    with pytest.raises(RepositoryError, match="labels"):
        derive_repository(src, tmp_path / "out", [MODEL])
    with pytest.raises(RepositoryError, match="not found"):
        derive_repository(src, tmp_path / "out", ["no_such_model"])


def test_missing_triton_venv_says_to_run_setup(tmp_path):
    with pytest.raises(TritonSetupError, match="dermalink triton setup"):
        TritonInstall.find(tmp_path / "no-venv")


def test_cli_repo_command_derives_the_repository(exported_repo, tmp_path):
    import typer

    from backend import triton_cli

    app = typer.Typer()
    triton_cli.register(app)
    result = CliRunner().invoke(
        app, ["triton", "repo", "--source", str(exported_repo), "--out", str(tmp_path)]
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / MODEL / "1" / "model.py").exists()
    assert 'backend: "python"' in (tmp_path / MODEL / "config.pbtxt").read_text()
    bad = CliRunner().invoke(
        app, ["triton", "repo", "--source", str(tmp_path / "nothing"), "--out", str(tmp_path)]
    )
    assert bad.exit_code == 2 and "no exported models" in bad.output


def test_model_output_varies_with_the_image(exported_repo, lesion_images, uses_standin):
    """The parity tests mean something only if the model's output depends on the image."""
    from backend.inference.onnx import OnnxClassifier

    preds = OnnxClassifier(exported_repo, MODEL).predict_batch(lesion_images[:8])
    probs = np.array([list(p.probabilities.values()) for p in preds])
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert probs.std(axis=0).max() > 1e-3, f"near-constant output (stand-in: {uses_standin})"


def test_exported_gpu_config_matches_its_model_and_drives_the_cpu_derivation(exported_repo, tmp_path):
    """The production config.pbtxt (training export; the stand-in mirrors it) is valid Triton config for
    GPU Triton with ONNX Runtime + TensorRT FP16, and its tensors are the ONNX graph's."""
    import onnxruntime as ort

    config = read_config(exported_repo / MODEL / "config.pbtxt")
    session = ort.InferenceSession(str(exported_repo / MODEL / "1" / "model.onnx"))
    (graph_in,), graph_out = session.get_inputs(), session.get_outputs()[0]
    assert config.name == MODEL and config.platform == "onnxruntime_onnx" and config.max_batch_size > 0
    assert [i.name for i in config.input] == [graph_in.name] and list(config.input[0].dims) == [224, 224, 3]
    assert config.output[0].name == graph_out.name and list(config.output[0].dims) == [7]
    assert config.output[0].label_filename == "labels.txt"
    assert len((exported_repo / MODEL / "labels.txt").read_text().split()) == 7
    assert config.instance_group[0].kind == config.instance_group[0].KIND_GPU
    assert list(config.dynamic_batching.preferred_batch_size)
    (trt,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert trt.name == "tensorrt" and trt.parameters["precision_mode"] == "FP16"
    assert config.model_warmup and config.model_warmup[0].inputs[graph_in.name].dims == config.input[0].dims

    (derived,) = derive_repository(exported_repo, tmp_path, [MODEL])
    cpu = read_config(derived / "config.pbtxt")
    assert cpu.max_batch_size == config.max_batch_size
    assert not cpu.HasField("optimization") and not cpu.model_warmup and not cpu.platform
