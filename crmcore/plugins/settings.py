"""Plugin settings: validated by the plugin's marshmallow schema, secrets encrypted at rest.

A secret field (``metadata={"secret": True}``) is stored as ``{"$enc": <Fernet token>}`` with the
key from the instance configuration (``secrets_key``), never from the database. A value of the
form ``$env:NAME`` is stored as given and resolved from the environment when read, so secrets can
stay out of the database entirely. Secrets are never returned to a page: :func:`masked_settings`
gives ``"••••"`` for a set secret, and saving that mask (or an empty value) keeps the stored one.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import marshmallow as ma
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from crmcore.errors import NotFound, ValidationFailed

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.plugins.manager import LoadedPlugin

MASK = "••••••••"
ENV_PREFIX = "$env:"


def settings_schema(ctx_or_registry: Any, plugin: str) -> type[ma.Schema] | None:
    registry = getattr(getattr(ctx_or_registry, "crm", None), "registry", ctx_or_registry)
    loaded: LoadedPlugin | None = registry.plugins.get(plugin)
    if loaded is None:
        raise NotFound(f"unknown plugin {plugin!r}")
    hook = registry.pm.hook.crm_settings_schema
    for impl in hook.get_hookimpls():
        if impl.plugin_name == plugin:
            schema = impl.function()
            if schema is not None:
                return schema
    return loaded.info.settings_schema


def secret_fields(schema: type[ma.Schema]) -> set[str]:
    return {name for name, field in schema._declared_fields.items() if field.metadata.get("secret")}


def _fernet(ctx: Context) -> Fernet:
    key = ctx.crm.config.secrets_key
    if not key:
        raise ValidationFailed("no secrets_key in the instance configuration: run `crm init` to create one")
    try:
        return Fernet(key.encode() if isinstance(key, str) else key)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed("secrets_key in the instance configuration is not a valid Fernet key") from exc


def validate_settings(ctx: Context, plugin: str, data: dict[str, Any], stored: dict[str, Any]) -> dict[str, Any]:
    """Validate ``data`` against the plugin's schema; returns the dict to store (secrets encrypted).

    Raises ValidationFailed with field-level errors; keeps a stored secret when the mask or an
    empty value comes back.
    """
    schema_cls = settings_schema(ctx, plugin)
    if schema_cls is None:
        if data:
            raise ValidationFailed(f"plugin {plugin!r} has no settings", {"settings": ["unexpected"]})
        return {}
    secrets = secret_fields(schema_cls)
    incoming = dict(data)
    kept: dict[str, Any] = {}
    for name in secrets:
        if incoming.get(name) in (None, "", MASK) and name in stored:
            incoming.pop(name, None)
            kept[name] = stored[name]
    check = {k: v for k, v in incoming.items()
             if not (k in secrets and isinstance(v, str) and v.startswith(ENV_PREFIX))}
    try:
        loaded = schema_cls(partial=tuple(kept) or False).load(check)
    except ma.ValidationError as exc:
        raise ValidationFailed(f"invalid settings for plugin {plugin!r}", _redact(exc.messages, secrets)) from exc
    schema_out = schema_cls().dump(loaded)
    fernet = _fernet(ctx) if secrets else None
    result: dict[str, Any] = {}
    for name, value in schema_out.items():
        if name in secrets and value not in (None, ""):
            result[name] = {"$enc": fernet.encrypt(str(value).encode()).decode()}
        else:
            result[name] = value
    for name in secrets:
        raw = incoming.get(name)
        if isinstance(raw, str) and raw.startswith(ENV_PREFIX):
            env_name = raw[len(ENV_PREFIX):]
            if not env_name.replace("_", "").isalnum():
                raise ValidationFailed("invalid settings", {name: [f"{raw!r} is not a valid $env:NAME reference"]})
            result[name] = raw
    result.update(kept)
    return result


def _redact(messages: Any, secrets: set[str]) -> Any:
    """Field errors never echo what was typed into a secret field."""
    if isinstance(messages, dict):
        return {k: (["invalid value"] if k in secrets else v) for k, v in messages.items()}
    return messages


def decrypt_settings(ctx: Context, plugin: str, stored: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    fernet: Fernet | None = None
    for name, value in stored.items():
        if isinstance(value, dict) and "$enc" in value:
            fernet = fernet or _fernet(ctx)
            try:
                out[name] = fernet.decrypt(value["$enc"].encode()).decode()
            except InvalidToken as exc:
                raise ValidationFailed(
                    f"the secret {name!r} of plugin {plugin!r} cannot be decrypted with this instance's key"
                ) from exc
        elif isinstance(value, str) and value.startswith(ENV_PREFIX):
            out[name] = os.environ.get(value[len(ENV_PREFIX):], "")
        else:
            out[name] = value
    return out


def masked_settings(stored: dict[str, Any]) -> dict[str, Any]:
    """Settings safe to show: secrets replaced by a mask (``$env:`` references shown as such)."""
    return {k: (MASK if isinstance(v, dict) and "$enc" in v else v) for k, v in stored.items()}


def load_settings(ctx: Context, plugin: str) -> dict[str, Any]:
    from crmcore.plugins.models import PluginEnablement

    row = ctx.session.scalar(select(PluginEnablement).where(PluginEnablement.plugin == plugin))
    return decrypt_settings(ctx, plugin, row.settings if row else {})
