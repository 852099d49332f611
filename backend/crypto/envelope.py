"""Envelope encryption with AES-256-GCM (``cryptography``; nothing home-made).

* Each owner (a patient) has one random 256-bit **data key**, stored only *wrapped* (encrypted) by the
  current **key-encryption key** (KEK).
* Every ciphertext is bound, through AES-GCM associated data, to its owner and its record
  (``"<owner id>|<record>"``): a ciphertext copied to another record or patient fails to decrypt.
* `rotate` introduces a new KEK and re-wraps every data key in small committed batches, so it can be
  interrupted and resumed while the server keeps serving (a data key names the KEK that wraps it).
* `destroy` forgets an owner's data key: whatever was encrypted under it can never be read again.

Ciphertext layout: ``b"DL1" | 12-byte nonce | AES-GCM ciphertext and 16-byte tag``.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import bindparam
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from backend.core.clock import utcnow
from backend.core.errors import DermaLinkError
from backend.crypto.models import DataKey, KeyEncryptionKey

MAGIC = b"DL1"
NONCE = 12
TAG = 16


class DecryptionFailed(DermaLinkError):
    """A ciphertext is corrupted, truncated, bound to another record, or under the wrong key."""

    status_code, type = 500, "decryption_failed"


class KeyDestroyed(DermaLinkError):
    """The owner's data key was destroyed (the patient was erased)."""

    status_code, type = 410, "erased"


class KeyProvider:
    """Seals and unseals KEK material. The embedded default uses a key derived from the master key;
    a cloud KMS or an HSM implements the same two methods."""

    name = "local"

    def __init__(self, root_key: bytes) -> None:
        self._aead = AESGCM(root_key)

    def seal(self, kek_id: int, material: bytes) -> bytes:
        nonce = os.urandom(NONCE)
        return nonce + self._aead.encrypt(nonce, material, f"kek:{kek_id}".encode())

    def unseal(self, kek_id: int, sealed: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:NONCE], sealed[NONCE:], f"kek:{kek_id}".encode())
        except InvalidTag as exc:
            raise DecryptionFailed(
                f"key-encryption key {kek_id} cannot be unsealed with this master key"
            ) from exc


