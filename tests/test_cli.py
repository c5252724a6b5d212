"""The ``crm`` command line: real commands on a fresh instance; errors are one line, exit 1."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from crmcore.cli import main


@pytest.fixture
def run(tmp_path):
    runner = CliRunner()
    instance = str(tmp_path / "instance")

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(main, ["--instance", instance, *args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def initialised(run):
    result = run("init", "--owner-email", "owner@shop.example", "--owner-password", "long enough pw",
                 "--business", "shop", "--business-name", "The Shop")
    assert result.exit_code == 0, result.output
    return run


def test_init_creates_instance_database_owner_and_business(initialised, tmp_path):
    config = (tmp_path / "instance" / "crm.toml").read_text()
    assert "secrets_key" in config and "secret_key" in config
    result = initialised("businesses", "list")
    assert result.output.startswith("shop\tThe Shop\tEUR")


def test_init_twice_keeps_keys(initialised, tmp_path):
    before = (tmp_path / "instance" / "crm.toml").read_text()
    assert initialised("init").exit_code == 0
    assert (tmp_path / "instance" / "crm.toml").read_text() == before


def test_db_upgrade_and_status(initialised):
    result = initialised("db", "upgrade")
    assert result.exit_code == 0 and "core: up to date" in result.output
    result = initialised("db", "status")
    assert "needs upgrade" not in result.output


def test_users_create_with_role(initialised):
    result = initialised("users", "create", "rep@shop.example", "--business", "shop", "--role", "read-only",
                         "--generate-password")
    assert result.exit_code == 0, result.output
    assert "rep@shop.example is read-only of shop" in result.output
    assert "password: " in result.output


@pytest.mark.parametrize("args, message", [
    (("businesses", "create", "Bad Slug", "X"), "slug"),
    (("businesses", "create", "shop", "Again"), "already exists"),
    (("users", "create", "rep@shop.example", "--business", "nope", "--generate-password"), "unknown business 'nope'"),
    (("users", "create", "not-an-email", "--business", "shop", "--generate-password"), "invalid email"),
    (("users", "create", "x@shop.example", "--business", "shop", "--password", "short"), "password too short"),
    (("plugins", "enable", "nope", "--business", "shop"), "unknown plugin 'nope'"),
    (("plugins", "enable", "nope", "--business", "zzz"), "unknown business 'zzz'"),
    (("plugins", "disable", "core-parties", "--business", "shop"), "cannot be disabled"),
    (("plugins", "enable", "core-parties", "--business", "shop", "--setting", "novalue"), "KEY=VALUE"),
])
def test_errors_are_one_clear_line(initialised, args, message):
    result = initialised(*args)
    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1], result.output
    assert "Traceback" not in result.output


def test_command_before_init_says_to_upgrade(run):
    result = run("businesses", "list")
    assert result.exit_code == 1
    assert "crm db upgrade" in result.output


def test_plugins_list_and_check(initialised):
    result = initialised("plugins", "list", "--json")
    data = json.loads(result.output)
    names = {p["name"] for p in data["plugins"]}
    assert {"core-parties", "core-records"} <= names
    core = next(p for p in data["plugins"] if p["name"] == "core-parties")
    assert core["enabled_in"] == ["shop"] and core["essential"]
    result = initialised("plugins", "check")
    assert "core-parties: ok" in result.output


def test_demo_seeds_a_business_with_deals_in_every_stage_once(run, tmp_path):
    from crmcore.config import Config
    from crmcore.pipelines.service import list_pipelines
    from crmcore.records.service import list_records
    from crmcore.runtime import Crm

    result = run("demo", "--seed-only", "--parties", "8")
    assert result.exit_code == 0, result.output
    assert "created demo business 'demo'" in result.output
    assert "login: demo@example.com" in result.output
    again = run("demo", "--seed-only", "--parties", "8")
    assert again.exit_code == 0 and "already exists" in again.output

    crm = Crm.from_config(Config.load(tmp_path / "instance"))
    with crm.context("demo", "demo@example.com") as ctx:
        sales = next(p for p in list_pipelines(ctx, "deal") if p.is_default)
        deals = list_records(ctx, record_type="deal", limit=200).items
        assert len(deals) == 8 + 2  # one per party, and two leads qualified into deals
        assert {s.id for s in sales.stages} == {d.stage_id for d in deals}
        assert {d.status for d in deals} == {"open", "won", "lost"}
    crm.db.dispose()


def test_parties_import_from_csv(initialised, tmp_path):
    good = tmp_path / "parties.csv"
    good.write_text("name,email,tags,country,address_line1\n"
                    "Acme,sales@acme.example,vip;dealer,BE,1 Main St\n"
                    "Globex,info@globex.example,,,\n", encoding="utf-8")
    result = initialised("parties", "import", str(good), "--business", "shop", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "would import 2 parties (0 contacts) from 2 rows" in result.output
    result = initialised("parties", "import", str(good), "--business", "shop")
    assert result.exit_code == 0, result.output
    assert "imported 2 parties" in result.output
    # the same file again: both emails exist now
    result = initialised("parties", "import", str(good), "--business", "shop")
    assert result.exit_code == 1
    assert "line 2, email: sales@acme.example is already the email of party 'Acme'" in result.output
    result = initialised("parties", "import", str(good), "--business", "shop", "--skip-duplicates")
    assert result.exit_code == 0 and "imported 0 parties" in result.output and "skipped 2 duplicates" in result.output
    one = tmp_path / "one.csv"
    one.write_text("name,email\nInitech,hello@initech.example\n", encoding="utf-8")
    result = initialised("parties", "import", str(one), "--business", "shop")
    assert result.exit_code == 0 and "imported 1 party (0 contacts) from 1 row" in result.output


def test_parties_import_reports_every_bad_cell_and_writes_nothing(initialised, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("name;email;colour\nAcme;nope;red\n", encoding="utf-8")
    result = initialised("parties", "import", str(bad), "--business", "shop", "--delimiter", ";")
    assert result.exit_code == 1
    assert "column 'colour': unknown column" in result.output
    bad.write_text("name,email\nAcme,nope\n,x@y.example\nToo,many@cells.example,extra\n", encoding="utf-8")
    result = initialised("parties", "import", str(bad), "--business", "shop")
    assert result.exit_code == 1
    assert "line 2, email: not a valid email address" in result.output
    assert "line 3, name: an organisation needs a name" in result.output
    assert "line 4, _row: this row has more cells than the header has columns" in result.output
    assert "3 of 3 rows have errors; nothing was imported" in result.output
    bad.write_bytes("name\nCaf\xe9 Li\xe8ge\n".encode("latin-1"))
    result = initialised("parties", "import", str(bad), "--business", "shop")
    assert result.exit_code == 1 and "is not a UTF-8 CSV file" in result.output
    result = initialised("parties", "import", str(bad), "--business", "nowhere")
    assert result.exit_code == 1 and "nowhere" in result.output
