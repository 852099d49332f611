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
  it, was **reordered**.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, select

from backend.audit.models import AuditChainHead, AuditEvent
from backend.audit.service import GENESIS_HASH, chain_hash


@dataclass(frozen=True)
class Finding:
    kind: str  # modified | inserted | deleted | reordered
    seq: int
    message: str


@dataclass(frozen=True)
class VerifyResult:
    events: int
    findings: list[Finding]

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


def verify_chain(session: Session, key: bytes) -> VerifyResult:
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
    return VerifyResult(events=len(rows), findings=findings)
