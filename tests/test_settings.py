"""Per-business plugin settings: validated by the plugin's schema, secrets encrypted at rest."""

from __future__ import annotations

import dataclasses
import json
import logging

import marshmallow as ma
import pytest
from cryptography.fernet import Fernet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from crmcore import PluginInfo
from crmcore.audit.models import AuditEntry
from crmcore.context import Context
from crmcore.errors import NotFound, PermissionDenied, ValidationFailed
from crmcore.plugins.models import PluginEnablement
from crmcore.plugins.service import enable_plugin, get_settings, list_plugins, save_settings
from crmcore.plugins.settings import MASK
from crmcore.runtime import Crm

SECRET = "sk_live_51HxQyZpL0ngS3cr3tValue"
HOOK_SECRET = "whsec_9dF2kLmN0pQ"


class GatewaySettings(ma.Schema):
    account = ma.fields.String(required=True, validate=ma.validate.Length(min=3, max=40))
    api_key = ma.fields.String(
        required=True, metadata={"secret": True},
        validate=ma.validate.Regexp(r"^sk_(test|live)_\w{10,}$", error="{input} is not a gateway key"),
    )
    webhook_secret = ma.fields.String(load_only=True, metadata={"secret": True})
    mode = ma.fields.String(validate=ma.validate.OneOf(["test", "live"]), load_default="test")


class Gateway:
    """A plugin that only has settings."""


@pytest.fixture(autouse=True)
def _all_logs(caplog):
    """Capture every log line, to prove secrets stay out of them."""
    caplog.set_level(logging.DEBUG)


@pytest.fixture
def sql_log():
    """Log SQL statements with their parameters too."""
    engine_log = logging.getLogger("sqlalchemy.engine")
    level = engine_log.level
    engine_log.setLevel(logging.INFO)
    yield
    engine_log.setLevel(level)


@pytest.fixture
def gateway(register_plugin):
    return register_plugin(Gateway(), name="tp-gateway",
                           info=PluginInfo(title="Gateway", settings_schema=GatewaySettings))


def raw_row(ctx: Context, plugin: str) -> str | None:
    """The settings column exactly as stored in the database."""
    with ctx.crm.db.engine.connect() as conn:
        return conn.execute(
            text("select cast(settings as text) from plugin_enablements where business_id = :b and plugin = :p"),
            {"b": ctx.business_id, "p": plugin},
        ).scalar()


def audit_text(ctx: Context) -> str:
    with ctx.crm.db.session(ctx.business_id) as session:
        return json.dumps([[e.action, e.changes] for e in session.scalars(select(AuditEntry))])


def stored(ctx: Context, plugin: str) -> dict:
    with ctx.crm.db.session(ctx.business_id) as session:
        row = session.scalar(select(PluginEnablement).where(PluginEnablement.plugin == plugin))
        return row.settings if row else {}


GOOD = {"account": "acme-shop", "api_key": SECRET, "webhook_secret": HOOK_SECRET, "mode": "live"}


def test_bad_settings_are_refused_field_by_field_and_nothing_is_written(gateway, ctx):
    with pytest.raises(ValidationFailed) as failed:
        enable_plugin(ctx, gateway, {"api_key": SECRET, "mode": "prod", "colour": "red"})
    assert failed.value.message == "invalid settings for plugin 'tp-gateway'"
    assert failed.value.errors == {
        "account": ["Missing data for required field."],
        "mode": ["Must be one of: test, live."],
        "colour": ["Unknown field."],
    }
    assert not ctx.is_enabled(gateway)
    assert raw_row(ctx, gateway) is None
    assert "plugin.enabled" not in audit_text(ctx)


def test_enabling_a_plugin_with_required_settings_needs_them(gateway, ctx):
    with pytest.raises(ValidationFailed) as failed:
        enable_plugin(ctx, gateway)
    assert set(failed.value.errors) == {"account", "api_key"}
    assert not ctx.is_enabled(gateway)


def test_a_secret_is_encrypted_at_rest_and_never_logged_or_audited(gateway, ctx, caplog, sql_log):
    enable_plugin(ctx, gateway, GOOD)
    raw = raw_row(ctx, gateway)
    assert SECRET not in raw and HOOK_SECRET not in raw
    assert json.loads(raw)["api_key"].keys() == {"$enc"}
    assert json.loads(raw)["account"] == "acme-shop"
    assert SECRET not in audit_text(ctx) and HOOK_SECRET not in audit_text(ctx)
    assert "plugin.enabled" in audit_text(ctx)
    assert "plugin_enablements" in caplog.text  # the SQL was logged, with its parameters ...
    assert SECRET not in caplog.text and HOOK_SECRET not in caplog.text  # ... and no secret in them


def test_the_plugin_reads_its_secrets_decrypted(gateway, ctx):
    enable_plugin(ctx, gateway, GOOD)
    assert ctx.plugin_settings(gateway) == GOOD


