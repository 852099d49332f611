"""One `Settings` object for the whole service (environment prefix ``DERMALINK_``, `.env` supported).

The embedded defaults (development) keep everything under one data directory: a SQLite file, a blob
folder and a master key file generated on first start. ``production`` refuses to start on any default
secret, on SQLite, or on a key file other users can read, and says which.
"""

from __future__ import annotations

import os
import stat
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SECRET = "change-me-development-only"


class ConfigurationError(RuntimeError):
    """The settings are unsafe or inconsistent; the message says which setting."""


class Settings(BaseSettings):
    # Container secrets: with DERMALINK_SECRETS_DIR=/run/secrets, a file there named like a variable
    # (DERMALINK_SECRET_KEY, DERMALINK_MASTER_KEY, DERMALINK_DATABASE_URL...) holds its value, so secrets
    # never sit in the environment of a compose file. Environment variables still win.
    model_config = SettingsConfigDict(
        env_prefix="DERMALINK_",
        env_file=".env",
        extra="ignore",
        secrets_dir=os.environ.get("DERMALINK_SECRETS_DIR") or None,
    )

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = REPO_ROOT / "var"
    database_url: str | None = Field(
        default=None, description="Defaults to SQLite at <data_dir>/dermalink.db"
    )
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET)
    previous_secret_keys: list[SecretStr] = Field(
        default_factory=list, description="Still accepted for verification"
    )
    master_key_file: Path | None = Field(default=None, description="Defaults to <data_dir>/master.key")
    master_key: SecretStr | None = Field(default=None, description="Base64 master key; overrides the file")

    access_token_minutes: int = 15
    refresh_token_days: int = 14
    password_min_length: int = 12
    # Failed password/TOTP attempts (backend.auth.throttle; `limits` notation, ";" between windows).
    login_limit_pair: str = "5 per minute; 10 per 15 minutes"  # one address guessing one account: 429
    login_limit_address: str = "50 per 15 minutes"  # one address, any accounts: 429
    login_limit_account: str = "100 per hour"  # one account, any addresses: the account locks (423)
    rate_limit_storage: str = Field(
        default="memory://",
        description="Where the throttle counts: memory:// (one process) or redis://host:6379/1 (shared)",
    )
    max_header_bytes: int = 16_384  # request line and headers together (431 above; uvicorn bounds it too)
    max_body_bytes: int = 1_000_000  # JSON bodies; uploads have their own limit
    max_upload_bytes: int = 50_000_000  # a whole multipart case submission
    upload_paths: tuple[str, ...] = ("/api/v1/cases",)
    max_images_per_case: int = 4
    max_image_bytes: int = 12_000_000
    max_image_pixels: int = 40_000_000  # decompression-bomb guard, checked before decoding
    decode_pixel_budget: int = Field(
        default=60_000_000,
        description="Pixels decoded at once across all requests (also the most one request may declare); "
        "bounds intake's memory at about 12 bytes per pixel",
    )
    decode_wait_seconds: float = 30.0  # a request waiting longer for decoding room gets 503
    auto_migrate: bool = Field(default=True, description="Upgrade the schema at start-up (one replica only)")
    cors_origins: list[str] = Field(default_factory=list)
    trusted_proxies: list[str] = Field(
        default_factory=list,
        description="Reverse proxies (IPs/CIDRs) whose X-Forwarded-For/-Proto are believed; none by default",
    )
    hsts_seconds: int = 31_536_000  # Strict-Transport-Security max-age, sent on requests that came over TLS
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"  # WARNING drops the per-request lines
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        default="NORMAL",
        description="SQLite (development and single-machine use; production runs PostgreSQL). NORMAL: a "
        "commit survives a crash or kill of the process, but the last commits before a power loss or "
        "kernel crash may be lost (WAL is synced at checkpoints, not at each commit); FULL: synced at every "
        "commit, about one fsync (~5 ms on this disk) per commit",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token for GET /metrics (Prometheus' scrape credential); unset: admins only",
    )
    create_demo_users: bool = True  # development only

    blob_store_url: str = Field(
        default="",
        description="Empty: local files under <data_dir>/blobs; or s3://bucket/prefix?endpoint_url=...",
    )

    # Anchors outside the database (docs/security.md): audit checkpoints and the erasure ledger.
    anchor_store_url: str = Field(
        default="",
        description="Where checkpoints and the erasure ledger live; empty: the blob store when it is S3, "
        "else <data_dir>/anchors. Keep it out of any backup you would ever restore over it",
    )
    audit_checkpoint_events: int = Field(default=500, ge=1, description="Checkpoint after this many events")
    audit_checkpoint_minutes: float = Field(
        default=5.0, gt=0, description="...or this long after the last one, when the chain grew"
    )
    anchor_lock_days: int = Field(
        default=0,
        ge=0,
        description="S3 Object Lock (compliance) retention of checkpoints and erasure records; 0: none. "
        "The bucket must have Object Lock enabled",
    )

    # Blobs whose database commit never happened (backend/orphans.py).
    orphan_blob_grace_hours: float = Field(
        default=24.0, gt=0, description="Unreferenced blobs younger than this are never swept (> any request)"
    )
    orphan_sweep_hours: float = Field(default=6.0, ge=0, description="How often the server sweeps; 0: never")

    # Inference and analysis jobs.
    inference: Literal["onnx", "triton"] = "onnx"
    model_repository: Path = REPO_ROOT / "model_repository"
    model_name: str = "ham10000_mobilenetv2"
    onnx_threads: int = 0  # 0: the process's share of the cores less one (`inference.factory.model_threads`)
    triton_url: str = "127.0.0.1:8001"  # host:port of Triton's gRPC (or HTTP) endpoint, no scheme
    triton_protocol: Literal["grpc", "http"] = "grpc"
    triton_model: str = ""  # "": model_name
    triton_version: str = ""  # "": whichever version Triton's version policy serves
    triton_timeout_s: float = 10.0  # deadline of one inference call
    triton_retries: int = 3  # attempts for retryable failures
    triton_labels_file: str = ""  # when the served config names no labels
    inference_max_batch: int = 16  # images per model call when concurrent analyses share one
    inference_batch_delay_ms: float = 2.0  # how long a request may wait for others to batch with
    queue: Literal["embedded", "redis"] = "embedded"
    redis_url: str = "redis://127.0.0.1:6379/0"
    analysis_wait_seconds: float = 5.0  # how long a submission waits for its analysis before answering
    claim_minutes: int = 30
    analysis_lease_seconds: int = 120  # a job whose worker died runs again after this long
    triage_malignant_threshold: float | None = None  # overrides the model's triage.json
    triage_low_confidence_threshold: float | None = None

    # Single sign-on with the hospital's OpenID Connect provider (docs/sso.md). Empty issuer: off.
    oidc_issuer: str = Field(default="", description="e.g. https://login.hospital.org/realms/staff")
    oidc_client_id: str = ""
    oidc_client_secret: SecretStr = SecretStr("")
    oidc_redirect_uri: str = Field(
        default="", description="Empty: <this server>/api/v1/auth/oidc/callback as the request reached it"
    )
    oidc_scopes: str = "openid email profile"
    oidc_role_claim: str = "groups"  # a string or a list of strings in the ID token (or userinfo)
    oidc_role_map: dict[str, Literal["clinician", "dermatologist", "admin"]] = Field(
        default_factory=dict, description='claim value -> role, e.g. {"dl-dermatologists": "dermatologist"}'
    )
    oidc_clinic_claim: str = ""  # e.g. "clinic"; empty: clinics are assigned by an admin
    oidc_clinic_map: dict[str, str] = Field(
        default_factory=dict, description="claim value -> clinic name (empty: the value is the clinic name)"
    )
    oidc_link_by_email: bool = True  # first sign-in links the account with the same verified e-mail
    oidc_provision: bool = False  # first sign-in without an account creates one
    oidc_require_email_verified: bool = True
    oidc_mfa_amr: list[str] = Field(
        default_factory=lambda: ["mfa", "otp", "hwk", "swk", "sc", "fpt", "face", "iris", "retina", "vbm"],
        description="amr values (RFC 8176) that prove a second factor",
    )
    oidc_mfa_acr: list[str] = Field(default_factory=list, description="acr values that prove a second factor")
    oidc_clock_skew_seconds: int = 60
    oidc_app_redirect: str = "/#/sso"  # where the callback sends the browser, with ?code= or ?error=
    oidc_display_name: str = "your hospital account"
    password_login_enabled: bool = True  # false: only single sign-on (when oidc_issuer is set)

    # FHIR export (docs/fhir.md): the base of DermaLink's own identifier and code systems.
    fhir_system_base: str = Field(
        default="https://dermalink.example.org/fhir",
        description="URI prefix of DermaLink's FHIR identifier and code systems; set it to your own domain",
    )

    @model_validator(mode="after")
    def _fill_defaults(self) -> Settings:
        if self.database_url is None:
            self.database_url = f"sqlite:///{self.data_dir / 'dermalink.db'}"
        if self.master_key_file is None:
            self.master_key_file = self.data_dir / "master.key"
        return self

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    @property
    def sso_enabled(self) -> bool:
        return bool(self.oidc_issuer and self.oidc_client_id)

    @property
    def is_sqlite(self) -> bool:
        return str(self.database_url).startswith("sqlite")

    def check_production(self) -> None:
        """Raise `ConfigurationError` naming every unsafe setting when running in production."""
        if not self.is_production:
            return
        problems = []
        secret = self.secret_key.get_secret_value()
        if secret == DEFAULT_SECRET or len(secret) < 32:
            problems.append(
                "DERMALINK_SECRET_KEY is missing, the development default, or shorter than 32 chars"
            )
        if self.is_sqlite:
            problems.append("DERMALINK_DATABASE_URL is SQLite; production needs PostgreSQL")
        if self.master_key is None:
            path = self.master_key_file
            if path is None or not path.exists():
                problems.append(f"master key file {path} does not exist (set DERMALINK_MASTER_KEY_FILE)")
            elif path.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                problems.append(f"master key file {path} is readable by group or others (chmod 600 it)")
        if self.create_demo_users and os.environ.get("DERMALINK_CREATE_DEMO_USERS"):
            problems.append("DERMALINK_CREATE_DEMO_USERS must not be set in production")
        if self.oidc_issuer and not self.oidc_issuer.startswith("https://"):
            problems.append("DERMALINK_OIDC_ISSUER must be an https:// URL")
        if problems:
            raise ConfigurationError("refusing to start in production: " + "; ".join(problems))


@lru_cache
def get_settings() -> Settings:
    return Settings()
