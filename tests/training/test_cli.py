"""The training CLI registers on `dermalink` and imports without TensorFlow."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner


def test_training_cli_imports_without_heavy_packages():
    code = (
        "import sys, training, training.cli, training.data, training.split; "
        "heavy = [m for m in ('tensorflow', 'keras', 'sklearn', 'tf2onnx', 'imagehash') if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dermalink_lists_training_commands():
    from backend.cli import _register_all, app

    _register_all()
    out = CliRunner().invoke(app, ["--help"]).output
    for cmd in ("train", "evaluate", "export", "data"):
        assert cmd in out
    data_help = CliRunner().invoke(app, ["data", "--help"]).output
    for cmd in ("validate", "split", "duplicates"):
        assert cmd in data_help
    train_help = CliRunner().invoke(app, ["train", "--help"]).output
    assert "--preset" in train_help and "--image-level-split" in train_help
