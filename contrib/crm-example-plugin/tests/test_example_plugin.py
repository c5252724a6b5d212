"""The example plugin in a running core: discovered, per-business, toggled, and its hooks.

Uses only the fixtures of ``crmcore.testing`` and the public service modules. The plugin is the
installed distribution (``pip install -e contrib/crm-example-plugin``), found through its entry
point like any third-party plugin, not registered by hand.
"""

from __future__ import annotations

import pytest
from crm_example_plugin import NAME, service
from crm_example_plugin.models import ExampleBase
from sqlalchemy import text

from crmcore import PermissionDenied, ValidationFailed, Veto
from crmcore.fields.service import define_field
from crmcore.parties.service import create_party, get_party, list_parties, merge_parties
from crmcore.plugins.drivers import load_group
from crmcore.plugins.service import disable_plugin, enable_plugin, get_settings, save_settings
from crmcore.records.service import close_lost, close_won, create_record, get_record

SETTINGS = {"welcome_message": "Welcome to Acme Equipment"}


def rows(crm, business):
    """Every welcome row of ``business``, read past the tenant scope (as an auditor would)."""
    with crm.db.engine.connect() as conn:
        return conn.execute(text(
            "select party_id, message from example_welcome_log where business_id = :b order by id"),
            {"b": business.id}).all()


def new_party(ctx, name="Meadow Farms"):
    return create_party(ctx, {"kind": "organisation", "name": name})


def new_deal(ctx, amount=None, title="Loader 544K"):
    return create_record(ctx, "deal", {"title": title} | ({"amount": amount} if amount is not None else {}))


def test_discovered_from_its_distribution(crm):
    plugin = crm.registry.plugins[NAME]
    assert plugin.source == "entry_point"
    assert plugin.distribution.replace("_", "-") == "crm-example-plugin"
    assert plugin.info.title == "Example plugin"
    assert plugin.info.metadata is ExampleBase.metadata
    assert NAME not in crm.registry.errors
    driver = load_group("crmcore.field_types")["vin"]
    assert driver.plugin == NAME and driver.distribution.replace("_", "-") == "crm-example-plugin"


def test_disabled_by_default(ctx):
    assert not ctx.is_enabled(NAME)
    new_party(ctx)
    assert rows(ctx.crm, ctx.business) == []


def test_enabling_seeds_once(ctx):
    enable_plugin(ctx, NAME, SETTINGS)
    assert rows(ctx.crm, ctx.business) == [(None, service.ENABLED_MESSAGE)]
    disable_plugin(ctx, NAME)
    enable_plugin(ctx, NAME)
    assert rows(ctx.crm, ctx.business) == [(None, service.ENABLED_MESSAGE)]


def test_acts_for_the_enabling_business_only(ctx, other_ctx):
    enable_plugin(ctx, NAME, SETTINGS)
    mine = new_party(ctx)
    theirs = new_party(other_ctx)
    assert rows(ctx.crm, ctx.business)[-1] == (mine.id, SETTINGS["welcome_message"])
    assert rows(ctx.crm, other_ctx.business) == []
    assert all(r.party_id != theirs.id for r in service.welcome_log(ctx))
    # the table is tenant-scoped: the other business reads nothing of ours
    assert service.welcome_log(other_ctx) == []
    assert [r.party_id for r in service.welcome_log(ctx, party_id=mine.id)] == [mine.id]


def test_welcoming_twice_writes_one_row(ctx):
    """The react hook's job may run again after a crash; the second run adds nothing."""
    enable_plugin(ctx, NAME, SETTINGS)
    party = new_party(ctx)
    first = service.welcome_party(ctx, party.id)
    ctx.session.commit()
    assert service.welcome_party(ctx, party.id).id == first.id
    ctx.session.commit()
    assert [r[0] for r in rows(ctx.crm, ctx.business)] == [None, party.id]


def test_disabling_stops_it_and_keeps_its_data(ctx):
    enable_plugin(ctx, NAME, SETTINGS)
    first = new_party(ctx, "Before")
    disable_plugin(ctx, NAME)
    new_party(ctx, "While disabled")
    assert [r[0] for r in rows(ctx.crm, ctx.business)] == [None, first.id]
    enable_plugin(ctx, NAME)  # the stored settings are kept
    again = new_party(ctx, "After")
    assert [r[0] for r in rows(ctx.crm, ctx.business)] == [None, first.id, again.id]


def test_settings_are_validated(ctx):
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME)
    assert "welcome_message" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, {"welcome_message": "x" * 201})
    assert "welcome_message" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, {"welcome_message": "   "})
    assert "welcome_message" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(ctx, NAME, {**SETTINGS, "colour": "red"})
    assert "colour" in exc.value.errors
    assert not ctx.is_enabled(NAME)
    enable_plugin(ctx, NAME, {"welcome_message": "  Hello  "})
    assert ctx.plugin_settings(NAME) == {"welcome_message": "Hello", "require_amount_to_win": True,
                                         "api_key": None}


def test_secret_setting_is_encrypted_masked_and_decrypted(ctx):
    enable_plugin(ctx, NAME, {**SETTINGS, "api_key": "sk-live-123456"})
    with ctx.crm.db.engine.connect() as conn:
        raw = conn.execute(text("select settings from plugin_enablements where plugin = :p"),
                           {"p": NAME}).scalar_one()
    assert "sk-live-123456" not in str(raw)
    shown = get_settings(ctx, NAME)
    assert shown["api_key"] != "sk-live-123456" and shown["welcome_message"] == SETTINGS["welcome_message"]
    assert ctx.plugin_settings(NAME)["api_key"] == "sk-live-123456"
    # saving the mask back (as a settings form does) keeps the secret
    save_settings(ctx, NAME, {**SETTINGS, "api_key": shown["api_key"]})
    assert ctx.plugin_settings(NAME)["api_key"] == "sk-live-123456"


