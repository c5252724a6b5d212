"""The contact pages: list with filters and keyset pages, create (unassigned or at a party),
details, edit, move between parties; isolation between businesses, roles, escaping."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import event

from crmcore.fields.service import define_field
from crmcore.parties import service as parties
from crmcore.testing import TEST_PASSWORD, CrmClient

XSS = "<script>alert(1)</script>"


def contact_ids(page_html: str) -> list[int]:
    return [int(i) for i in re.findall(r'data-contact-id="(\d+)"', page_html)]


def text_of(response) -> str:
    return response.get_data(as_text=True)


def next_link(page_html: str) -> str | None:
    found = re.search(r'<a rel="next" href="([^"]+)"', page_html)
    return html.unescape(found.group(1)) if found else None


def location_id(response) -> int:
    return int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])


@pytest.fixture
def contact_fields(ctx):
    define_field(ctx, "contact", {"key": "birthday", "label": "Birthday", "type": "date"})
    define_field(ctx, "contact", {"key": "hobby", "label": "Hobby", "type": "text", "options": {"max_length": 40}})


def test_create_unassigned_then_move_to_a_party_and_back(client, ctx, contact_fields):
    party = parties.create_party(ctx, {"name": "Alpha"})
    form = {"party_id": "", "first_name": "Pieter", "last_name": "de Boer", "job_title": "Owner",
            "notes": "Met at the fair", "custom.birthday": "1980-02-03", "custom.hobby": "",
            "mechanisms.0.kind": "email", "mechanisms.0.value": "pieter@mail.example",
            "mechanisms.1.kind": "phone", "mechanisms.1.value": ""}
    response = client.post("/contacts/new", form)
    assert response.status_code == 302, text_of(response)
    cid = location_id(response)
    contact = parties.get_contact(ctx, cid)
    assert contact.party_id is None and contact.name == "Pieter de Boer"
    assert contact.custom == {"birthday": "1980-02-03"}
    assert cid in contact_ids(text_of(client.get("/contacts/?unassigned=1")))
    page = text_of(client.get(f"/contacts/{cid}"))
    assert "unassigned" in page and "pieter@mail.example" in page and "Met at the fair" in page

    move_page = text_of(client.get(f"/contacts/{cid}/move?q=alp"))
    assert "Alpha" in move_page and f'value="{party.id}"' in move_page
    response = client.post(f"/contacts/{cid}/move", {"party_id": str(party.id)})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/contacts/{cid}")
    assert parties.get_contact(ctx, cid).party_id == party.id
    assert cid not in contact_ids(text_of(client.get("/contacts/?unassigned=1")))
    assert contact_ids(text_of(client.get(f"/contacts/?party_id={party.id}"))) == [cid]
    assert "Pieter de Boer" in text_of(client.get(f"/parties/{party.id}"))

    # an empty party is not an unassign by accident; the unassign button is explicit
    response = client.post(f"/contacts/{cid}/move", {"party_id": ""})
    assert parties.get_contact(ctx, cid).party_id == party.id
    assert "Pick the party" in text_of(client.get(response.headers["Location"]))
    client.post(f"/contacts/{cid}/move", {"unassign": "1"})
    assert parties.get_contact(ctx, cid).party_id is None


def test_create_at_a_party_from_its_link(client, ctx):
    party = parties.create_party(ctx, {"name": "Alpha"})
    page = text_of(client.get(f"/contacts/new?party_id={party.id}"))
    assert "At Alpha" in page and f'value="{party.id}"' in page
    response = client.post("/contacts/new", {"party_id": str(party.id), "first_name": "Eva"})
    assert parties.get_contact(ctx, location_id(response)).party_id == party.id


def test_contact_form_errors_keep_the_input(client, ctx, contact_fields):
    form = {"party_id": "", "first_name": "", "last_name": "", "job_title": "Buyer",
            "custom.birthday": "not a date", "custom.hobby": "chess",
            "mechanisms.0.kind": "email", "mechanisms.0.value": "broken"}
    response = client.post("/contacts/new", form)
    assert response.status_code == 422
    page = text_of(response)
    assert "give a first name or a last name" in page and "Not a valid date" in page
    assert 'value="Buyer"' in page and 'value="chess"' in page and 'value="broken"' in page
    assert 'id="err-mechanisms-0-value"' in page
    assert parties.list_contacts(ctx).items == []


def test_edit_contact(client, ctx, contact_fields):
    contact = parties.create_contact(ctx, {"first_name": "Eva", "custom": {"hobby": "chess"}})
    page = text_of(client.get(f"/contacts/{contact.id}/edit"))
    assert 'value="Eva"' in page and 'value="chess"' in page
    response = client.post(f"/contacts/{contact.id}/edit", {"first_name": "Eva", "last_name": "Stone",
                                                            "custom.hobby": "x" * 41})
    assert response.status_code == 422
    assert "Use at most 40 characters." in text_of(response) and 'value="Stone"' in text_of(response)
    assert parties.get_contact(ctx, contact.id).name == "Eva"
    response = client.post(f"/contacts/{contact.id}/edit", {"first_name": "Eva", "last_name": "Stone",
                                                            "department": "Sales", "custom.hobby": ""})
    assert response.status_code == 302
    stored = parties.get_contact(ctx, contact.id)
    assert stored.name == "Eva Stone" and stored.department == "Sales" and stored.custom == {}


def test_contact_mechanisms_and_archive(client, ctx):
    contact = parties.create_contact(ctx, {"first_name": "Eva",
                                           "mechanisms": [{"kind": "email", "value": "one@x.example"}]})
    client.post(f"/contacts/{contact.id}/mechanisms", {"kind": "email", "value": "two@x.example"})
    mechanisms = parties.contact_details(ctx, contact.id)["mechanisms"]
    two = next(m for m in mechanisms if m.value == "two@x.example")
    client.post(f"/contacts/{contact.id}/mechanisms/{two.id}/primary")
    assert next(m for m in parties.contact_details(ctx, contact.id)["mechanisms"] if m.id == two.id).is_primary
    client.post(f"/contacts/{contact.id}/mechanisms/{two.id}/delete")
    assert [m.value for m in parties.contact_details(ctx, contact.id)["mechanisms"]] == ["one@x.example"]
    client.post(f"/contacts/{contact.id}/mechanisms", {"kind": "email", "value": "broken"})
    assert "invalid contact mechanism" in text_of(client.get(f"/contacts/{contact.id}"))

    client.post(f"/contacts/{contact.id}/archive")
    assert parties.get_contact(ctx, contact.id).archived_at is not None
    assert contact.id not in contact_ids(text_of(client.get("/contacts/")))
    assert contact.id in contact_ids(text_of(client.get("/contacts/?archived=1")))
    client.post(f"/contacts/{contact.id}/unarchive")
    assert parties.get_contact(ctx, contact.id).archived_at is None


def test_list_filters_and_keyset_pages(client, ctx):
    party = parties.create_party(ctx, {"name": "Alpha"})
    made = [parties.create_contact(ctx, {"first_name": f"Person {i:02d}",
                                         "party_id": party.id if i % 2 else None}).id for i in range(9)]
    assert contact_ids(text_of(client.get("/contacts/?q=person 03"))) == [made[3]]
    assert sorted(contact_ids(text_of(client.get(f"/contacts/?party_id={party.id}")))) == made[1::2]
    assert sorted(contact_ids(text_of(client.get("/contacts/?unassigned=1")))) == made[0::2]
    url: str | None = "/contacts/?limit=4"
    seen: list[int] = []
    while url:
        page = text_of(client.get(url))
        seen += contact_ids(page)
        url = next_link(page)
    assert sorted(seen) == sorted(made) and len(seen) == len(set(seen))
    assert client.get("/contacts/?party_id=abc").status_code == 422
    assert client.get("/contacts/?cursor=garbage").status_code == 422


def test_contact_list_queries_do_not_grow_with_the_rows(crm, client, ctx):
    party = parties.create_party(ctx, {"name": "Alpha"})

    def add(n: int, start: int) -> None:
        for i in range(start, start + n):
            parties.create_contact(ctx, {"first_name": f"P{i:03d}", "party_id": party.id if i % 2 else None,
                                         "mechanisms": [{"kind": "email", "value": f"p{i}@x.example"}]})

    def statements() -> int:
        seen: list[str] = []

        def before(_conn, _cursor, statement, *_args):
            seen.append(statement)

        event.listen(crm.db.engine, "before_cursor_execute", before)
        try:
            client.get("/contacts/")
        finally:
            event.remove(crm.db.engine, "before_cursor_execute", before)
        return len(seen)

    add(5, 0)
    client.get("/contacts/")
    few = statements()
    add(35, 5)
    assert statements() == few
    assert len(contact_ids(text_of(client.get("/contacts/")))) == 40


@pytest.fixture
def foreign(other_ctx):
    party = parties.create_party(other_ctx, {"name": "Globex Secret"})
    contact = parties.create_contact(other_ctx, {"party_id": party.id, "first_name": "Hidden",
                                                 "mechanisms": [{"kind": "email", "value": "h@globex.example"}]})
    mechanism = parties.contact_details(other_ctx, contact.id)["mechanisms"][0]
    return {"party": party.id, "contact": contact.id, "mechanism": mechanism.id}


def contact_routes(own_contact: int, own_party: int, ids: dict) -> tuple[list[str], list[tuple[str, dict]]]:
    c, m, p = ids["contact"], ids["mechanism"], ids["party"]
    gets = [f"/contacts/{c}", f"/contacts/{c}/edit", f"/contacts/{c}/move", f"/contacts/?party_id={p}",
            f"/contacts/new?party_id={p}"]
    posts = [
        (f"/contacts/{c}/edit", {"first_name": "Taken"}),
        (f"/contacts/{c}/move", {"party_id": str(own_party)}),
        (f"/contacts/{c}/move", {"unassign": "1"}),
        (f"/contacts/{own_contact}/move", {"party_id": str(p)}),
        (f"/contacts/{c}/mechanisms", {"kind": "email", "value": "new@x.example"}),
        (f"/contacts/{c}/mechanisms/{m}/primary", {}), (f"/contacts/{c}/mechanisms/{m}/delete", {}),
        (f"/contacts/{own_contact}/mechanisms/{m}/primary", {}),
        (f"/contacts/{own_contact}/mechanisms/{m}/delete", {}),
        (f"/contacts/{c}/archive", {}), (f"/contacts/{c}/unarchive", {}),
        ("/contacts/new", {"party_id": str(p), "first_name": "Spy"}),
    ]
    return gets, posts


def test_another_businesses_contacts_are_not_found(client, ctx, other_ctx, foreign):
    own_party = parties.create_party(ctx, {"name": "Own"}).id
    own_contact = parties.create_contact(ctx, {"first_name": "Own"}).id
    gets, posts = contact_routes(own_contact, own_party, foreign)
    for url in gets:
        assert client.get(url).status_code == 404, url
    for url, data in posts:
        assert client.post(url, data).status_code == 404, url
        assert client.fetch(url, data).status_code == 404, url
    d = parties.contact_details(other_ctx, foreign["contact"])
    assert d["contact"].name == "Hidden" and d["contact"].party_id == foreign["party"]
    assert d["contact"].archived_at is None and len(d["mechanisms"]) == 1
    assert parties.get_contact(ctx, own_contact).party_id is None
    assert "Hidden" not in text_of(client.get("/contacts/?q=hid"))


def test_read_only_users_get_403_on_every_post(app, ctx, make_user):
    viewer = make_user(ctx.business, "read_only")
    party = parties.create_party(ctx, {"name": "Alpha"})
    other = parties.create_party(ctx, {"name": "Beta"})
    contact = parties.create_contact(ctx, {"first_name": "Eva", "party_id": party.id,
                                           "mechanisms": [{"kind": "email", "value": "e@x.example"}]})
    mechanism = parties.contact_details(ctx, contact.id)["mechanisms"][0]
    c = CrmClient(app.test_client())
    assert c.login(viewer.user.email, TEST_PASSWORD).status_code == 302
    assert c.get("/contacts/").status_code == 200
    page = text_of(c.get(f"/contacts/{contact.id}"))
    assert "Eva" in page and f"/contacts/{contact.id}/edit" not in page
    assert c.get("/contacts/new").status_code == 403
    assert c.get(f"/contacts/{contact.id}/edit").status_code == 403
    ids = {"contact": contact.id, "mechanism": mechanism.id, "party": other.id}
    _gets, posts = contact_routes(contact.id, party.id, ids)
    for url, data in posts:
        assert c.post(url, data).status_code == 403, url
        assert c.fetch(url, data).status_code == 403, url
    stored = parties.contact_details(ctx, contact.id)
    assert stored["contact"].party_id == party.id and stored["contact"].archived_at is None
    assert len(stored["mechanisms"]) == 1 and len(parties.list_contacts(ctx).items) == 1


def test_contact_text_is_escaped(client, ctx, contact_fields):
    party = parties.create_party(ctx, {"name": XSS})
    contact = parties.create_contact(ctx, {"party_id": party.id, "first_name": XSS, "last_name": XSS,
                                           "job_title": XSS, "department": XSS, "notes": XSS,
                                           "custom": {"hobby": XSS},
                                           "mechanisms": [{"kind": "email", "value": "e@x.example", "label": XSS}]})
    for url in ("/contacts/", f"/contacts/{contact.id}", f"/contacts/{contact.id}/edit",
                f"/contacts/{contact.id}/move?q=%3Cscr", f"/contacts/?party_id={party.id}"):
        page = text_of(client.get(url))
        assert XSS not in page, url
        assert "&lt;script&gt;" in page, url
    response = client.post("/contacts/new", {"first_name": XSS, "custom.birthday": "bad"})
    assert response.status_code == 422
    assert XSS not in text_of(response) and "&lt;script&gt;" in text_of(response)
