"""The peer comparison without the peer: the mapping of the benchmark's data onto Django-CRM's
models, the crmcore side of a tiny run (its figures, the deals and the spec handed to the peer's
driver), the settings' database URLs and the side-by-side table. The peer's virtualenv is never
needed here: ``python -m benchmarks peer`` makes it."""

from __future__ import annotations

import configparser
import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import pytest

from benchmarks.dataset import TAGS, Dataset
from benchmarks.peer import venv
from benchmarks.peer.compare import Settings, measure_crmcore
from benchmarks.peer.figures import ROWS, Figure, cell, ratio, side_by_side, timings
from benchmarks.peer.mapping import (
    INDUSTRY_OF_SEGMENT,
    LOST_STAGE,
    MAX_LENGTH,
    OPEN_STAGES,
    WON_STAGE,
    PeerAccount,
    map_deal,
    map_row,
    map_rows,
    too_long,
)
from benchmarks.peer.settings import _database
from benchmarks.run import Databases, Table

REPS = [f"rep{i}@bench.example" for i in range(10)]
STATUSES = ["new", "contacted", "qualified"]
ROOT = Path(__file__).resolve().parents[1]
#: Django-CRM 0.9.0's common.utils: the industries and stages its model fields offer
PEER_INDUSTRIES = {"SERVICE", "MANUFACTURING", "TECHNOLOGY", "SOFTWARE", "FINANCE"}
PEER_STAGES = set(OPEN_STAGES) | {WON_STAGE, LOST_STAGE}


def rows(n: int) -> list[dict[str, str]]:
    return list(Dataset(REPS, STATUSES).rows(n))


def test_every_row_becomes_one_account_that_fits_the_peers_columns():
    data = rows(300)
    accounts = list(map_rows(data))
    assert len(accounts) == len(data)
    for row, account in zip(data, accounts, strict=True):
        assert too_long(account) == [], (row, account)
        assert account.email == row["email"] and account.phone == row["phone"]
        assert account.status == "open"
        if row["kind"] == "person":
            assert account.name == account.contact_name == f"{row['first_name']} {row['last_name']}"
        else:
            assert account.name == row["name"]
    assert len({a.email for a in accounts}) == len(accounts)  # deals find their account by email


def test_contact_person_becomes_a_contact_with_a_unique_email():
    data = rows(200)
    accounts = list(map_rows(data))
    with_contact = [(r, a) for r, a in zip(data, accounts, strict=True) if a.contact is not None]
    assert [data.index(r) % 2 for r, _a in with_contact] == [0] * 100  # every second row has one
    for row, account in with_contact:
        c = account.contact
        assert (c.first_name, c.last_name, c.email, c.description) == (
            row["contact_first_name"], row["contact_last_name"], row["contact_email"], "Buyer")
        if row["kind"] == "organisation":
            assert account.contact_name == f"{c.first_name} {c.last_name}"
    emails = [a.contact.email for _r, a in with_contact]
    assert len(set(emails)) == len(emails)  # Contact.email is unique in the peer


def test_segment_becomes_industry_tags_and_rep_are_kept_address_when_present():
    for row, account in zip(rows(100), map_rows(rows(100)), strict=True):
        assert account.industry == INDUSTRY_OF_SEGMENT[row["custom.segment"]]
        assert account.industry in PEER_INDUSTRIES
        assert account.tags == tuple(row["tags"].split(";")) and set(account.tags) <= set(TAGS)
        assert account.assigned_to == row["sales_reps"] and account.assigned_to in REPS
        if "address_line1" in row:
            assert (account.billing_address_line, account.billing_postcode, account.billing_city,
                    account.billing_country) == (row["address_line1"], row["postal_code"], row["city"], "BE")
        else:
            assert account.billing_address_line is account.billing_city is account.billing_country is None
    # the peer's Tags.slug is unique and its name 20 characters at most
    assert len({t.lower() for t in TAGS}) == len(TAGS) and max(map(len, TAGS)) <= MAX_LENGTH["tag.name"]


def test_too_long_names_the_fields_that_do_not_fit():
    account = map_row(rows(1)[0])
    wide = PeerAccount(**{**account.__dict__, "name": "x" * 65, "tags": ("ok", "y" * 21)})
    assert too_long(wide) == ["account.name", "tag.name#1"]


def test_deals_become_opportunities_by_stage_kind_and_position():
    deal = {"title": "Deal 1", "party_email": "info1@ka.be", "owner_email": "rep1@bench.example",
            "amount": "1234.5", "currency": "EUR", "status": "open", "open_position": 2, "closed_at": None}
    opportunity = map_deal(deal)
    assert (opportunity.name, opportunity.account_email, opportunity.owner_email) == (
        "Deal 1", "info1@ka.be", "rep1@bench.example")
    assert opportunity.stage == OPEN_STAGES[2] and opportunity.closed_on is None
    assert opportunity.amount == Decimal("1234.50") and str(opportunity.amount) == "1234.50"
    assert map_deal({**deal, "open_position": 40}).stage == OPEN_STAGES[-1]
    won = map_deal({**deal, "status": "won", "open_position": None, "closed_at": "2026-03-04T05:06:07+00:00"})
    assert (won.stage, won.closed_on) == (WON_STAGE, "2026-03-04")
    assert map_deal({**deal, "status": "lost", "closed_at": "2026-01-02T00:00:00"}).stage == LOST_STAGE
    with pytest.raises(ValueError, match="unknown status 'archived'"):
        map_deal({**deal, "status": "archived"})


