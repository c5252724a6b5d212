"""Configuration: an instance folder with an optional ``crm.toml``, overridden by ``CRM_*`` variables."""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from crmcore.errors import ValidationFailed

CONFIG_FILE = "crm.toml"


@dataclass(frozen=True)
class Config:
    instance_path: Path
    database_url: str = ""
    #: signs sessions and CSRF tokens (web)
    secret_key: str = ""
    #: Fernet key that encrypts secret plugin settings; lives in the instance config, never the db
    secrets_key: str = ""
    attachments_max_bytes: int = 10 * 1024 * 1024
    attachments_allowed_types: tuple[str, ...] = (
        "application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp", "text/plain",
        "text/csv", "application/zip",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.oasis.opendocument.text", "application/vnd.oasis.opendocument.spreadsheet",
        "application/msword", "application/vnd.ms-excel",
    )
    #: run react-hook jobs right after commit in the same process instead of leaving them to
    #: ``crm worker`` (tests and scripts that want effects at once; production leaves it off)
    outbox_inline: bool = False
    #: tries before a job is parked for an admin to retry or discard
    outbox_max_attempts: int = 8
    #: seconds a job may run; the worker abandons it then and records it as failed
    outbox_job_timeout: float = 30.0
    #: a claimed row stays leased for its timeout plus this many seconds; a worker that dies
    #: (kill -9, power loss) leaves its rows to be claimed again once the lease ends
    outbox_lease_margin: float = 30.0
    #: retry delays: attempt n waits between half and all of ``base * 2**n`` seconds, at most ``cap``
    outbox_backoff_base: float = 2.0
    outbox_backoff_cap: float = 3600.0
    #: done and discarded rows older than this many seconds are deleted by the worker
    outbox_retention: float = 86400.0
    #: how often (seconds) a worker prunes, and how many rows one DELETE removes
    outbox_prune_interval: float = 60.0
    outbox_prune_batch: int = 5000
    #: PostgreSQL: after pruning, a worker runs ``VACUUM outbox`` at most this often (seconds;
    #: 0 leaves it to autovacuum), so the freed space is reused and the table file stays small
    outbox_vacuum_interval: float = 30.0
    #: the address the public reaches this installation at (``https://crm.example.com``): links
    #: sent out and provider callbacks (SMS status reports) are built from it; empty: none sent
    public_url: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def attachments_path(self) -> Path:
        return self.instance_path / "attachments"

    @classmethod
    def load(cls, instance_path: str | Path | None = None, env: dict[str, str] | None = None,
             **overrides: Any) -> Config:
        """Read ``<instance>/crm.toml`` then ``CRM_*`` environment variables, then ``overrides``."""
        env = dict(os.environ if env is None else env)
        path = Path(instance_path or env.get("CRM_INSTANCE_PATH") or "instance").resolve()
        values: dict[str, Any] = {}
        config_file = path / CONFIG_FILE
        if config_file.exists():
            try:
                values.update(tomllib.loads(config_file.read_text()))
            except tomllib.TOMLDecodeError as exc:
                raise ValidationFailed(f"{config_file}: {exc}") from exc
        known = {f.name: f for f in fields(cls)}
        for name in known:
            key = "CRM_" + name.upper()
            if key in env:
                values[name] = env[key]
        values.update(overrides)
        unknown = set(values) - set(known)
        extra = {k: values.pop(k) for k in unknown}
        values.pop("instance_path", None)
        config = cls(instance_path=path, extra=extra, **{k: _coerce(known[k].type, v) for k, v in values.items()})
        if not config.database_url:
            config = replace(config, database_url=f"sqlite:///{path / 'crm.sqlite'}")
        return config

    def ensure_instance(self) -> Config:
        """Create the instance folder and a ``crm.toml`` with fresh keys if they are missing."""
        self.instance_path.mkdir(parents=True, exist_ok=True)
        config_file = self.instance_path / CONFIG_FILE
        if not config_file.exists():
            from cryptography.fernet import Fernet

            config_file.write_text(
                "# crmcore instance configuration; keep this file secret.\n"
                f'secret_key = "{secrets.token_urlsafe(32)}"\n'
                f'secrets_key = "{Fernet.generate_key().decode()}"\n'
            )
            os.chmod(config_file, 0o600)
        return Config.load(self.instance_path, **{k: getattr(self, k) for k in ("database_url",)}
                           if self.database_url else {})


def _coerce(kind: Any, value: Any) -> Any:
    if not isinstance(value, str):
        return tuple(value) if isinstance(value, list) else value
    kind = str(kind)
    if kind.startswith("bool"):
        return value.strip().lower() in {"1", "true", "yes", "on"}
    if kind.startswith("float"):
        try:
            return float(value)
        except ValueError as exc:
            raise ValidationFailed(f"configuration value {value!r} is not a number") from exc
    if kind.startswith("int"):
        try:
            return int(value)
        except ValueError as exc:
            raise ValidationFailed(f"configuration value {value!r} is not a whole number") from exc
    if kind.startswith("tuple"):
        return tuple(v.strip() for v in value.split(",") if v.strip())
    return value
