"""The plugin as installed (``pip install -e plugins/crm-orders``): discovered through its entry
points with its two record types, fitting contract 1.2, enabled only where quoting is, its types
and pages only in businesses that enabled it, disabling keeps its data and enabling again brings
it back. ``crm plugins check`` runs for real in a subprocess."""

from __future__ import annotations

import importlib.metadata as md
import os
import subprocess
import sys

import pytest
from crm_orders import NAME, service
from crm_orders.plugin import PLUGIN
from sqlalchemy import text

from crmcore import HOOK_API_VERSION
from crmcore.errors import Conflict, NotFound, ValidationFailed
from crmcore.plugins.manager import get_registry
from crmcore.plugins.overview import contract_report
from crmcore.plugins.service import disable_plugin, enable_plugin
from crmcore.records import service as records
from crmcore.records.types import record_types

from .conftest import line, new_party  # noqa: TID252


def test_the_distribution_declares_the_plugin_and_its_record_types():
    plugins = {ep.name: ep.value for ep in md.entry_points(group="crmcore.plugins")}
    types = {ep.name: ep.value for ep in md.entry_points(group="crmcore.record_types")}
    assert plugins[NAME] == "crm_orders.plugin"
    assert types["sales_order"] == "crm_orders.types:SALES_ORDER"
    assert types["loaner_order"] == "crm_orders.types:LOANER_ORDER"
    assert md.distribution("crm-orders").metadata["Name"] == "crm-orders"


def test_it_is_loaded_and_fits_the_contract(crm):
    registry = get_registry()
    assert NAME in registry.plugins and NAME not in registry.errors
    assert contract_report(registry)[NAME] == []
    assert HOOK_API_VERSION == "1.2" and PLUGIN.core_api == ">=1.2,<2" and PLUGIN.depends == ("quoting",)
    assert NAME in registry.implementers("crm_record_statuses")
    assert NAME in registry.implementers("crm_after_quote_accepted")


def test_enabling_needs_quoting_first(ctx):
    with pytest.raises(Conflict) as exc:
        enable_plugin(ctx, NAME)
    assert "quoting" in exc.value.message
    enable_plugin(ctx, "catalog")
    with pytest.raises(Conflict):
        enable_plugin(ctx, NAME)  # quoting, which needs the catalog, is still off
    enable_plugin(ctx, "quoting")
    enable_plugin(ctx, NAME)
    assert NAME in ctx.hooks.enabled


def test_bad_settings_are_refused_naming_the_field(o):
    with pytest.raises(ValidationFailed) as exc:
        service.save_settings(o, {"loan_days": 0})
    assert "loan_days" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        enable_plugin(o, NAME, {"order_on_accept": "perhaps"})
    assert "order_on_accept" in exc.value.errors


def test_types_exist_only_where_enabled_and_data_survives_a_disable(o, other_ctx):
    assert {"sales_order", "loaner_order"} <= set(record_types(o))
    assert "sales_order" not in record_types(other_ctx)
    with pytest.raises(ValidationFailed):
        records.create_record(other_ctx, "sales_order", {"title": "Not here"})
    record = service.create_order(o, {"party_id": new_party(o).id, "lines": [line()]})
    disable_plugin(o, NAME)
    with pytest.raises(NotFound):
        service.get_order(o, record.id)
    assert o.session.execute(text("select count(*) from orders_orders")).scalar() == 1
    enable_plugin(o, NAME)
    assert service.get_order(o, record.id).totals.net == 100


def test_crm_plugins_check_says_orders_fits(tmp_path, crm):
    from cryptography.fernet import Fernet

    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env["CRM_SECRETS_KEY"] = Fernet.generate_key().decode()  # as `crm init` would write into crm.toml
    boot = "from crmcore.cli import main; main(prog_name='crm')"
    result = subprocess.run([sys.executable, "-c", boot, "--instance", str(tmp_path), "--database",
                             f"sqlite:///{tmp_path / 'crm.sqlite'}", "plugins", "check"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert "orders: ok" in result.stdout, result.stdout + result.stderr
