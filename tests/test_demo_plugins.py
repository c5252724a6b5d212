"""``crm demo`` with plugins: the installed plugins that need no settings are enabled for the demo
business and add their demo data through ``crm_seed_demo``, once; a failing plugin is reported
and rolled back alone; with the core alone the demo is what it always was.

The command runs for real (click's runner in this process, or a subprocess for a registry
without plugins) on an empty database: a SQLite file, or a fresh PostgreSQL database with
``CRM_TEST_DATABASE_URL``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import marshmallow as ma
import pytest
from click.testing import CliRunner
from sqlalchemy import inspect, text

from crmcore import PluginInfo, hookimpl
from crmcore.cli import main
from crmcore.config import Config
from crmcore.demo import DEMO_OWNER, DEMO_PASSWORD, DEMO_SLUG, seed_demo
from crmcore.plugins.manager import get_registry
from crmcore.runtime import Crm

#: the first-party plugins whose demo data this file checks
SEEDING = ("catalog", "quoting", "invoicing", "payments-manual", "mass-mail", "sms-console")


@pytest.fixture(autouse=True)
def _fresh_relays() -> Iterator[None]:
    """Hook relays are cached per (business id, plugins version), and every test database has a
    business 1 at the same versions: none may answer for another test's (as the ``crm`` fixture)."""
    get_registry()._changed()
    yield
    get_registry()._changed()


@pytest.fixture
def first_party_plugins() -> None:
    missing = [name for name in SEEDING if name not in get_registry().plugins]
    if missing:
        pytest.skip(f"plugins not installed: {', '.join(missing)} (bash scripts/test installs them)")


