"""Building the service objects from settings, once per process (the API server and `dermalink worker`)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from backend.audit.anchor import AuditAnchor, CheckpointStore
from backend.auth.service import AuthService
from backend.auth.tokens import TokenService
from backend.cases.analysis import Analyzer
from backend.cases.service import CaseService, IntakeLimits
from backend.cases.triage import TriageRules
from backend.config import DEFAULT_SECRET, Settings
from backend.core import metrics
from backend.core.keys import Keyring, load_master_key
from backend.crypto.envelope import KeyProvider, Vault
from backend.db import Database
from backend.images.intake import DecodeBudget
from backend.inference.batching import DynamicBatcher
from backend.inference.factory import ClassifierProvider
from backend.lesions.service import LesionService
from backend.orphans import OrphanSweeper
from backend.patients.erasure import ErasureLedger, ErasureService
from backend.patients.service import PatientService
from backend.storage import BlobStore, make_blob_store


@dataclass
class Services:
    settings: Settings
    keyring: Keyring
    db: Database
    auth: AuthService
    vault: Vault
    blobs: BlobStore
    patients: PatientService
    erasure: ErasureService
    classifier: ClassifierProvider
    rules: TriageRules
    cases: CaseService
    lesions: LesionService
    analyzer: Analyzer
    checkpoints: CheckpointStore
    anchor: AuditAnchor
    sweeper: OrphanSweeper


def make_anchor_store(settings: Settings) -> BlobStore:
    """The store for records that must survive a database restore (audit checkpoints, the erasure
    ledger): ``anchor_store_url``; by default the blob store when it is S3, else ``<data_dir>/anchors``
    (a folder apart from the blobs, so that restoring a copy of the blobs leaves it alone)."""
    url = settings.anchor_store_url or (settings.blob_store_url if settings.blob_store_url.strip() else "")
    return make_blob_store(url, settings.data_dir / "anchors")


def build_services(settings: Settings) -> Services:
    settings.check_production()
    keyring = Keyring(load_master_key(settings))
    db = Database(
        str(settings.database_url), audit_key=keyring.audit, sqlite_synchronous=settings.sqlite_synchronous
    )
    secret = settings.secret_key.get_secret_value()
    signing = keyring.jwt_fallback if secret == DEFAULT_SECRET else secret.encode()
    tokens = TokenService(
        signing,
        [s.get_secret_value().encode() for s in settings.previous_secret_keys],
        settings.access_token_minutes,
    )
    vault = Vault(KeyProvider(keyring.key_encryption_root))
    blobs = make_blob_store(settings.blob_store_url, settings.data_dir / "blobs")
    classifier = ClassifierProvider(settings)
    rules = TriageRules.from_file(
        settings.model_repository / settings.model_name / "triage.json"
    ).with_overrides(settings.triage_malignant_threshold, settings.triage_low_confidence_threshold)
    anchors = make_anchor_store(settings)
    checkpoints = CheckpointStore(anchors, keyring.audit, lock_days=settings.anchor_lock_days)
    ledger = ErasureLedger(anchors, keyring.erasure_ledger, lock_days=settings.anchor_lock_days)
    analyzer = Analyzer(
        db.session,
        vault,
        blobs,
        classifier,
        rules,
        lease=timedelta(seconds=settings.analysis_lease_seconds),
        batcher=DynamicBatcher(
            max_batch=settings.inference_max_batch,
            max_delay=settings.inference_batch_delay_ms / 1000,
            observe=metrics.observe_batch,
        ),
    )
    limits = IntakeLimits(settings.max_images_per_case, settings.max_image_bytes, settings.max_image_pixels)
    return Services(
        settings=settings,
        keyring=keyring,
        db=db,
        auth=AuthService(settings, tokens, keyring.totp),
        vault=vault,
        blobs=blobs,
        patients=PatientService(vault, keyring.blind_index),
        erasure=ErasureService(vault, blobs, ledger),
        classifier=classifier,
        rules=rules,
        lesions=LesionService(vault, blobs),
        cases=CaseService(
            vault,
            blobs,
            limits,
            settings.claim_minutes,
            analyzer=analyzer,
            decode_budget=DecodeBudget(
                settings.decode_pixel_budget,
                wait_seconds=settings.decode_wait_seconds,
                on_change=metrics.DECODE_PIXELS.set,
            ),
            sessions=db.session,
        ),
        checkpoints=checkpoints,
        anchor=AuditAnchor(
            checkpoints,
            db.session,
            every_events=settings.audit_checkpoint_events,
            every_minutes=settings.audit_checkpoint_minutes,
        ),
        sweeper=OrphanSweeper(
            blobs,
            db.session,
            grace=timedelta(hours=settings.orphan_blob_grace_hours),
            every_hours=settings.orphan_sweep_hours,
        ),
        analyzer=analyzer,
    )
