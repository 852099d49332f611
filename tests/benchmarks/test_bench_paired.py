"""`dermalink bench paired`: a smoke run against HEAD, and the paired differences it reports."""

from __future__ import annotations

import csv
import subprocess

import pytest
from typer.testing import CliRunner

from backend.cli import _register_all
from backend.cli import app as cli
from backend.config import REPO_ROOT
from benchmarks.paired import summarise


def test_bench_paired_smoke(tmp_path, shared_dir, monkeypatch, settings_cache):
    from benchmarks.standin import build_repository

    repository = build_repository(tmp_path / "models")
    monkeypatch.setenv("DERMALINK_MODEL_REPOSITORY", str(repository))
    monkeypatch.chdir(REPO_ROOT)
    _register_all()
    args = ["--baseline", "HEAD", "--concurrency", "1,2", "--pairs", "2", "--rounds", "2"]
    result = CliRunner().invoke(
        cli, ["bench", "paired", *args, "--out", str(tmp_path / "out"), "--name", "smoke"]
    )
    assert result.exit_code == 0, result.output
    with open(tmp_path / "out" / "smoke.csv") as handle:
        rows = list(csv.DictReader(handle))
    servers = sorted({r["server"] for r in rows})
    assert servers[0].startswith("baseline ") and servers[1].startswith("working tree (")
    assert sorted((r["server"], int(r["concurrency"]), int(r["round"])) for r in rows) == sorted(
        (server, concurrency, r) for server in servers for concurrency in (1, 2) for r in range(2)
    )
    assert all(int(r["errors"]) == 0 and float(r["p50_ms"]) > 0 for r in rows)
    assert all(int(r["requests"]) == (1 if r["concurrency"] == "1" else 6) for r in rows)
    report = (tmp_path / "out" / "smoke.md").read_text()
    assert "vector extensions" in report and "Load average" in report and "Errors: 0." in report
    worktrees = subprocess.run(
        ["git", "worktree", "list"], check=True, cwd=REPO_ROOT, capture_output=True, text=True
    ).stdout
    assert "dermalink-baseline-" not in worktrees  # removed afterwards


def test_the_difference_is_paired_round_by_round():
    """Round r of the working tree against round r of the baseline: a drift that slows both alike
    cancels out, while the medians of each side on their own would hide a 2 ms gain in it."""
    rows = []
    for r, drift in enumerate([0, 30, 60]):
        for server, ms in (("baseline x", 50 + drift), ("working tree", 48 + drift)):
            rows.append(
                {
                    "server": server,
                    "concurrency": 1,
                    "round": r,
                    "requests": 1,
                    "errors": 0,
                    "p50_ms": ms,
                    "req_per_s": 1000 / ms,
                    "server_cpu_s": 0.05 if server.startswith("b") else 0.04,
                }
            )
    (line,) = summarise(rows, ["baseline x", "working tree"], (1,))
    assert line["p50_ms"] == (80, 78, -2)
    assert line["server_core_ms_per_request"] == pytest.approx((50, 40, -10))
    assert line["errors"] == 0