def test_pages_and_lists_only_ever_see_a_mask(gateway, ctx):
    enable_plugin(ctx, gateway, GOOD)
    masked = {"account": "acme-shop", "api_key": MASK, "webhook_secret": MASK, "mode": "live"}
    assert get_settings(ctx, gateway) == masked
    assert {s.name: s.settings for s in list_plugins(ctx)}[gateway] == masked
    assert save_settings(ctx, gateway, {**GOOD, "account": "renamed"})["api_key"] == MASK


def test_saving_the_mask_back_keeps_the_secret(gateway, ctx):
    enable_plugin(ctx, gateway, GOOD)
    before = stored(ctx, gateway)["api_key"]
    save_settings(ctx, gateway, {**get_settings(ctx, gateway), "account": "acme-two"})
    save_settings(ctx, gateway, {"account": "acme-three", "api_key": "", "mode": "test"})
    assert stored(ctx, gateway)["api_key"] == before
    assert ctx.plugin_settings(gateway) == {**GOOD, "account": "acme-three", "mode": "test"}


def test_the_mask_is_never_stored_as_a_secret(gateway, ctx):
    with pytest.raises(ValidationFailed) as failed:
        enable_plugin(ctx, gateway, {"account": "acme-shop", "api_key": MASK})
    assert failed.value.errors == {"api_key": ["Missing data for required field."]}


def test_a_new_secret_replaces_the_old_one(gateway, ctx):
    enable_plugin(ctx, gateway, GOOD)
    save_settings(ctx, gateway, {**GOOD, "api_key": "sk_test_anotherKey1234"})
    assert ctx.plugin_settings(gateway)["api_key"] == "sk_test_anotherKey1234"


def test_an_env_reference_is_stored_as_given_and_resolved_when_read(gateway, ctx, monkeypatch):
    monkeypatch.setenv("CRM_TEST_GATEWAY_KEY", SECRET)
    enable_plugin(ctx, gateway, {"account": "acme-shop", "api_key": "$env:CRM_TEST_GATEWAY_KEY"})
    assert json.loads(raw_row(ctx, gateway))["api_key"] == "$env:CRM_TEST_GATEWAY_KEY"
    assert get_settings(ctx, gateway)["api_key"] == "$env:CRM_TEST_GATEWAY_KEY"
    assert ctx.plugin_settings(gateway)["api_key"] == SECRET
    monkeypatch.setenv("CRM_TEST_GATEWAY_KEY", "sk_live_rotatedKey00001")
    assert ctx.plugin_settings(gateway)["api_key"] == "sk_live_rotatedKey00001"


def test_an_unset_env_reference_reads_empty_and_is_logged(gateway, ctx, monkeypatch, caplog):
    monkeypatch.delenv("CRM_TEST_UNSET_KEY", raising=False)
    enable_plugin(ctx, gateway, {"account": "acme-shop", "api_key": "$env:CRM_TEST_UNSET_KEY"})
    assert ctx.plugin_settings(gateway)["api_key"] == ""
    assert "$env:CRM_TEST_UNSET_KEY, which is not set" in caplog.text


def test_a_malformed_env_reference_is_refused(gateway, ctx):
    with pytest.raises(ValidationFailed) as failed:
        enable_plugin(ctx, gateway, {"account": "acme-shop", "api_key": "$env:not a name"})
    assert list(failed.value.errors) == ["api_key"]
    assert "environment variable name" in failed.value.errors["api_key"][0]


def test_a_validation_message_never_echoes_a_secret(gateway, ctx, caplog, sql_log):
    typed = "pk_live_typedByMistake99"
    with pytest.raises(ValidationFailed) as failed:
        enable_plugin(ctx, gateway, {"account": "acme-shop", "api_key": typed, "mode": "live"})
    assert list(failed.value.errors) == ["api_key"]
    assert typed not in str(failed.value) and typed not in json.dumps(failed.value.to_dict())
    # the marshmallow error (which holds the input) is not chained into tracebacks either
    assert failed.value.__cause__ is None and failed.value.__context__ is None
    assert typed not in caplog.text


def test_a_validation_message_of_a_plain_field_may_echo_it(register_plugin, ctx):
    class Echo(ma.Schema):
        sender = ma.fields.String(validate=ma.validate.Regexp(r"^\+\d+$", error="{input} is no number"))

    name = register_plugin(Gateway(), info=PluginInfo(title="Echo", settings_schema=Echo))
    with pytest.raises(ValidationFailed) as failed:
        enable_plugin(ctx, name, {"sender": "ACME"})
    assert failed.value.errors == {"sender": ["ACME is no number"]}


def test_a_wrong_secrets_key_gives_a_clear_error(gateway, ctx, crm, business):
    enable_plugin(ctx, gateway, GOOD)
    other = Crm(config=dataclasses.replace(crm.config, secrets_key=Fernet.generate_key().decode()),
                db=crm.db, registry=crm.registry)
    message = r"the secret 'api_key' of plugin 'tp-gateway' cannot be decrypted with this instance's key"
    with Context.open(other, business.slug, f"owner@{business.slug}.example") as wrong, \
            pytest.raises(ValidationFailed, match=message):
        wrong.plugin_settings(gateway)


