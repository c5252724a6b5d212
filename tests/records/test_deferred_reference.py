"""Reference codes assigned after creation (``RecordType.deferred_reference`` and
``records.service.assign_reference``), and a plugin type's default pattern seeded on first use."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from crmcore import hookimpl
from crmcore.audit.models import AuditEntry
from crmcore.context import use_case
from crmcore.errors import Conflict, NotFound, PermissionDenied
from crmcore.numbering.models import NumberingRule
from crmcore.numbering.service import set_rule
from crmcore.plugins.drivers import register_driver, unregister_driver
from crmcore.records import service as records
from crmcore.records.types import RecordType

BILL = RecordType("bill", "Bill", "Bills", has_pipeline=False, reference_target="record:bill",
                  default_pattern="BL{yy}-{000}", deferred_reference=True)
MEMO = RecordType("memo", "Memo", "Memos", has_pipeline=False, reference_target="record:memo",
                  default_pattern="MO-{000}")


class Heard:
    """A plugin owning the types; it hears record updates."""

    def __init__(self) -> None:
        self.updates: list[tuple[int, dict]] = []

    @hookimpl
    def crm_after_record_updated(self, ctx, record, changes):
        self.updates.append((record.id, changes))


@pytest.fixture
def plugin(ctx, register_plugin):
    heard = Heard()
    name = register_plugin(heard, enable_for=ctx)
    register_driver("crmcore.record_types", "bill", BILL, name)
    register_driver("crmcore.record_types", "memo", MEMO, name)
    yield heard
    unregister_driver("crmcore.record_types", "bill")
    unregister_driver("crmcore.record_types", "memo")


def _year() -> str:
    return f"{dt.date.today():%y}"


def test_a_deferred_type_is_numbered_when_its_plugin_says(ctx, plugin):
    draft = records.create_record(ctx, "bill", {"title": "Draft bill"})
    other = records.create_record(ctx, "bill", {"title": "Another draft"})
    assert (draft.reference, other.reference) == (None, None)
    # the second draft is issued first: it takes the first number (no gap for the first draft)
    assert records.assign_reference(ctx, other.id).reference == f"BL{_year()}-001"
    assert records.assign_reference(ctx, draft.id).reference == f"BL{_year()}-002"
    # again: nothing changes, no number is used
    assert records.assign_reference(ctx, draft.id).reference == f"BL{_year()}-002"
    third = records.create_record(ctx, "bill", {"title": "Third"})
    assert records.assign_reference(ctx, third.id).reference == f"BL{_year()}-003"
    assert plugin.updates.count((draft.id, {"reference": [None, f"BL{_year()}-002"]})) == 1
    ctx.session.rollback()
    actions = ctx.session.scalars(select(AuditEntry.action).where(AuditEntry.entity_id == draft.id)).all()
    assert actions.count("record.reference_assigned") == 1


def test_a_rolled_back_assignment_gives_the_number_back(ctx, plugin):
    first = records.create_record(ctx, "bill", {"title": "One"})
    second = records.create_record(ctx, "bill", {"title": "Two"})

    @use_case()
    def issue_then_fail(context, record_id):
        records.assign_reference(context, record_id)
        raise Conflict("the issuing step failed")

    with pytest.raises(Conflict):
        issue_then_fail(ctx, first.id)
    ctx.session.rollback()
    assert records.get_record(ctx, first.id).reference is None
    assert records.assign_reference(ctx, second.id).reference == f"BL{_year()}-001"


def test_the_date_parts_come_from_when(ctx, plugin):
    bill = records.create_record(ctx, "bill", {"title": "Backdated"})
    assert records.assign_reference(ctx, bill.id, when=dt.date(2031, 5, 1)).reference == "BL31-001"


def test_a_plugin_types_default_pattern_is_seeded_once_and_an_admins_rule_wins(ctx, plugin):
    memo = records.create_record(ctx, "memo", {"title": "Seeded"})
    assert memo.reference == "MO-001"
    ctx.session.rollback()
    assert ctx.session.scalar(select(func.count()).select_from(NumberingRule)
                              .where(NumberingRule.target == "record:memo")) == 1
    set_rule(ctx, "record:memo", "MO-{000}", is_active=False)  # the admin switches codes off
    assert records.create_record(ctx, "memo", {"title": "Off"}).reference is None
    set_rule(ctx, "record:memo", "MEMO{0000}")
    assert records.create_record(ctx, "memo", {"title": "Mine"}).reference == "MEMO0002"


def test_without_an_active_rule_the_record_stays_unnumbered(ctx, plugin):
    set_rule(ctx, "record:bill", "BL-{000}", is_active=False)
    bill = records.create_record(ctx, "bill", {"title": "Unnumbered"})
    assert records.assign_reference(ctx, bill.id).reference is None
    assert plugin.updates == []


def test_assign_reference_is_refused_outside_its_business_role_and_for_archived(ctx, other_ctx, make_user,
                                                                               business, plugin):
    bill = records.create_record(ctx, "bill", {"title": "Mine"})
    with pytest.raises(NotFound):
        records.assign_reference(other_ctx, bill.id)
    reader = make_user(business, "read_only")
    with pytest.raises(PermissionDenied):
        records.assign_reference(reader, bill.id)
    records.archive_record(ctx, bill.id)
    with pytest.raises(Conflict, match="archived"):
        records.assign_reference(ctx, bill.id)
    assert records.get_record(ctx, bill.id).reference is None


def test_core_types_keep_numbering_at_creation(ctx):
    deal = records.create_record(ctx, "deal", {"title": "Numbered at once"})
    assert deal.reference is not None and deal.reference.startswith("DL")
