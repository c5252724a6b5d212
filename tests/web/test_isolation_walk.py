"""A user of business A gets 404 for every object of business B, on every route that takes an id.

The walk is generic: it reads the app's URL map, so a route added later is covered without
touching this test.
"""

from __future__ import annotations

import datetime as dt
import io

import pytest

from crmcore.auth.service import create_api_token
from crmcore.fields.service import define_field
from crmcore.lists.service import add_option
from crmcore.parties.service import add_address, create_contact, create_party
from crmcore.pipelines.service import list_pipelines
from crmcore.records.service import add_competitor, add_stakeholder, create_record
from crmcore.timeline.service import add_attachment, add_note, add_reminder

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15"
       b"\xc4\x89\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82")


@pytest.fixture
def foreign_ids(other_ctx, make_user, other_business):
    """One object of each kind in business B, by the URL argument name that addresses it."""
    b = other_ctx
    party = create_party(b, {"kind": "organisation", "name": "Their Party",
                             "mechanisms": [{"kind": "email", "value": "x@their.example"}]})
    address = add_address(b, party.id, {"purpose": "billing", "line1": "Their street 1"})
    from crmcore.parties.service import party_details

    mechanism_id = party_details(b, party.id)["mechanisms"][0].id
    contact = create_contact(b, {"first_name": "Their", "last_name": "Contact", "party_id": party.id})
    deal = create_record(b, "deal", {"title": "Their deal", "party_id": party.id})
    stakeholder = add_stakeholder(b, deal.id, contact.id)
    add_option(b, "competitor", {"value": "rival", "label": "Rival"})
    competitor = add_competitor(b, deal.id, "rival")
    note = add_note(b, body="their note", party_id=party.id)
    attachment = add_attachment(b, filename="their.png", content_type="image/png", stream=io.BytesIO(PNG),
                                party_id=party.id)
    reminder = add_reminder(b, title="their reminder", due_at=dt.datetime(2030, 1, 1, tzinfo=dt.UTC),
                            party_id=party.id)
    pipeline = next(p for p in list_pipelines(b, "deal") if p.is_default)
    field = define_field(b, "party", {"key": "their_field", "label": "Theirs", "type": "text"})
    option = add_option(b, "lost_reason", {"value": "their_reason", "label": "Their reason"})
    token, _plain = create_api_token(b, "their token")
    member = make_user(other_business, "member")
    return {
        "party_id": party.id, "address_id": address.id, "mechanism_id": mechanism_id,
        "contact_id": contact.id, "record_id": deal.id, "stakeholder_id": stakeholder.id,
        "entry_id": competitor.id, "note_id": note.id, "attachment_id": attachment.id,
        "reminder_id": reminder.id, "pipeline_id": pipeline.id, "stage_id": pipeline.stages[0].id,
        "field_id": field.id, "option_id": option.id, "token_id": token.id, "user_id": member.user_id,
    }


FIXED = {"record_type": "deal", "list_key": "lost_reason", "name": "core-parties"}


MISSING = 987_654_321


def _missing(path: str, foreign_ids: dict) -> str:
    """The same path with every id of business B replaced by an id that exists nowhere."""
    parts = path.split("/")
    ids = {str(v) for v in foreign_ids.values()}
    return "/".join(str(MISSING) if part in ids else part for part in parts)


def _answers_as_missing(status: int, missing_status: int, method: str) -> bool:
    """GET must be a plain 404. A write may refuse its (empty) input before looking the object
    up, but then it must answer exactly as for an object that does not exist: nothing leaks."""
    if method == "GET":
        return status == 404
    return status == missing_status and status not in (200, 201, 204, 500)


def _routes(app, foreign_ids):
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("api-docs"):
            continue
        ids = [a for a in rule.arguments if a in foreign_ids]
        if not ids:
            continue
        values = {a: foreign_ids.get(a, FIXED.get(a)) for a in rule.arguments}
        if any(v is None for v in values.values()):
            continue
        path = rule.build(values, append_unknown=False)[1]
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule.endpoint, method, path


def test_every_route_answers_404_for_another_business_object(app, client, foreign_ids):
    checked, wrong = 0, []
    for endpoint, method, path in _routes(app, foreign_ids):
        if endpoint.startswith("api."):
            continue
        def call(url, method=method):
            return client.get(url) if method == "GET" else client.post(url, {})

        status, missing = call(path).status_code, call(_missing(path, foreign_ids)).status_code
        checked += 1
        if not _answers_as_missing(status, missing, method):
            wrong.append(f"{method} {path} ({endpoint}) -> {status} (missing id: {missing})")
    assert checked > 40
    assert wrong == [], "\n".join(wrong)


def test_every_api_route_answers_404_for_another_business_object(app, ctx, foreign_ids):
    _token, plain = create_api_token(ctx, "walker")
    api = app.test_client()
    headers = {"Authorization": f"Bearer {plain}"}
    checked, wrong = 0, []
    for endpoint, method, path in _routes(app, foreign_ids):
        if not endpoint.startswith("api."):
            continue
        def call(url, method=method):
            return api.open(url, method=method, headers=headers, json={} if method != "GET" else None)

        status, missing = call(path).status_code, call(_missing(path, foreign_ids)).status_code
        checked += 1
        if not _answers_as_missing(status, missing, method):
            wrong.append(f"{method} {path} ({endpoint}) -> {status} (missing id: {missing})")
    assert checked > 15
    assert wrong == [], "\n".join(wrong)


def test_the_walk_changes_nothing_in_the_other_business(app, client, ctx, other_ctx, foreign_ids):
    from crmcore.parties.service import get_contact, get_party
    from crmcore.records.service import get_record

    before = (get_party(other_ctx, foreign_ids["party_id"]).updated_at,
              get_record(other_ctx, foreign_ids["record_id"]).stage_id,
              get_contact(other_ctx, foreign_ids["contact_id"]).party_id)
    _token, plain = create_api_token(ctx, "walker")
    api = app.test_client()
    for endpoint, method, path in _routes(app, foreign_ids):
        if endpoint.startswith("api."):
            api.open(path, method=method, headers={"Authorization": f"Bearer {plain}"},
                     json={"stage_id": foreign_ids["stage_id"], "party_id": foreign_ids["party_id"]}
                     if method != "GET" else None)
        elif method == "POST":
            client.post(path, {"stage_id": foreign_ids["stage_id"], "party_id": foreign_ids["party_id"],
                               "duplicate_id": foreign_ids["party_id"], "body": "x", "status": "new"})
    party = get_party(other_ctx, foreign_ids["party_id"])
    after = (party.updated_at, get_record(other_ctx, foreign_ids["record_id"]).stage_id,
             get_contact(other_ctx, foreign_ids["contact_id"]).party_id)
    assert after == before
    assert party.archived_at is None and party.merged_into_id is None
