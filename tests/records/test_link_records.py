"""``records.service.link_records``: a plugin links two records of the business (an order from
its deal as well as from its quote); both pages show the link."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from crmcore.errors import NotFound, PermissionDenied, ValidationFailed
from crmcore.records import service as records
from crmcore.records.models import RecordLink


def test_a_link_shows_on_both_records_once(ctx):
    deal = records.create_record(ctx, "deal", {"title": "Fleet renewal"})
    action = records.create_record(ctx, "action", {"title": "Deliver the loader"})
    link = records.link_records(ctx, deal.id, action.id, "related")
    assert (link.from_record_id, link.to_record_id, link.kind) == (deal.id, action.id, "related")
    # linking again changes nothing
    assert records.link_records(ctx, deal.id, action.id, "related").id == link.id
    assert ctx.session.scalar(select(func.count()).select_from(RecordLink)) == 1
    out = records.record_details(ctx, deal.id)["links_out"]
    assert [(row["kind"], row["record"].id) for row in out] == [("related", action.id)]
    into = records.record_details(ctx, action.id)["links_in"]
    assert [(row["kind"], row["record"].id) for row in into] == [("related", deal.id)]


def test_bad_links_are_refused_and_write_nothing(ctx, other_ctx, make_user, business):
    deal = records.create_record(ctx, "deal", {"title": "Mine"})
    other = records.create_record(ctx, "action", {"title": "Also mine"})
    theirs = records.create_record(other_ctx, "deal", {"title": "Theirs"})
    with pytest.raises(ValidationFailed) as exc:
        records.link_records(ctx, deal.id, other.id, "married_to")
    assert "kind" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        records.link_records(ctx, deal.id, deal.id)
    assert "to_id" in exc.value.errors
    with pytest.raises(ValidationFailed) as exc:
        records.link_records(ctx, deal.id, "1 or 1=1")
    assert "to_id" in exc.value.errors
    with pytest.raises(NotFound):
        records.link_records(ctx, deal.id, theirs.id)
    with pytest.raises(NotFound):
        records.link_records(ctx, theirs.id, deal.id)
    reader = make_user(business, role="read_only")
    with pytest.raises(PermissionDenied):
        records.link_records(reader, deal.id, other.id)
    assert ctx.session.scalar(select(func.count()).select_from(RecordLink)) == 0
