"""How many threads the in-process model computes on: the process's share of the cores less one (at least
one), unless `DERMALINK_ONNX_THREADS` says otherwise."""

from __future__ import annotations

import os

import pytest

from backend.config import Settings
from backend.inference.factory import ClassifierProvider, model_threads


@pytest.mark.parametrize(
    ("cores", "processes", "threads"),
    [(1, 1, 1), (2, 1, 1), (2, 2, 1), (8, 1, 7), (8, 2, 3), (8, 16, 1), (64, 4, 15)],
)
def test_each_process_leaves_a_core_of_its_share_to_the_request_path(monkeypatch, cores, processes, threads):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(cores)))
    assert model_threads(processes) == threads


def _intra_op_threads(tmp_path, **settings) -> int:  # type: ignore[no-untyped-def]
    from benchmarks.standin import build_repository

    repository = build_repository(tmp_path)
    provider = ClassifierProvider(Settings(model_repository=repository, **settings))
    return provider()._session.get_session_options().intra_op_num_threads  # type: ignore[attr-defined]


def test_the_server_model_takes_the_default_unless_a_count_is_configured(tmp_path, monkeypatch):
    monkeypatch.delenv("DERMALINK_ONNX_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: set(range(4)))  # a 4-core machine
    assert _intra_op_threads(tmp_path) == 3
    assert _intra_op_threads(tmp_path, onnx_threads=2) == 2
