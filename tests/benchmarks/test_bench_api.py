"""A smoke run of `dermalink bench api` on a tiny setting (the full benchmark is a command, not a test)."""

from __future__ import annotations

import csv

from typer.testing import CliRunner

from backend.cli import _register_all
from backend.cli import app as cli


def test_bench_api_smoke(tmp_path, shared_dir, monkeypatch, settings_cache):
    from benchmarks.standin import build_repository

    repository = build_repository(tmp_path / "models")
    monkeypatch.setenv("DERMALINK_MODEL_REPOSITORY", str(repository))
    _register_all()
    result = CliRunner().invoke(
        cli,
        [
            "bench",
            "api",
            "--concurrency",
            "1,2",
            "--requests",
            "3",
            "--breakdown",
            "2",
            "--out",
            str(tmp_path / "out"),
            "--name",
            "smoke",
        ],
    )
    assert result.exit_code == 0, result.output
    with open(tmp_path / "out" / "smoke.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["server"], int(r["concurrency"])) for r in rows] == [
        ("SQLite, 1 process", 1),
        ("SQLite, 1 process", 2),
        ("SQLite, 2 processes", 1),
        ("SQLite, 2 processes", 2),
    ]
    assert all(int(r["errors"]) == 0 and float(r["throughput"]) > 0 and float(r["p50_ms"]) > 0 for r in rows)
    assert all(float(r["server_cpu_ms"]) > 0 for r in rows)  # read from the server's processes in /proc
    # each level's model calls and group commits, read from the server's /metrics
    assert all(float(r["images_per_batch"]) >= 1 and float(r["submissions_per_commit"]) >= 1 for r in rows)
    report = (tmp_path / "out" / "smoke.md").read_text()
    assert "Bare model" in report and "| target (bar; stretch) | reached |" in report
    # the image work and the model alone, beside what the bars allow and what each server took
    budget = report.split("## What the bars leave for the service", 1)[1].split("\n## ", 1)[0]
    (floor, allowed, *measured), (cpu_floor, cpu_allowed, *cpu_measured) = (
        [float(cell) for cell in line.split("|")[2:-1]]
        for line in budget.splitlines()
        if line.startswith(("| p50 at concurrency 1", "| server CPU a request"))
    )
    # (the stand-in model is so fast here that its bars allow less than the image work alone needs)
    assert min(floor, allowed, cpu_floor, cpu_allowed) > 0
    assert len(measured) == len(cpu_measured) == 2 and min(measured + cpu_measured) > 0
    assert "vector extensions" in report and "Load average" in report
    # the stage table is read from the server's /metrics: every stage was observed in the sequential run
    stages = [line for line in report.splitlines() if line.startswith("|   ")]
    # two servers: SQLite with 1 process, and with 2 (they take turns to write through a file lock)
    assert "## SQLite, 1 process" in report and "## SQLite, 2 processes" in report
    assert len(stages) == 22 and all(float(line.split("|")[3]) >= 2 for line in stages), stages
    assert (tmp_path / "out" / "smoke.png").stat().st_size > 1000


def test_the_bare_model_is_measured_before_and_after_the_servers_as_one():
    from benchmarks.api import combine_bare

    def run(batch1_ms, rates):
        return {
            "batch1_ms": batch1_ms,
            "rates": {size: {"throughput": rate, "cpu_ms_per_image": 8.0} for size, rate in rates.items()},
            "model_version": "1",
        }

    before = run([4.0, 4.0, 4.0], {1: 150.0, 4: 200.0, 8: 190.0})
    after = run([6.0, 6.0], {1: 140.0, 4: 160.0, 8: 185.0})  # the host slowed down meanwhile
    bare = combine_bare([before, after])
    assert bare["batch1_p50_ms"] == 4.0  # the median of all five calls
    # batch 8 is best on average (187.5) although batch 4 was best before (200)
    assert (bare["best_batch"], bare["best_throughput"]) == (8, 187.5)
    assert [m["best_throughput"] for m in bare["each"]] == [200.0, 185.0]
    assert [m["batch1_p50_ms"] for m in bare["each"]] == [4.0, 6.0]


def test_a_run_whose_host_drifted_says_so():
    from benchmarks.api import _drift_warning

    def bare(*each):
        return {"each": [{"batch1_p50_ms": ms, "best_throughput": rate} for ms, rate in each]}

    assert _drift_warning(bare((6.0, 220.0), (6.5, 230.0))) == []  # within 15%
    (warning,) = _drift_warning(bare((6.1, 230.0), (8.9, 228.0)))
    assert "host drifted" in warning and "batch-1 p50" in warning and "best throughput" not in warning
