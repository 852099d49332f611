"""Group commit: concurrent writes share one transaction, a conflict fails only its own write, any other
failure reaches every waiting writer, and the audit chain stays whole."""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from prometheus_client import REGISTRY
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlmodel import select

from backend.audit.models import AuditEvent
from backend.audit.service import record, take_pending
from backend.audit.verify import verify_chain
from backend.core.actor import AuditContext
from backend.group_commit import GroupCommitter
from backend.lesions.models import Lesion
from tests.backend.cases.conftest import submit


class _GatedSessions:
    """A session factory whose first session waits for ``gate``: the writes handed over meanwhile queue up
    and are committed together afterwards."""

    def __init__(self, sessions) -> None:  # type: ignore[no-untyped-def]
        self.sessions = sessions
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.calls = 0

    def __call__(self):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == 1:
            self.entered.set()
            assert self.gate.wait(60)
        return self.sessions()


def _write(app, patient, *, lesion_id: uuid.UUID | None = None) -> tuple[list[Lesion], list[AuditEvent]]:  # type: ignore[no-untyped-def]
    """One new lesion and its audit event, as `GroupCommitter.write` takes them."""
    lesion = Lesion(
        id=lesion_id or uuid.uuid4(),
        patient_id=uuid.UUID(patient["id"]),
        clinic_id=uuid.UUID(patient["clinic"].id),
    )
    with app.state.db.session() as session:  # events are made the way requests make them, then taken
        record(session, AuditContext(), "lesion.create", resource_type="lesion", resource_id=lesion.id)
        return [lesion], take_pending(session)


def _committer(app, sessions=None):  # type: ignore[no-untyped-def]
    groups: list[int] = []
    committer = GroupCommitter(
        sessions or app.state.db.session, (Lesion,), observe=lambda size, _seconds: groups.append(size)
    )
    return committer, groups


def _stored(app) -> tuple[set[uuid.UUID], list[str]]:  # type: ignore[no-untyped-def]
    with app.state.db.session() as session:
        assert verify_chain(session, app.state.db.audit_key).ok
        lesions = {row.id for row in session.exec(select(Lesion))}
        actions = [row.action for row in session.exec(select(AuditEvent).order_by(AuditEvent.seq))]
    return lesions, actions


def _while_the_first_commit_waits(committer, gated, writes, patient_writes):  # type: ignore[no-untyped-def]
    """Start one write (held at its session), hand over ``patient_writes`` meanwhile, then let all run."""
    with ThreadPoolExecutor(max_workers=len(patient_writes) + 1) as pool:
        first = pool.submit(committer.write, *writes)
        assert gated.entered.wait(60)
        later = [pool.submit(committer.write, *w) for w in patient_writes]
        deadline = time.monotonic() + 60
        while len(committer._queue) < len(patient_writes):  # all handed over (a handful of ms)
            assert time.monotonic() < deadline
            time.sleep(0.01)
        gated.gate.set()
        return first, later


def test_writes_waiting_together_are_committed_in_one_transaction(app, patient):
    gated = _GatedSessions(app.state.db.session)
    committer, groups = _committer(app, gated)
    writes = [_write(app, patient) for _ in range(6)]
    first, later = _while_the_first_commit_waits(committer, gated, writes[0], writes[1:])
    first.result(60)
    for future in later:
        future.result(60)
    assert groups == [1, 5]
    lesions, actions = _stored(app)
    assert {rows[0].id for rows, _ in writes} <= lesions
    assert actions.count("lesion.create") == 6


def test_a_conflict_fails_only_its_own_write(app, patient):
    taken, events = _write(app, patient)
    committer, _ = _committer(app)
    committer.write(taken, events)
    gated = _GatedSessions(app.state.db.session)
    committer, groups = _committer(app, gated)
    good = [_write(app, patient) for _ in range(3)]
    clash = _write(app, patient, lesion_id=taken[0].id)
    first, later = _while_the_first_commit_waits(committer, gated, good[0], [good[1], clash, good[2]])
    first.result(60)
    later[0].result(60)
    with pytest.raises(IntegrityError):
        later[1].result(60)
    later[2].result(60)
    assert groups == [1, 3]
    lesions, actions = _stored(app)
    assert {rows[0].id for rows, _ in good} <= lesions
    assert actions.count("lesion.create") == 4  # the clash's event went with its rows


def test_a_failing_database_reaches_every_waiting_writer_and_the_thread_goes_on(app, patient):
    broken = True

    def sessions():  # type: ignore[no-untyped-def]
        if broken:
            raise OperationalError("BEGIN", {}, Exception("database is gone"))
        return app.state.db.session()

    committer, _ = _committer(app, sessions)
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(committer.write, *_write(app, patient)) for _ in range(4)]
        for future in futures:
            with pytest.raises(OperationalError):
                future.result(60)
    broken = False
    rows, events = _write(app, patient)
    committer.write(rows, events)
    assert rows[0].id in _stored(app)[0]


def test_the_thread_ends_when_idle_and_the_next_write_starts_another(app, patient):
    committer = GroupCommitter(app.state.db.session, (Lesion,), idle_seconds=0.05)
    first, second = _write(app, patient), _write(app, patient)
    committer.write(*first)
    thread = committer._thread
    assert thread is not None
    thread.join(60)
    assert not thread.is_alive() and committer._thread is None
    committer.write(*second)
    assert {first[0][0].id, second[0][0].id} <= _stored(app)[0]


def test_a_submission_waits_for_its_group_holding_no_database_connection(
    app, client, consenting, lesion_jpeg, monkeypatch
):
    """Were waiting submissions to keep their connections, enough of them at once would leave the
    committer none (the pool is finite) and all would wait until the pool's timeout."""
    committer = app.state.cases.committer
    real, checked_out = committer.write, []

    def write(rows, events):  # type: ignore[no-untyped-def]
        checked_out.append(app.state.db.engine.pool.checkedout())
        return real(rows, events)

    monkeypatch.setattr(committer, "write", write)
    unit_of_work_commits = REGISTRY.get_sample_value(
        "dermalink_case_stage_seconds_count", {"stage": "commit"}
    )
    assert submit(client, consenting, [lesion_jpeg]).status_code == 201
    assert checked_out == [0]
    # ... and once its rows are stored, its own transaction holds nothing: no further commit (and no
    # further hand-off to a worker thread) for the request's unit of work
    assert (
        REGISTRY.get_sample_value("dermalink_case_stage_seconds_count", {"stage": "commit"})
        == unit_of_work_commits
    )


def test_rows_of_a_type_it_does_not_insert_are_refused(app, patient):
    committer, _ = _committer(app)
    rows, events = _write(app, patient)
    with pytest.raises(ValueError, match="does not insert"):
        committer.write([*rows, AuditEvent()], events)