def test_secret_setting_from_the_environment(ctx, monkeypatch):
    monkeypatch.setenv("EXAMPLE_API_KEY", "sk-from-env")
    enable_plugin(ctx, NAME, {**SETTINGS, "api_key": "$env:EXAMPLE_API_KEY"})
    assert get_settings(ctx, NAME)["api_key"] == "$env:EXAMPLE_API_KEY"
    assert ctx.plugin_settings(NAME)["api_key"] == "sk-from-env"


def test_only_admins_enable_it(business, make_user):
    member = make_user(business, "member")
    with pytest.raises(PermissionDenied):
        enable_plugin(member, NAME, SETTINGS)


def test_admin_menu_entry_only_where_enabled(ctx, other_ctx):
    enable_plugin(ctx, NAME, SETTINGS)
    mine = dict(ctx.collect("crm_admin_menu"))
    assert mine[NAME][0]["label"] == "Example plugin"
    assert NAME not in dict(other_ctx.collect("crm_admin_menu"))
    disable_plugin(ctx, NAME)
    assert NAME not in dict(ctx.collect("crm_admin_menu"))


def test_a_won_deal_needs_an_amount_where_enabled(ctx, other_ctx):
    enable_plugin(ctx, NAME, SETTINGS)
    deal = new_deal(ctx)
    with pytest.raises(Veto) as exc:
        close_won(ctx, deal.id)
    assert exc.value.message == "Example plugin: a won deal needs an amount"
    assert exc.value.plugin == NAME and "amount" in exc.value.errors
    assert get_record(ctx, deal.id).status == "open"
    with pytest.raises(Veto):
        close_won(ctx, new_deal(ctx, "0").id)
    assert close_won(ctx, new_deal(ctx, "125000.00").id).status == "won"
    assert close_lost(ctx, new_deal(ctx).id, "price").status == "lost"
    # the other business has not enabled the plugin: no rule there
    assert close_won(other_ctx, new_deal(other_ctx).id).status == "won"


def test_the_amount_rule_is_a_setting(ctx):
    enable_plugin(ctx, NAME, {**SETTINGS, "require_amount_to_win": False})
    assert close_won(ctx, new_deal(ctx).id).status == "won"
    save_settings(ctx, NAME, {**SETTINGS, "require_amount_to_win": True})
    with pytest.raises(Veto):
        close_won(ctx, new_deal(ctx).id)


def test_disabled_it_vetoes_nothing(ctx):
    enable_plugin(ctx, NAME, SETTINGS)
    deal = new_deal(ctx)
    disable_plugin(ctx, NAME)
    assert close_won(ctx, deal.id).status == "won"


def test_merge_moves_its_rows_to_the_kept_party(ctx):
    enable_plugin(ctx, NAME, SETTINGS)
    kept, duplicate = new_party(ctx, "Meadow Farms"), new_party(ctx, "Meadow Farms Ltd")
    merge_parties(ctx, kept.id, duplicate.id)
    assert [r[0] for r in rows(ctx.crm, ctx.business)] == [None, kept.id, kept.id]


VIN_FIELD = {"key": "machine_vin", "label": "Machine VIN", "type": "vin"}


def test_vin_field_type_only_where_enabled(ctx, other_ctx):
    enable_plugin(ctx, NAME, SETTINGS)
    define_field(ctx, "party", VIN_FIELD)
    with pytest.raises(ValidationFailed) as exc:
        define_field(other_ctx, "party", VIN_FIELD)
    assert "comes from plugin 'example', which is not enabled" in str(exc.value.errors["type"])

    party = create_party(ctx, {"kind": "organisation", "name": "Valley Contractors",
                               "custom": {"machine_vin": " 1hgcm82633a004352 "}})
    assert party.custom == {"machine_vin": "1HGCM82633A004352"}
    with pytest.raises(ValidationFailed) as exc:
        create_party(ctx, {"kind": "organisation", "name": "Typo Ltd", "custom": {"machine_vin": "1HGCM82643A004352"}})
    assert "expected 3" in exc.value.errors["custom"]["machine_vin"][0]
    found = list_parties(ctx, {"custom": {"machine_vin": "1HGCM82633A004352"}})
    assert [p.id for p in found.items] == [party.id]

    # disabled: the stored values stay, the type cannot be used for new fields
    disable_plugin(ctx, NAME)
    assert get_party(ctx, party.id).custom == {"machine_vin": "1HGCM82633A004352"}
    with pytest.raises(ValidationFailed):
        define_field(ctx, "party", {**VIN_FIELD, "key": "second_vin"})


def test_vin_field_option_without_check_digit(ctx):
    enable_plugin(ctx, NAME, SETTINGS)
    define_field(ctx, "party", {**VIN_FIELD, "options": {"check_digit": False}})
    party = create_party(ctx, {"kind": "organisation", "name": "Autohaus",
                               "custom": {"machine_vin": "WVWZZZ1JZXW000001"}})
    assert party.custom["machine_vin"] == "WVWZZZ1JZXW000001"
    with pytest.raises(ValidationFailed) as exc:
        define_field(ctx, "party", {**VIN_FIELD, "key": "bad_opts", "options": {"check": False}})
    assert "options" in str(exc.value.errors)
