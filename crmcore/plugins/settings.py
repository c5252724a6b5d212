"""Plugin settings: validated by the plugin's marshmallow schema, secrets encrypted at rest.

A secret field (``metadata={"secret": True}``) is stored as ``{"$enc": <Fernet token>}`` with the
key from the instance configuration (``secrets_key``), never from the database. A value of the
form ``$env:NAME`` is stored as given and resolved from the environment when read, so secrets can
stay out of the database entirely. Secrets are never returned to a page: :func:`masked_settings`
gives ``"••••"`` for a set secret, and saving that mask (or an empty value) keeps the stored one.
"""

from __future__ import annotations

import logging
import os
import re
from typing import TYPE_CHECKING, Any

import marshmallow as ma
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import select

from crmcore.errors import NotFound, ValidationFailed

if TYPE_CHECKING:
    from crmcore.context import Context
    from crmcore.plugins.manager import LoadedPlugin

log = logging.getLogger("crmcore.plugins")

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


def secret_problems(schema: type[ma.Schema]) -> list[str]:
    """Secret fields that are not strings: a secret is stored as one encrypted string, so a list
    or a number marked secret would come back as the text of its Python value."""
    return [f"settings field {name!r} is marked secret but is a {type(field).__name__}; a secret must be a "
            "marshmallow String (declare one String per secret)"
            for name, field in schema().fields.items()
            if field.metadata.get("secret") and not isinstance(field, ma.fields.String)]


def secret_fields(schema: type[ma.Schema]) -> set[str]:
    """Keys (as given in input, i.e. ``data_key`` where set) of the fields marked secret."""
    return {field.data_key or name for name, field in schema().fields.items() if field.metadata.get("secret")}


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

    Raises ValidationFailed with field-level errors (never echoing a secret's value). For a
    secret, the mask, an empty value or no value keeps the stored one, and ``$env:NAME`` is
    stored as given.
    """
    schema_cls = settings_schema(ctx, plugin)
    if not isinstance(data, dict):
        raise ValidationFailed(f"settings of plugin {plugin!r} must be an object", {"settings": ["not an object"]})
    if schema_cls is None:
        if data:
            raise ValidationFailed(f"plugin {plugin!r} has no settings",
                                   {key: ["Unknown field."] for key in data})
        return {}
    schema = schema_cls()
    attr_of = {field.data_key or name: name for name, field in schema.fields.items()}
    secrets = secret_fields(schema_cls)
    incoming = dict(data)
    kept: dict[str, Any] = {}
    env_refs: dict[str, str] = {}
    for key in secrets:
        value = incoming.get(key)
        if value is None or value == "" or value == MASK:
            incoming.pop(key, None)
            if key in stored:
                kept[key] = stored[key]
        elif isinstance(value, str) and value.startswith(ENV_PREFIX):
            if not _ENV_NAME.fullmatch(value[len(ENV_PREFIX):]):
                raise ValidationFailed(f"invalid settings for plugin {plugin!r}", {
                    key: ["write $env: followed by an environment variable name (letters, digits and _)"]})
            env_refs[key] = incoming.pop(key)
    partial = tuple(attr_of[key] for key in (*kept, *env_refs))
    errors = None
    try:
        loaded = schema_cls(partial=partial or False).load(incoming)
    except ma.ValidationError as exc:
        errors = _redact(exc.messages, secrets, data)
    if errors is not None:
        # raised outside the except block: the marshmallow error holds the raw input, secrets
        # included, and must not travel along as __context__ into a logged traceback
        raise ValidationFailed(f"invalid settings for plugin {plugin!r}", errors)
    result = _serialize(schema, loaded)
    to_encrypt = [key for key in secrets if result.get(key) not in (None, "")]
    if to_encrypt:
        fernet = _fernet(ctx)
        for key in to_encrypt:
            result[key] = {"$enc": fernet.encrypt(str(result[key]).encode()).decode()}
    result.update(env_refs)
    result.update(kept)
    return result


_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _serialize(schema: ma.Schema, loaded: Any) -> dict[str, Any]:
    """Loaded values in their input form, ``load_only`` fields included (secrets often are)."""
    if not isinstance(loaded, dict):
        return schema.dump(loaded)
    out: dict[str, Any] = {}
    for name, field in schema.fields.items():
        if name in loaded:
            out[field.data_key or name] = field.serialize(name, loaded)
    return out


REDACTED = "invalid value (not shown: the field is secret)"


def _redact(messages: Any, secrets: set[str], data: dict[str, Any]) -> Any:
    """Field errors never echo what was typed into a secret field."""
    if not isinstance(messages, dict):
        return messages
    out = {}
    for key, value in messages.items():
        typed = data.get(key)
        if key in secrets and typed not in (None, ""):
            text, secret = str(value).lower(), str(typed).lower()
            if len(secret) < 4 or secret in text:
                value = [REDACTED]
        out[key] = value
    return out


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
            env_name = value[len(ENV_PREFIX):]
            if env_name not in os.environ:
                log.warning("setting %r of plugin %r refers to $env:%s, which is not set", name, plugin, env_name)
            out[name] = os.environ.get(env_name, "")
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