def run_demo(instance: Path, database_url: str, *args: str) -> Any:
    """``crm demo --seed-only`` in this process (its plugin registry, test plugins included)."""
    result = CliRunner().invoke(main, ["--instance", str(instance), "--database", database_url, "demo",
                                       "--seed-only", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def run_demo_process(instance: Path, database_url: str, load_plugins: str, *args: str) -> str:
    """``crm demo --seed-only`` in a process of its own that loads only ``load_plugins``
    (``CRM_LOAD_PLUGINS``); returns what it printed."""
    env = {**os.environ, "CRM_LOAD_PLUGINS": load_plugins}
    env.pop("CRM_TEST_DATABASE_URL", None)
    done = subprocess.run([sys.executable, "-m", "crmcore.cli", "--instance", str(instance), "--database",
                           database_url, "demo", "--seed-only", *args],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def open_crm(instance: Path, database_url: str) -> Crm:
    return Crm.from_config(Config.load(instance, database_url=database_url))


def row_counts(crm: Crm) -> dict[str, int]:
    """Rows of every table of the database (what "changes nothing" is measured by)."""
    names = inspect(crm.db.engine).get_table_names()
    with crm.db.engine.connect() as conn:
        return {name: conn.execute(text(f'SELECT count(*) FROM "{name}"')).scalar_one() for name in names}


def line_starting(output: str, prefix: str) -> str:
    found = [line for line in output.splitlines() if line.startswith(prefix)]
    assert len(found) == 1, f"no single line starting {prefix!r} in:\n{output}"
    return found[0]


# -- the whole command, with the first-party plugins ---------------------------------------------


def test_demo_enables_the_plugins_and_seeds_their_data_once(first_party_plugins, tmp_path, scratch_database_url):
    from crm_catalog import service as catalog
    from crm_invoicing import service as invoicing
    from crm_mass_mail import service as mass_mail
    from crm_quoting import service as quoting

    from crmcore.records.service import list_records

    instance = tmp_path / "instance"
    # these plugins, and one that needs credentials; crm-orders (which makes the accepted
    # quote's order, and has it invoiced, instead) is left out so the quote's own invoice is seen
    loaded = ",".join((*SEEDING, "payments-stripe"))
    output = run_demo_process(instance, scratch_database_url, loaded, "--parties", "12")
    enabled = line_starting(output, "plugins enabled: ").removeprefix("plugins enabled: ").split(", ")
    assert sorted(enabled) == sorted(SEEDING)
    left_off = line_starting(output, "plugins left off")
    assert "payments-stripe (needs " in left_off and "secret_key" in left_off
    assert "demo data failed" not in output
    assert "accepted (invoice drafted)" in output and "issued from the accepted quote" in output
    for name in SEEDING:
        assert f"  {name}: " in output, f"{name} printed nothing:\n{output}"
    assert output.rstrip().splitlines()[-1].startswith(f"login: {DEMO_OWNER} / {DEMO_PASSWORD}")

    crm = open_crm(instance, scratch_database_url)
    try:
        with crm.context(DEMO_SLUG, DEMO_OWNER) as ctx:
            assert set(SEEDING) <= ctx.hooks.enabled
            assert "payments-stripe" not in ctx.hooks.enabled

            products = catalog.list_products(ctx, limit=100).items
            skus = {p.sku for p in products}
            assert len(products) == 13 and {"EX-140", "WL-220", "SVC-DELIVERY", "SVC-CONTRACT"} <= skus
            assert all(p.unit_price > 0 and p.tax_rate == Decimal(21) for p in products)
            (fleet,) = catalog.list_price_lists(ctx).items
            assert len(catalog.list_price_list_items(ctx, fleet.id).items) == 6

            quotes = list_records(ctx, record_type="quote", sort="created", limit=50).items
            assert quoting.count_by_status(ctx) == {"accepted": 1, "sent": 1, "draft": 1}
            views = {quoting.get_quote(ctx, q.id).status: quoting.get_quote(ctx, q.id) for q in quotes}
            for view in views.values():
                assert len(view.lines) >= 3 and view.totals.total > 0 and view.deal is not None
                assert view.quote.contact_id is not None
            accepted = views["accepted"]
            machine = accepted.lines[0]
            # the featured customer of the catalog's demo: its special price and part number
            assert machine.price_source == "special price" and "FLEET-" in machine.description
            shelf = catalog.party_catalog(ctx, accepted.record.party_id)
            assert len(shelf.special_prices) == 1 and len(shelf.cross_references) == 1
            assert any(line.unit_price < 0 for line in views["sent"].lines)  # the trade-in credit

            pairs = invoicing.list_invoices(ctx, limit=50).items
            by_status = {invoice.status: (record, invoice) for record, invoice in pairs}
            assert sorted(by_status) == ["active", "draft", "partly_paid"] and len(pairs) == 3
            issued_record, issued = by_status["active"]
            assert issued.quote_id == accepted.record.id and issued.total_amount == accepted.quote.total_amount
            assert issued_record.reference and issued.issue_date is not None
            paid_record, paid = by_status["partly_paid"]
            (payment,) = invoicing.get_invoice(ctx, paid_record.id).payments
            assert payment.method == "bank_transfer" and payment.gateway is None
            assert payment.amount == (paid.total_amount * Decimal("0.30")).quantize(Decimal("0.01"))
            assert paid.paid_amount == payment.amount < paid.total_amount
            assert by_status["draft"][0].reference is None
            pages = [(accepted.record.id, accepted.record.reference), (issued_record.id, issued_record.reference),
                     (paid_record.id, paid_record.reference)]

            assert ctx.plugin_settings("payments-manual")["iban"] == "NL91 ABNA 0417 1643 00"
            assert ctx.plugin_settings("sms-console")["sender"] == "DemoEquip"
            (campaign,) = mass_mail.list_campaigns(ctx).items
            assert (campaign.name, campaign.status) == ("Spring service days", "draft")

        before = row_counts(crm)
        again = run_demo_process(instance, scratch_database_url, loaded, "--parties", "12")
        assert "already exists" in again and "plugins" not in again
        assert row_counts(crm) == before

        _pages_show_the_plugin_data(crm, *pages)
    finally:
        crm.db.dispose()


def _pages_show_the_plugin_data(crm: Crm, quote: tuple[int, str], issued: tuple[int, str],
                                partly_paid: tuple[int, str]) -> None:
    """The demo owner logs in and opens the quote, the invoices and the catalog."""
    from crmcore.testing import CrmClient
    from crmcore.web import create_app

    client = CrmClient(create_app(crm=crm, testing=True).test_client())
    assert client.login(DEMO_OWNER, DEMO_PASSWORD).status_code == 302
    page = client.get(f"/records/{quote[0]}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and quote[1] in html and "accepted" in html
    assert "special price" in html and "Delivery and commissioning" in html
    for (record_id, reference), status in ((issued, "issued"), (partly_paid, "partly paid")):
        page = client.get(f"/records/{record_id}")
        html = page.get_data(as_text=True)
        assert page.status_code == 200 and reference in html and status in html
    assert "bank transfer" in client.get(f"/records/{partly_paid[0]}").get_data(as_text=True).lower()
    listing = client.get("/invoicing/").get_data(as_text=True)
    assert issued[1] in listing and partly_paid[1] in listing
    assert "Excavator EX-140" in client.get("/catalog/").get_data(as_text=True)


# -- a plugin that fails ---------------------------------------------------------------------------


class _Broken:
    """Writes a party, then fails: its party must be rolled back with it."""

    @hookimpl
    def crm_seed_demo(self, ctx):
        from crmcore.parties.service import create_party

        create_party(ctx, {"kind": "organisation", "name": "Half-seeded Ltd"})
        raise RuntimeError("the demo file is missing")


@pytest.fixture
def broken_plugin() -> Any:
    """``_Broken`` installed (in this process's registry) for one test."""
    registry = get_registry()
    registry.register("broken-demo", _Broken(), source="test")
    yield "broken-demo"
    registry.unregister("broken-demo")


def test_a_plugin_whose_demo_data_fails_does_not_stop_the_demo(first_party_plugins, broken_plugin, tmp_path,
                                                               scratch_database_url):
    from crm_catalog import service as catalog

    from crmcore.parties.service import list_parties

    instance = tmp_path / "instance"
    output = run_demo(instance, scratch_database_url, "--parties", "6").output
    assert broken_plugin in line_starting(output, "plugins enabled: ")
    failed = line_starting(output, "demo data failed")
    assert f"{broken_plugin} (RuntimeError: the demo file is missing)" in failed and "catalog" not in failed
    # every installed plugin, crm-orders included when it is there
    assert "  quoting: 3 quotes" in output and "  invoicing: 3 invoices" in output
    crm = open_crm(instance, scratch_database_url)
    try:
        with crm.context(DEMO_SLUG, DEMO_OWNER) as ctx:
            assert ctx.is_enabled(broken_plugin)
            assert list_parties(ctx, {"q": "Half-seeded"}).items == []
            assert len(catalog.list_products(ctx, limit=100).items) == 13
    finally:
        crm.db.dispose()


# -- the core alone ---------------------------------------------------------------------------------


def test_the_demo_with_the_core_alone_is_unchanged(tmp_path, scratch_database_url):
    """No plugin loaded (``CRM_LOAD_PLUGINS`` empty): no plugin line, no enablement, nothing else."""
    instance = tmp_path / "instance"
    lines = run_demo_process(instance, scratch_database_url, "", "--parties", "6").splitlines()
    assert lines[0] == "created demo business 'demo' (Demo Equipment Ltd)"
    assert lines[1:7] == ["  6 parties", "  6 deals", "  6 leads", "  5 incidents", "  6 reminders",
                          "  5 message templates"]
    assert lines[7].startswith(f"login: {DEMO_OWNER} / {DEMO_PASSWORD}") and len(lines) == 8
    crm = Crm.from_config(Config.load(instance, database_url=scratch_database_url))
    try:
        counts = row_counts(crm)
        assert counts["plugin_enablements"] == 0 and counts["parties"] == 6
        assert not any(name.startswith(("catalog_", "quoting_", "invoicing_")) for name in counts)
    finally:
        crm.db.dispose()


# -- the hook --------------------------------------------------------------------------------------


class _NeedsKey(ma.Schema):
    api_key = ma.fields.String(required=True)


def test_hook_crm_seed_demo(crm, register_plugin):
    """Called once, for the demo business, after the core's data, for enabled plugins only, in
    dependency order (``trylast`` last), each in its own transaction; lines printed by plugin."""
    calls: list[tuple[str, str, int]] = []

    def seeder(label: str, lines: list[str] | None, **impl: Any) -> Any:
        class Seeder:
            @hookimpl(**impl)
            def crm_seed_demo(self, ctx):
                from crmcore.parties.service import create_party
                from crmcore.records.service import count_records

                calls.append((label, ctx.business.slug, count_records(ctx, record_type="deal").value))
                create_party(ctx, {"kind": "organisation", "name": f"Seeded by {label}"})
                return lines

        return Seeder()

    last = register_plugin(seeder("last", ["ran last"], trylast=True), name="seed-last")
    base = register_plugin(seeder("base", ["2 widgets", "1 gadget"]), name="seed-base")
    child = register_plugin(seeder("child", None), name="seed-child",
                            info=PluginInfo(title="Child", depends=(base,)))
    locked = register_plugin(seeder("locked", ["never"]), name="seed-locked",
                             info=PluginInfo(title="Locked", settings_schema=_NeedsKey))
    register_plugin(_Broken(), name="seed-broken")

    lines = seed_demo(crm, parties=4)
    assert [label for label, _, _ in calls] == ["base", "child", "last"]
    assert {slug for _, slug, _ in calls} == {DEMO_SLUG}
    assert all(deals >= 4 for _, _, deals in calls)  # after the core's deals
    assert "  seed-base: 2 widgets" in lines and "  seed-base: 1 gadget" in lines
    assert "  seed-last: ran last" in lines and not any(line.startswith("  seed-child:") for line in lines)
    assert f"{locked} (needs api_key)" in line_starting("\n".join(lines), "plugins left off")
    assert "seed-broken (RuntimeError: the demo file is missing)" in line_starting("\n".join(lines), "demo data failed")
    assert lines[-1].startswith("login: ")

    from crmcore.parties.service import list_parties

    with crm.context(DEMO_SLUG, DEMO_OWNER) as ctx:
        assert ctx.is_enabled(child) and ctx.is_enabled(last) and not ctx.is_enabled(locked)
        seeded = {p.name for p in list_parties(ctx, {"q": "Seeded by"}).items}
        assert seeded == {"Seeded by base", "Seeded by child", "Seeded by last"}
        assert list_parties(ctx, {"q": "Half-seeded"}).items == []
    # never again for the demo business
    assert seed_demo(crm, parties=4)[0] == f"demo business {DEMO_SLUG!r} already exists"
    assert len(calls) == 3