@pytest.mark.parametrize(("key", "message"), [
    ("", "no secrets_key in the instance configuration"),
    ("not-a-fernet-key", "secrets_key in the instance configuration is not a valid Fernet key"),
])
def test_storing_a_secret_needs_a_valid_secrets_key(gateway, crm, business, key, message):
    other = Crm(config=dataclasses.replace(crm.config, secrets_key=key), db=crm.db, registry=crm.registry)
    with Context.open(other, business.slug, f"owner@{business.slug}.example") as ctx:
        with pytest.raises(ValidationFailed, match=message):
            enable_plugin(ctx, gateway, GOOD)
        assert raw_row(ctx, gateway) is None


def test_settings_belong_to_one_business(gateway, ctx, other_ctx):
    enable_plugin(ctx, gateway, GOOD)
    assert other_ctx.plugin_settings(gateway) == {}
    assert get_settings(other_ctx, gateway) == {}
    enable_plugin(other_ctx, gateway, {**GOOD, "account": "globex-shop", "api_key": "sk_test_globexKey12345"})
    assert ctx.plugin_settings(gateway)["api_key"] == SECRET
    assert other_ctx.plugin_settings(gateway)["api_key"] == "sk_test_globexKey12345"


def test_only_admins_see_or_change_settings(gateway, ctx, make_user, business):
    enable_plugin(ctx, gateway, GOOD)
    member = make_user(business, "member")
    with pytest.raises(PermissionDenied):
        get_settings(member, gateway)
    with pytest.raises(PermissionDenied):
        save_settings(member, gateway, GOOD)
    assert ctx.plugin_settings(gateway) == GOOD


def test_settings_of_an_unknown_plugin(ctx):
    with pytest.raises(NotFound, match="unknown plugin 'nope'"):
        save_settings(ctx, "nope", {})
    with pytest.raises(NotFound, match="unknown plugin 'nope'"):
        get_settings(ctx, "nope")


def test_a_plugin_without_a_schema_takes_no_settings(register_plugin, ctx):
    name = register_plugin(Gateway())
    with pytest.raises(ValidationFailed, match="has no settings") as failed:
        enable_plugin(ctx, name, {"colour": "red"})
    assert failed.value.errors == {"colour": ["Unknown field."]}
    enable_plugin(ctx, name)
    assert ctx.plugin_settings(name) == {}


def test_settings_must_be_an_object(gateway, ctx):
    with pytest.raises(ValidationFailed, match="must be an object"):
        save_settings(ctx, gateway, ["account", "acme"])


def test_changing_settings_is_audited_by_field_name_only(gateway, ctx):
    enable_plugin(ctx, gateway, GOOD)
    save_settings(ctx, gateway, {**GOOD, "api_key": "sk_test_anotherKey1234"})
    with ctx.crm.db.session(ctx.business_id) as session:
        entry = session.scalars(select(AuditEntry).where(AuditEntry.action == "plugin.settings_changed")).one()
    assert entry.changes == {"plugin": gateway, "fields": ["account", "api_key", "mode", "webhook_secret"]}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(secret=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=60)
       .filter(lambda s: s.strip() == s and s not in ("", MASK) and not s.startswith("$env:")))
def test_any_secret_round_trips_and_never_appears_in_the_row(register_plugin, ctx, secret):
    class Any_(ma.Schema):
        token = ma.fields.String(metadata={"secret": True})

    name = register_plugin(Gateway(), info=PluginInfo(title="Any", settings_schema=Any_))
    save_settings(ctx, name, {"token": secret})
    assert ctx.plugin_settings(name) == {"token": secret}
    assert get_settings(ctx, name) == {"token": MASK}
    raw = json.loads(raw_row(ctx, name))
    assert list(raw["token"]) == ["$enc"]
    if len(secret) >= 12:  # a short one may turn up in the ciphertext's base64 by chance
        assert secret not in raw["token"]["$enc"]


@pytest.mark.parametrize("field", [ma.fields.List(ma.fields.String(), metadata={"secret": True}),
                                   ma.fields.Integer(metadata={"secret": True}),
                                   ma.fields.Dict(metadata={"secret": True})])
def test_a_secret_that_is_not_a_string_is_refused_at_load(crm, field):
    """A secret is stored as one encrypted string: a list marked secret would come back as the
    text "['a', 'b']", so the plugin is refused when it registers, naming the field."""
    from crmcore.plugins.manager import PluginLoadError

    schema = ma.Schema.from_dict({"keys": field})
    with pytest.raises(PluginLoadError) as exc:
        crm.registry.register("secret-list", Gateway(), info=PluginInfo(title="Bad", settings_schema=schema))
    assert "'keys' is marked secret" in str(exc.value) and "must be a marshmallow String" in str(exc.value)
    assert "secret-list" not in crm.registry.plugins
