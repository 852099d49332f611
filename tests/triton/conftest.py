"""Fixtures for the Triton tests: the real Triton server (nvidia-pytriton's binary) on random ports.

The model is the shipped ``model_repository/ham10000_mobilenetv2`` when its ``1/model.onnx`` exists,
otherwise the stand-in from `benchmarks.standin` (same layout and tensor contract). The CPU
repository is derived from it exactly as `dermalink triton repo` does, plus two test-only models:
``slow_model`` (answers after 2 s, for deadlines), ``broken_model`` (fails to load), and copies of the
model whose config has labels only as ``label_filename`` or not at all (loaded by the tests that use them).

Triton's own virtualenv must exist (`dermalink triton setup`); if it does not, the tests fail
with that instruction instead of being skipped.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from backend.inference.triton_server import REPO_ROOT, TritonInstall, TritonServer, TritonSetupError

MODEL = "ham10000_mobilenetv2"
SHIPPED = REPO_ROOT / "model_repository"

SLOW_MODEL_PY = """
import json, time
import numpy as np
import triton_python_backend_utils as pb_utils

class TritonPythonModel:
    def initialize(self, args):
        cfg = json.loads(args["model_config"])
        self.input, self.output = cfg["input"][0]["name"], cfg["output"][0]["name"]
        self.width = int(cfg["output"][0]["dims"][-1])

    def execute(self, requests):
        time.sleep(2.0)
        out = []
        for r in requests:
            n = pb_utils.get_input_tensor_by_name(r, self.input).as_numpy().shape[0]
            probs = np.full((n, self.width), 1.0 / self.width, np.float32)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output, probs)]))
        return out
"""


@pytest.fixture(scope="session")
def triton_install() -> TritonInstall:
    try:
        install = TritonInstall.find()
        install.perf_analyzer  # noqa: B018 - raises when tritonclient[all] is missing
    except TritonSetupError as exc:
        pytest.fail(f"Triton is not set up: {exc}", pytrace=False)
    return install


@pytest.fixture(scope="session")
def exported_repo(tmp_path_factory) -> Path:
    """The shipped exported repository if the trained model is there, else the stand-in."""
    if (SHIPPED / MODEL / "1" / "model.onnx").exists():
        return SHIPPED
    from benchmarks.standin import build_repository

    return build_repository(tmp_path_factory.mktemp("exported"))


@pytest.fixture(scope="session")
def uses_standin(exported_repo) -> bool:
    return exported_repo != SHIPPED


@pytest.fixture(scope="session")
def derived_repo(exported_repo, tmp_path_factory) -> Path:
    from backend.inference.triton_repo import derive_repository

    repo = tmp_path_factory.mktemp("triton_repo")
    derive_repository(exported_repo, repo, [MODEL])
    config = (repo / MODEL / "config.pbtxt").read_text()
    slow = repo / "slow_model"
    (slow / "1").mkdir(parents=True)
    (slow / "config.pbtxt").write_text(config.replace(f'name: "{MODEL}"', 'name: "slow_model"'))
    (slow / "1" / "model.py").write_text(SLOW_MODEL_PY)
    shutil.copy(repo / MODEL / "labels.txt", slow / "labels.txt")
    # the exported production config carries labels only as `label_filename` (no `labels` parameter)
    from google.protobuf import text_format

    from backend.inference.triton_repo import read_config

    for name, keep_file in (("filelabels_model", True), ("nolabels_model", False)):
        shutil.copytree(repo / MODEL, repo / name)
        cfg = read_config(repo / MODEL / "config.pbtxt")
        cfg.name = name
        del cfg.parameters["labels"]
        if not keep_file:
            cfg.output[0].ClearField("label_filename")
            (repo / name / "labels.txt").unlink()
        (repo / name / "config.pbtxt").write_text(text_format.MessageToString(cfg))
    broken = repo / "broken_model"
    shutil.copytree(repo / MODEL, broken)
    (broken / "config.pbtxt").write_text(config.replace(f'name: "{MODEL}"', 'name: "broken_model"'))
    (broken / "1" / "model.onnx").write_bytes(b"this is not an ONNX model")
    return repo


@pytest.fixture(scope="session")
def triton_server(triton_install, derived_repo, tmp_path_factory):
    """One Triton for the session, explicit model control (tests load/unload models)."""
    server = TritonServer(
        derived_repo,
        model_control="explicit",
        load_models=[MODEL, "slow_model"],
        build_dir=tmp_path_factory.mktemp("triton_build"),
        exit_timeout_s=2,
    )
    server.start(timeout=90)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def lesion_images(shared_dir: Path) -> np.ndarray:
    """All full-size HAM10000 images in the shared folder, preprocessed with the shared contract."""
    from backend.inference.preprocess import load_image

    folder = shared_dir / "data" / "ham10000" / "full_size"
    paths = sorted(folder.glob("*.jpg"))
    if not paths:
        pytest.fail(f"no full-size lesion images in {folder} (set DERMALINK_SHARED)", pytrace=False)
    return np.stack([load_image(p) for p in paths])
