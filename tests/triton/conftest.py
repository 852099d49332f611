"""Fixtures for the Triton tests: the real Triton server (nvidia-pytriton's binary) on random ports.

The model is the shipped ``model_repository/ham10000_mobilenetv2`` when its ``1/model.onnx`` exists,
otherwise the stand-in from `benchmarks.standin` (same layout and tensor contract). The CPU
repository is derived from it exactly as `dermalink triton repo` does, plus two test-only models:
``slow_model`` (answers after 20 s, for deadlines), ``spare_model`` (a copy to unload and reload), ``broken_model`` (fails to load), and copies of the
model whose config has labels only as ``label_filename`` or not at all (loaded by the tests that use them).

Triton's own virtualenv must exist (`dermalink triton setup`); if it does not, the tests fail
with that instruction instead of being skipped.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
import pytest

from backend.inference.triton_server import (
    REPO_ROOT,
    TritonInstall,
    TritonServer,
    TritonSetupError,
    TritonStartError,
    free_port,
)
from tests.conftest import standin_allowed

MODEL = "ham10000_mobilenetv2"
SHIPPED = REPO_ROOT / "model_repository"

SLOW_MODEL_S = 20.0  # far beyond any deadline a test sets, so "it timed out" cannot be a close call
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
        time.sleep(SLOW_MODEL_S)
        out = []
        for r in requests:
            n = pb_utils.get_input_tensor_by_name(r, self.input).as_numpy().shape[0]
            probs = np.full((n, self.width), 1.0 / self.width, np.float32)
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor(self.output, probs)]))
        return out
""".replace("SLOW_MODEL_S", repr(SLOW_MODEL_S))


START_TIMEOUT_S = 180  # a cold Triton with its python stubs on a loaded 2-core machine


def start_fresh(server: TritonServer, attempts: int = 3) -> TritonServer:
    """Start ``server``; if it fails (another process took a port between picking and binding it), pick
    new free ports and try again. The ports are only known free when picked, not when Triton binds them."""
    for attempt in range(attempts):
        try:
            return server.start(timeout=START_TIMEOUT_S)
        except TritonStartError:
            if attempt == attempts - 1:
                raise
            server.http_port, server.grpc_port, server.metrics_port = free_port(), free_port(), free_port()
    raise AssertionError("unreachable")


def restart_on_same_ports(server: TritonServer, ceiling_s: float = 120) -> TritonServer:
    """Start a stopped server again on its own ports (clients must find it at the same address). The
    kernel may hold a port for a moment after the old process died, so retry until a generous ceiling."""
    deadline = time.monotonic() + ceiling_s
    while True:
        try:
            return server.start(timeout=START_TIMEOUT_S)
        except TritonStartError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


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
    standin_allowed(f"model_repository/{MODEL}/1/model.onnx")
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
    # a copy that tests may unload and reload without changing the session server's main model
    shutil.copytree(repo / MODEL, repo / "spare_model")
    spare = read_config(repo / MODEL / "config.pbtxt")
    spare.name = "spare_model"
    (repo / "spare_model" / "config.pbtxt").write_text(text_format.MessageToString(spare))
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
    start_fresh(server)
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