def _seal(key: bytes, plaintext: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(NONCE)
    return MAGIC + nonce + AESGCM(key).encrypt(nonce, plaintext, aad)


def _open(key: bytes, ciphertext: bytes, aad: bytes, what: str) -> bytes:
    if len(ciphertext) < len(MAGIC) + NONCE + TAG or not ciphertext.startswith(MAGIC):
        raise DecryptionFailed(f"{what}: ciphertext is truncated or not in DermaLink's format")
    body = ciphertext[len(MAGIC) :]
    try:
        return AESGCM(key).decrypt(body[:NONCE], body[NONCE:], aad)
    except InvalidTag as exc:
        raise DecryptionFailed(
            f"{what}: authentication failed (tampered, moved to another record, or wrong key)"
        ) from exc


@dataclass(frozen=True)
class RotationResult:
    kek_id: int
    rewrapped: int
    remaining: int


# The wrapped key and the material of the KEK that wraps it, in one query of plain columns, built once:
# this runs for every encrypted read and write.
_DATA_KEY = (
    select(DataKey.wrapped, DataKey.kek_id, DataKey.destroyed_at, KeyEncryptionKey.material_sealed)
    .outerjoin(KeyEncryptionKey, KeyEncryptionKey.id == DataKey.kek_id)  # type: ignore[arg-type]
    .where(DataKey.owner_id == bindparam("owner_id"))
)


class Vault:
    def __init__(self, provider: KeyProvider) -> None:
        self.provider = provider
        # A KEK's material unsealed by the provider, remembered by (id, sealed material): every data key
        # operation needs it, and the provider (a KMS, in production) need not be asked each time. The
        # sealed material is read from the database first every time, so a KEK deleted there is not used
        # from here; this process already holds what unseals it (the master key or the KMS credentials).
        self._unseal = functools.lru_cache(maxsize=16)(provider.unseal)

    # -- key-encryption keys -------------------------------------------------------------------
    def current_kek_id(self, session: Session) -> int:
        kek_id = session.exec(select(func.max(KeyEncryptionKey.id))).one()
        if kek_id is None:
            # Several API replicas start on a fresh database at once and each creates "the first" key:
            # the losers' inserts fail on the primary key, and they use the winner's key instead.
            try:
                with session.begin_nested():
                    kek_id = self._new_kek(session)
            except IntegrityError:
                kek_id = session.exec(select(func.max(KeyEncryptionKey.id))).one()
        return kek_id

    def _new_kek(self, session: Session) -> int:
        next_id = (session.exec(select(func.max(KeyEncryptionKey.id))).one() or 0) + 1
        sealed = self.provider.seal(next_id, os.urandom(32))
        session.add(KeyEncryptionKey(id=next_id, provider=self.provider.name, material_sealed=sealed))
        session.flush()
        return next_id

    def _kek(self, session: Session, kek_id: int) -> bytes:
        material = session.exec(
            select(KeyEncryptionKey.material_sealed).where(KeyEncryptionKey.id == kek_id)
        ).first()
        return self._unsealed(kek_id, material)

    def _unsealed(self, kek_id: int, material: bytes | None) -> bytes:
        """The KEK from its sealed material as just read (None: its row is gone)."""
        if material is None:
            raise DecryptionFailed(f"key-encryption key {kek_id} is missing")
        return self._unseal(kek_id, material)

    # -- data keys -----------------------------------------------------------------------------
    def create_data_key(self, session: Session, owner_id: uuid.UUID) -> None:
        kek_id = self.current_kek_id(session)
        wrapped = _seal(self._kek(session, kek_id), os.urandom(32), f"dek:{owner_id}".encode())
        session.add(DataKey(owner_id=owner_id, kek_id=kek_id, wrapped=wrapped))
        session.flush()

    def _data_key(self, session: Session, owner_id: uuid.UUID) -> bytes:
        row = session.exec(_DATA_KEY, params={"owner_id": owner_id}).first()
        if row is None:
            raise DecryptionFailed(f"no data key for owner {owner_id}")
        wrapped, kek_id, destroyed_at, material = row
        if destroyed_at is not None or wrapped is None or kek_id is None:
            raise KeyDestroyed(f"the data of {owner_id} was erased and can no longer be decrypted")
        return _open(self._unsealed(kek_id, material), wrapped, f"dek:{owner_id}".encode(), "data key")

    def sealer(self, session: Session, owner_id: uuid.UUID) -> Callable[[str, bytes], bytes]:
        """Unwrap ``owner_id``'s data key once and return ``seal(record, plaintext)``, equivalent to
        `encrypt`, usable after the session's transaction ended (for encrypting images outside it)."""
        key = self._data_key(session, owner_id)
        return lambda record, plaintext: _seal(key, plaintext, f"{owner_id}|{record}".encode())

    def encrypt(self, session: Session, owner_id: uuid.UUID, record: str, plaintext: bytes) -> bytes:
        return _seal(self._data_key(session, owner_id), plaintext, f"{owner_id}|{record}".encode())

    def decrypt(self, session: Session, owner_id: uuid.UUID, record: str, ciphertext: bytes) -> bytes:
        return _open(self._data_key(session, owner_id), ciphertext, f"{owner_id}|{record}".encode(), record)

    def destroy(self, session: Session, owner_id: uuid.UUID) -> bool:
        """Forget the owner's data key (crypto-shredding). Returns False when it was already gone."""
        row = session.exec(select(DataKey).where(DataKey.owner_id == owner_id)).first()
        if row is None or row.destroyed_at is not None:
            return False
        row.wrapped, row.kek_id, row.destroyed_at = None, None, utcnow()
        session.add(row)
        return True

    # -- rotation ------------------------------------------------------------------------------
    def pending_rewrap(self, session: Session, kek_id: int) -> int:
        query = (
            select(func.count())
            .select_from(DataKey)
            .where(DataKey.kek_id.is_not(None), DataKey.kek_id != kek_id)
        )  # type: ignore[union-attr]
        return session.exec(query).one()

    def rotate(
        self,
        session_factory: Callable[[], Session],
        *,
        batch_size: int = 200,
        force_new: bool = False,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> RotationResult:
        """Re-wrap every data key with the newest KEK, creating it first unless a rotation is already
        under way (some keys still on an older KEK), in which case this call resumes that rotation."""
        with session_factory() as session:
            current = self.current_kek_id(session)
            if force_new or self.pending_rewrap(session, current) == 0:
                current = self._new_kek(session)
            session.commit()
            total = self.pending_rewrap(session, current)
        done = 0
        while True:
            with session_factory() as session:
                new_kek = self._kek(session, current)
                rows = list(
                    session.exec(
                        select(DataKey)
                        .where(DataKey.kek_id.is_not(None), DataKey.kek_id != current)  # type: ignore[union-attr]
                        .order_by(DataKey.id)
                        .limit(batch_size)
                        .with_for_update(skip_locked=True)
                    )
                )
                if not rows:
                    break
                for row in rows:
                    aad = f"dek:{row.owner_id}".encode()
                    plain = _open(self._kek(session, row.kek_id), row.wrapped, aad, "data key")  # type: ignore[arg-type]
                    row.wrapped, row.kek_id = _seal(new_kek, plain, aad), current
                    session.add(row)
                session.commit()
                done += len(rows)
                if on_batch:
                    on_batch(done, total)
        with session_factory() as session:
            for kek in session.exec(
                select(KeyEncryptionKey).where(
                    KeyEncryptionKey.id != current, KeyEncryptionKey.retired_at.is_(None)
                )
            ):  # type: ignore[union-attr]
                kek.retired_at = utcnow()
                session.add(kek)
            session.commit()
            return RotationResult(
                kek_id=current, rewrapped=done, remaining=self.pending_rewrap(session, current)
            )