def test_settings_read_sqlite_and_postgresql_urls_as_the_harness_writes_them():
    assert _database("sqlite:////tmp/crm-bench-x/peer.sqlite") == {
        "ENGINE": "django.db.backends.sqlite3", "NAME": "/tmp/crm-bench-x/peer.sqlite"}
    assert _database("sqlite:///relative.sqlite")["NAME"] == "relative.sqlite"
    assert _database("postgresql+psycopg://bench:p%40ss@127.0.0.1:5433/crm_bench_peer_1") == {
        "ENGINE": "django.db.backends.postgresql", "NAME": "crm_bench_peer_1", "USER": "bench",
        "PASSWORD": "p@ss", "HOST": "127.0.0.1", "PORT": "5433"}
    assert _database("postgresql://postgres@localhost/test")["PORT"] == ""
    with pytest.raises(ValueError, match="mysql://"):
        _database("mysql://root@localhost/test")


def test_percentiles_match_the_harness_table():
    samples = [i / 1000 for i in (5, 1, 9, 3, 7, 2, 8, 4, 6, 10, 30, 11)]
    ours = timings("list_first", samples)
    theirs = Table().timings("x", samples)
    assert (ours.median_ms, ours.p95_ms, ours.count) == (theirs.median_ms, theirs.p95_ms, 12)
    with pytest.raises(ValueError, match="no samples"):
        timings("list_first", [])


def test_side_by_side_puts_both_sides_and_the_ratio_on_one_row():
    core = {"bulk": Figure("bulk", rate="4,000 parties/s", note="in 25 s", load=1.2),
            "list_first": Figure("list_first", 10.0, 12.0, note="by name", load=0.5),
            "statements_10": Figure("statements_10", note="10 statements"),
            "count": Figure("count", 3.0, None)}
    peer = {"bulk": Figure("bulk", rate="1,000 parties/s", load=2.0),
            "list_first": Figure("list_first", 250.0, 300.0, note="by id"),
            "statements_10": Figure("statements_10", note="111 statements")}
    table = side_by_side(core, peer).splitlines()
    assert len(table) == 2 + 4  # header, rule, the four keys either side has
    by_key = dict(zip([k for k, _ in ROWS if k in core], table[2:], strict=True))
    assert "| 4,000 parties/s (load 1.2) | 1,000 parties/s (load 2.0) | 4.0x |" in by_key["bulk"]
    assert "| 10.00 / 12.00 ms (load 0.5) | 250 / 300 ms | 25.0x | crmcore: by name; peer: by id |" in by_key["list_first"]
    assert "| 10 statements | 111 statements | 11.1x |" in by_key["statements_10"]
    assert "| 3.00 ms | n/a |  |" in by_key["count"]
    assert cell(None) == "n/a" and ratio(core["bulk"], None) == ""
    assert Figure.from_dict({**core["list_first"].as_dict(), "unknown": 1}) == core["list_first"]


def test_the_peer_stays_out_of_the_project_and_is_pinned_for_its_own_venv(tmp_path: Path):
    setup = configparser.ConfigParser()
    setup.read(ROOT / "setup.cfg")
    declared = " ".join(v for section in setup.sections() for v in setup[section].values()).lower()
    assert "django" not in declared
    pins = [line.split("==") for line in venv.REQUIREMENTS.read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    assert all(len(p) == 2 for p in pins), "every requirement of the peer is pinned"
    assert ["django-crm", "0.9.0"] in pins
    assert not venv.is_current(tmp_path / "none")  # no venv there: ensure() would make one
    assert venv.default_path().parts[-2:] == ("crmcore-bench", "peer-venv")


def test_crmcore_side_of_a_tiny_run_hands_the_peer_the_same_deals_and_terms():
    """The whole crmcore half of ``python -m benchmarks peer`` at 30 parties, on the test
    database's engine: every row of the table gets a crmcore figure, and the spec the driver
    reads holds deals that all map onto accounts of the same rows."""
    dbs = Databases(os.environ.get("CRM_TEST_DATABASE_URL"), keep=False)
    try:
        figures, spec = measure_crmcore(dbs, 30, Settings(calls=2, creates=3, api_creates=2))
        deals = [map_deal(json.loads(line)) for line in Path(spec["deals"]).read_text().splitlines()]
    finally:
        shutil.rmtree(dbs.tmp, ignore_errors=True)
    assert set(figures) == {key for key, _label in ROWS}
    assert figures["bulk"].rate.endswith("parties/s") and figures["list_first"].count == 2
    assert figures["statements_10"].note == figures["statements_100"].note  # constant per page size
    assert (spec["n"], spec["seed"], spec["reps"], spec["calls"]) == (30, 7, REPS, 2)
    assert "exact email" not in spec["terms"] and all(spec["terms"][k] for k in spec["terms"])
    assert any(p.startswith("journal_mode=WAL") for p in spec["sqlite_pragmas"])
    accounts = {a.email for a in map_rows(Dataset(spec["reps"], spec["statuses"], seed=spec["seed"]).rows(30))}
    assert len(deals) == 15
    assert {d.account_email for d in deals} <= accounts
    assert {d.stage for d in deals} <= PEER_STAGES and {d.owner_email for d in deals} <= {*REPS, "owner@bench.example"}
