"""`dermalink audit verify`: find modified, deleted, inserted and reordered audit events.

Each event's HMAC covers its content and the previous event's hash, and the chain head records
the last seq and hash. Walking the table in ``seq`` order:

* an event whose HMAC does not match, but whose stored hash the next event still links to,
  was **modified** (its content changed after it was written);
* an event whose HMAC does not match and that no event links to was **inserted**
  (nobody without the audit key can forge a valid HMAC);
* a genuine event whose ``prev_hash`` names an event that is no longer there, or a gap in
  ``seq``, or a head pointing past the last row, means events were **deleted**;
* a genuine event whose ``prev_hash`` names an event that exists, but not the one just before
  it, was **reordered**;
* a head row that is gone (**head_deleted**) or whose MAC does not match its (seq, hash)
  (**head_forged**: moved back after events were cut off the end, without the key);
* with the checkpoints kept outside the database (`backend.audit.anchor`): an authentic checkpoint
  naming an event that is missing or different means the chain was **truncated** (or rewritten) after
  it was anchored -- even when the head was reset to a genuine older value; a checkpoint that fails
  authentication is **checkpoint_forged**.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from backend.audit.anchor import CheckpointScan
from backend.audit.models import AuditChainHead, AuditEvent
from backend.audit.service import GENESIS_HASH, chain_hash, head_is_authentic


@dataclass(frozen=True)
class Finding:
    kind: str  # modified | inserted | deleted | reordered
    seq: int
    message: str


@dataclass(frozen=True)
class CheckpointReport:
    """The newest authentic checkpoint and whether every event up to it is present, unchanged."""

    checkpoints: int
    newest_seq: int | None
    newest_written_at: str | None
    events_present: bool  # events 1..newest_seq all there, the newest with the anchored hash
    forged: int


@dataclass(frozen=True)
class VerifyResult:
    events: int
    findings: list[Finding]
    checkpoint: CheckpointReport | None = None

    @property
    def ok(self) -> bool:
        return not self.findings


def _longest_increasing(values: list[int]) -> set[int]:
    """Indexes of one longest strictly increasing subsequence of ``values`` (patience sorting)."""
    import bisect

    tails: list[int] = []
    tail_index: list[int] = []
    parent = [-1] * len(values)
    for i, value in enumerate(values):
        k = bisect.bisect_left(tails, value)
        if k == len(tails):
            tails.append(value)
            tail_index.append(i)
        else:
            tails[k], tail_index[k] = value, i
        parent[i] = tail_index[k - 1] if k else -1
    keep, i = set(), tail_index[-1] if tail_index else -1
    while i != -1:
        keep.add(i)
        i = parent[i]
    return keep


def _check_anchors(
    rows: list[AuditEvent], genuine: set[int], scan: CheckpointScan, findings: list[Finding]
) -> CheckpointReport:
    by_seq = {row.seq: row for row in rows}
    last = max(genuine, default=0)
    for key in scan.forged:
        findings.append(Finding("checkpoint_forged", 0, f"checkpoint {key} fails authentication"))
    broken = [
        cp
        for cp in scan.checkpoints
        if cp.seq not in genuine or by_seq[cp.seq].hash != cp.hash  # missing, inserted or rewritten
    ]
    if broken:
        worst = max(broken, key=lambda c: c.seq)
        when = worst.written_at.isoformat(timespec="seconds")
        if worst.seq > last:
            message = (
                f"checkpoint of {when} anchors event {worst.seq}, but the chain ends at {last}: "
                f"events {last + 1}..{worst.seq} (at least) were cut off the end"
            )
        else:
            message = f"checkpoint of {when} anchors event {worst.seq}, which is missing or was rewritten"
        findings.append(Finding("truncated", worst.seq, message))
    newest = scan.newest
    present = False
    if newest is not None:
        present = all(seq in genuine for seq in range(1, newest.seq + 1)) and newest not in broken
    return CheckpointReport(
        checkpoints=len(scan.checkpoints),
        newest_seq=newest.seq if newest else None,
        newest_written_at=newest.written_at.isoformat() if newest else None,
        events_present=present,
        forged=len(scan.forged),
    )


def verify_chain(session: Session, key: bytes, checkpoints: CheckpointScan | None = None) -> VerifyResult:
    rows = list(session.exec(select(AuditEvent).order_by(AuditEvent.seq)))
    head = session.get(AuditChainHead, 1)
    head_hash = head.hash if head else None
    linked_to = {row.prev_hash for row in rows}
    findings: list[Finding] = []

    chain: list[AuditEvent] = []  # genuine or modified events: those the chain still links to
    for row in rows:
        if chain_hash(key, row.prev_hash, row) == row.hash:
            chain.append(row)
        elif row.hash in linked_to or row.hash == head_hash:
            findings.append(Finding("modified", row.seq, f"event {row.seq} ({row.action}) was modified"))
            chain.append(row)
        else:
            findings.append(Finding("inserted", row.seq, f"event {row.seq} ({row.action}) was inserted"))

    by_hash = {row.hash: row for row in chain}
    successor = {row.prev_hash: row for row in chain}
    starts = []
    for row in chain:
        if row.prev_hash != GENESIS_HASH and row.prev_hash not in by_hash:
            findings.append(Finding("deleted", row.seq, f"event(s) just before event {row.seq} were deleted"))
            starts.append(row)
        elif row.prev_hash == GENESIS_HASH:
            starts.append(row)

    # The order the links say, segment by segment, against the order of `seq`.
    linked_order: list[AuditEvent] = []
    seen: set[int] = set()
    for start in sorted(starts, key=lambda r: r.seq):
        row: AuditEvent | None = start
        while row is not None and row.seq not in seen:
            seen.add(row.seq)
            linked_order.append(row)
            row = successor.get(row.hash)
    position = {row.seq: i for i, row in enumerate(linked_order)}
    placed = [row for row in chain if row.seq in position]
    in_order = _longest_increasing([position[row.seq] for row in placed])
    for i, row in enumerate(placed):
        if i not in in_order:
            findings.append(Finding("reordered", row.seq, f"event {row.seq} ({row.action}) is out of order"))

    if head is None:
        findings.append(Finding("head_deleted", 0, "the chain head row was deleted"))
    elif not head_is_authentic(key, head):
        findings.append(
            Finding(
                "head_forged",
                head.seq,
                f"the chain head (seq {head.seq}) fails authentication: it was set without the key "
                "(events cut off the end and the head moved back?)",
            )
        )
    report = None
    if checkpoints is not None:
        genuine = {row.seq for row in chain if chain_hash(key, row.prev_hash, row) == row.hash}
        report = _check_anchors(rows, genuine, checkpoints, findings)

    last = chain[-1] if chain else None
    if head is not None and head.seq > (last.seq if last else 0):
        first_missing = (last.seq if last else 0) + 1
        findings.append(
            Finding(
                "deleted",
                head.seq,
                f"events {first_missing}..{head.seq} were deleted from the end of the chain",
            )
        )
    elif head is not None and last is not None and head.hash != last.hash and head.seq == last.seq:
        findings.append(Finding("modified", head.seq, "the chain head does not match the last event"))
    findings.sort(key=lambda f: (f.seq, f.kind))
    return VerifyResult(events=len(rows), findings=findings, checkpoint=report)
